"""The investigator journey in a real browser: log in, create a collection, import a
gallery, open a case, search, review twice, record a primary identifier and a
notification, export the record, read the reports and the audit log.

Screenshots of the main pages go to ``$FACETRACE_SCREENSHOTS`` when it is set.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path
from typing import Any

from facetrace.service import accounts
from tests.web.desk import login, logout, shot

PEOPLE = ["Hugo_Chavez", "Jacques_Chirac", "Laura_Bush", "Lleyton_Hewitt"]


def _gallery_zip(faces: Path) -> bytes:
    """Two photos each of four people, one folder per person."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in PEOPLE:
            for i in (1, 2):
                src = faces / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"
                zf.write(src, f"{name}/{src.name}")
    return buf.getvalue()


OWN_PASSWORD = "journey-passphrase-77"


def _first_login(page: Any, base: str, user: str, one_time: str) -> None:
    """Log in with a one-time password: the account page asks for a password of one's
    own first (issue 11, item 14); then log in with it."""
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", one_time)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/account\?msg=.*"))
    assert "Choose your password" in page.content()
    shot(page, f"00-choose-password-{user}")
    page.fill("#password input[name=current]", one_time)
    page.fill("#password input[name=new]", OWN_PASSWORD)
    page.click("#password button")
    page.wait_for_url(re.compile(r".*/login.*"))
    login(page, base, user, OWN_PASSWORD)


def _add_user(page: Any, base: str, name: str, dept: str, roles: list[str]) -> str:
    page.goto(f"{base}/admin/users")
    form = page.locator("#add-user")
    form.locator("input[name=username]").fill(name)
    if dept:
        form.locator("select[name=department]").select_option(dept)
    for role in roles:
        form.locator(f"input[name=roles][value={role}]").check()
    form.locator("button").click()
    return str(page.locator("#new-password").inner_text()).strip()


def test_investigator_journey(
    live_server: tuple[str, Any], browser: Any, faces_dir: Path, tmp_path: Path
) -> None:
    base, app = live_server
    with app.state.service.sessions.begin() as s:
        admin_password = accounts.bootstrap_admin(s)
    assert admin_password
    page = browser.new_page()
    page.set_default_timeout(60_000)

    # The administrator creates a collection and imports a gallery.
    _first_login(page, base, "admin", admin_password)
    shot(page, "01-home-admin")
    page.goto(f"{base}/collections")
    form = page.locator("#new-collection")
    form.locator("input[name=name]").fill("Missing persons register")
    form.locator("input[name=legal_basis]").fill("Family consent forms, Act 12 s.4")
    form.locator("input[name=retention]").fill("Until found, at most 10 years")
    form.locator("button").click()
    page.wait_for_url(re.compile(r".*/collections/\d+.*"))
    archive = tmp_path / "gallery.zip"
    archive.write_bytes(_gallery_zip(faces_dir))
    page.set_input_files("#import-form input[type=file]", str(archive))
    page.click("#import-form button")
    page.wait_for_url(re.compile(r".*/imports/.*"))
    page.wait_for_selector("#import-status:has-text('done')", timeout=300_000)
    assert "Photos added: 8" in page.locator("#import-summary").inner_text()
    shot(page, "02-import-done")

    page.goto(f"{base}/admin/departments")
    page.fill("#add-department input[name=name]", "Forensics")
    page.click("#add-department button")
    page.wait_for_url(re.compile(r".*/admin/departments\?msg=.*"))
    shot(page, "03-departments")
    inv_pw = _add_user(page, base, "ines", "Forensics", ["investigator", "reviewer", "supervisor"])
    rev_pw = _add_user(page, base, "rafael", "Forensics", ["reviewer"])
    rev2_pw = _add_user(page, base, "rosa", "Forensics", ["reviewer"])
    aud_pw = _add_user(page, base, "aude", "", ["auditor"])
    shot(page, "03-users")
    logout(page)

    # The investigator opens a case and searches a photo not in the gallery.
    _first_login(page, base, "ines", inv_pw)
    page.goto(f"{base}/cases")
    form = page.locator("#new-case")
    form.locator("input[name=number]").fill("2026-0042")
    form.locator("input[name=title]").fill("Unidentified man, river bank")
    form.locator("select[name=purpose]").select_option("identify_deceased")
    form.locator("input[name=legal_basis]").fill("Coroner's order 17/2026")
    form.locator("button").click()
    page.wait_for_url(re.compile(r".*/cases/\d+.*"))
    case_url = page.url.split("?")[0]
    probe = faces_dir / "lfw" / "images" / "Jacques_Chirac" / "Jacques_Chirac_0003.jpg"
    page.set_input_files("#probe-form input[type=file]", str(probe))
    page.click("#probe-form button")
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    search_url = page.url
    text = page.locator("main").inner_text()
    assert "candidate" in text.lower() and "match" not in text.lower()
    assert "lead to be confirmed by other means" in text
    first = page.locator("article.candidate").first
    assert "Jacques Chirac" in first.inner_text()
    assert "Family consent forms" in first.inner_text()
    shot(page, "04-results")
    candidate_value = page.locator("#review-form select[name=candidate_id] option").nth(1)
    logout(page)

    # The searcher does not review her own search: two other reviewers do.
    _first_login(page, base, "rafael", rev_pw)
    page.goto(search_url)
    page.check("#review-form input[value=potential_candidate]")
    page.select_option(
        "#review-form select[name=candidate_id]", candidate_value.get_attribute("value")
    )
    page.fill("#review-form textarea[name=note]", "Ear shape and hairline agree.")
    page.click("#review-form button")
    page.wait_for_selector("text=Review recorded.")
    logout(page)

    # A second reviewer agrees.
    _first_login(page, base, "rosa", rev2_pw)
    page.goto(search_url)
    page.check("#review-form input[value=potential_candidate]")
    page.select_option(
        "#review-form select[name=candidate_id]", candidate_value.get_attribute("value")
    )
    page.fill("#review-form textarea[name=note]", "Agree; nose bridge and brow.")
    page.click("#review-form button")
    page.wait_for_selector("text=Review recorded.")
    logout(page)

    # The investigator records the primary identifier, a contact and a notification.
    login(page, base, "ines", OWN_PASSWORD)
    page.goto(case_url)
    page.select_option("#identify-form select[name=primary_identifier]", "dental_records")
    page.fill("#identify-form textarea[name=evidence]", "Odontology report OD-77, Dr Lima")
    page.click("#identify-form button")
    page.wait_for_selector("text=Identification recorded.")
    page.fill("#contact-form input[name=name]", "Claude Chirac")
    page.fill("#contact-form input[name=relationship]", "daughter")
    page.click("#contact-form button")
    page.wait_for_selector("text=Contact recorded.")
    page.fill("#notification-form input[name=channel]", "National Information Bureau")
    page.select_option("#notification-form select[name=contact_id]", label="Claude Chirac")
    page.fill("#notification-form textarea[name=outcome]", "Informed in person by the bureau")
    page.click("#notification-form button")
    page.wait_for_selector("text=Notification recorded.")
    shot(page, "05-case-identified")
    with page.context.expect_page() as popup:
        page.click("#export-link")
    record = popup.value
    record.wait_for_load_state()
    body = record.locator("body").inner_text()
    for expected in (
        "Dental records",
        "OD-77",
        "ines",
        "rafael",
        "rosa",
        "National Information Bureau",
        "Claude Chirac",
    ):
        assert expected in body
    shot(record, "06-notification-record")
    record.close()
    page.goto(f"{base}/reports")
    assert page.locator("#notification-count").inner_text() == "1"
    shot(page, "07-reports")
    logout(page)

    # The auditor reads the log; the chain is intact and holds the journey.
    _first_login(page, base, "aude", aud_pw)
    page.goto(f"{base}/audit")
    assert "Chain intact" in page.locator("#chain-status").inner_text()
    log_text = page.locator("table.audit").inner_text()
    for action in (  # in words (the stored codes are the cells' titles)
        "Logged in",
        "Imported a batch of photos",
        "Face search",
        "Viewed search results",
        "Recorded a review",
        "Recorded an identification",
        "Recorded a notification",
        "Exported a record",
        "Administration",
    ):
        assert action in log_text, action
    shot(page, "08-audit")
    page.close()

"""Working cases in a real browser: a supervisor assigns a case, two reviewers work it
from their queues (the second one blind), the investigator identifies, notes and
closes it with its outcome; the case leaves the work in progress for the archive and
its timeline tells the story in order. Refusals read as plain words."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.web.desk import Desk, login, logout, shot


def _review(page: Any, note: str) -> None:
    page.check("#review-form input[value=potential_candidate]")
    value = page.locator("#review-form select[name=candidate_id] option").nth(1)
    page.select_option("#review-form select[name=candidate_id]", value.get_attribute("value"))
    page.fill("#review-form textarea[name=note]", note)
    page.click("#review-form button")
    page.wait_for_selector("text=Review recorded.")


def test_queue_blind_review_identify_close(desk: Desk, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    case_id = desk.open_case("CW-1")
    case_url = f"{desk.base}/cases/{case_id}"

    # The supervisor sees the case and assigns it to a reviewer.
    login(page, desk.base, "sam")
    page.goto(f"{desk.base}/cases")
    page.click("text=CW-1")
    page.select_option("#assign-form select[name=username]", "rita")
    page.click("#assign-form button")
    page.wait_for_selector("text=Case assigned to rita.")
    assert page.locator("#assigned-to").inner_text() == "rita"
    logout(page)

    # The investigator searches.
    login(page, desk.base, "ines")
    page.goto(case_url)
    page.set_input_files("#probe-form input[type=file]", str(desk.lfw("Laura_Bush", 3)))
    page.click("#probe-form button")
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    search_url = page.url.split("?")[0]
    assert "Laura Bush" in page.locator("article.candidate").first.inner_text()
    logout(page)

    # The first reviewer works from the queue.
    login(page, desk.base, "rafael")
    page.click("nav >> text=Review queue")
    row = page.locator("#queue tr", has_text="CW-1")
    assert row.count() == 1 and "assigned to you" not in row.inner_text()
    row.locator("a.button").click()
    page.wait_for_url(search_url)
    assert page.locator("#blind-note").count() == 0
    _review(page, "Hairline, nose and chin agree.")
    page.goto(f"{desk.base}/queue")
    assert page.locator("#queue tr", has_text="CW-1").count() == 0
    logout(page)

    # The second reviewer: assigned to her, first in her queue, and blind.
    login(page, desk.base, "rita")
    page.goto(f"{desk.base}/queue")
    first = page.locator("#queue tr").nth(1)
    assert "CW-1" in first.inner_text() and "assigned to you" in first.inner_text()
    assert "hidden until yours" in first.inner_text()
    shot(page, "desk-06-review-queue")
    first.locator("a.button").click()
    page.wait_for_url(search_url)
    body = page.locator("main").inner_text()
    assert "Hairline, nose and chin agree." not in body and "rafael" not in body
    assert "Blind review" in page.locator("#blind-note").inner_text()
    shot(page, "desk-07-blind-review")
    page.goto(case_url)  # the case page keeps the secret too
    assert "Hairline, nose and chin agree." not in page.locator("main").inner_text()
    page.goto(search_url)
    _review(page, "Agree: eyebrows and ear lobes.")
    assert "Hairline, nose and chin agree." in page.locator("main").inner_text()
    logout(page)

    # The investigator identifies, notes and closes the case.
    login(page, desk.base, "ines")
    page.goto(case_url)
    page.select_option("#identify-form select[name=primary_identifier]", "dna")
    page.fill("#identify-form textarea[name=evidence]", "DNA report 2026/881, Dr Okafor")
    page.click("#identify-form button")
    page.wait_for_selector("text=Identification recorded.")
    page.fill("#note-form textarea", "Family informed the bureau of the funeral date.")
    page.click("#note-form button")
    page.wait_for_selector("text=Note added.")
    options = page.locator("#close-form select[name=outcome] option").all_inner_texts()
    assert options[1:] == ["Identified (a primary identifier confirmed it)"], options
    page.once("dialog", lambda d: d.accept())
    page.select_option("#close-form select[name=outcome]", "identified")
    page.fill("#close-form textarea[name=reason]", "Identified and family notified.")
    page.click("#close-form button")
    page.wait_for_selector("text=Case closed.")
    assert page.locator("#case-status").inner_text() == "closed"
    assert "Identified" in page.locator("#case-outcome").inner_text()
    assert page.locator("#probe-form").count() == 0
    kinds = page.locator("ol.timeline .kind").all_inner_texts()
    order = [
        k
        for k in kinds
        if k
        in ("Case opened", "Assignment", "Search", "Review", "Identification", "Note", "Closed")
    ]
    assert order == [
        "Case opened",
        "Assignment",
        "Search",
        "Review",
        "Review",
        "Identification",
        "Note",
        "Closed",
    ], kinds
    shot(page, "desk-08-case-closed")
    page.goto(f"{desk.base}/cases")
    assert page.locator("#case-list", has_text="CW-1").count() == 0
    page.click("#archive-link")
    assert "CW-1" in page.locator("#case-list").inner_text()
    logout(page)
    page.close()


def test_closing_rules_in_plain_words(desk: Desk, browser: Any) -> None:
    """Closing without a reason, or as "identified" without an identification, is
    refused with a message a user understands; a supervisor transfers and reopens."""
    page = browser.new_page()
    case_id = desk.open_case("CW-2")
    login(page, desk.base, "sam")
    page.goto(f"{desk.base}/cases/{case_id}")
    options = page.locator("#close-form select[name=outcome] option").all_inner_texts()
    assert "Closed by a supervisor" in options and "Transferred to another authority" in options
    assert not any(o.startswith("Identified") for o in options)
    # the browser would refuse an empty reason; post without it to see the server's words
    resp = page.request.post(
        f"{desk.base}/cases/{case_id}/close",
        form={"outcome": "identified", "reason": "x", "csrf_token": _csrf(page)},
    )
    assert resp.status == 409 and "record the primary identifier first" in resp.text()
    resp = page.request.post(
        f"{desk.base}/cases/{case_id}/close",
        form={"outcome": "no_result", "reason": " ", "csrf_token": _csrf(page)},
    )
    assert resp.status == 422 and "give the reason for closing the case" in resp.text()
    page.once("dialog", lambda d: d.accept())
    page.select_option("#close-form select[name=outcome]", "transferred")
    page.fill("#close-form textarea[name=reason]", "Regional prosecutor, file 88/26")
    page.click("#close-form button")
    page.wait_for_selector("text=Case closed.")
    assert "Transferred to another authority" in page.locator("#case-outcome").inner_text()
    page.fill("#reopen-form textarea[name=reason]", "The prosecutor sent it back.")
    page.click("#reopen-form button")
    page.wait_for_selector("text=Case reopened.")
    assert page.locator("#case-status").inner_text() == "open"
    logout(page)
    page.close()


def _csrf(page: Any) -> str:
    return str(page.locator("input[name=csrf_token]").first.get_attribute("value"))


def test_reports_and_audit_for_a_date_range(desk: Desk, browser: Any) -> None:
    """The supervisor's report and the audit log for a date range, each exported as CSV,
    with details in words; a range with nothing in it shows nothing."""
    import csv
    import io
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    case_id = desk.open_case("CW-3")
    page = browser.new_page()
    login(page, desk.base, "sam")
    page.goto(f"{desk.base}/cases/{case_id}")
    page.once("dialog", lambda d: d.accept())
    page.select_option("#close-form select[name=outcome]", "no_result")
    page.fill("#close-form textarea[name=reason]", "No lead after six months.")
    page.click("#close-form button")
    page.wait_for_selector("text=Case closed.")
    page.goto(f"{desk.base}/reports")
    page.fill("#report-range input[name=start]", today.isoformat())
    page.fill("#report-range input[name=end]", today.isoformat())
    page.click("#report-range button")
    assert f"from {today} to {today}" in page.locator("h1").inner_text()
    assert "No result" in page.locator("#closed-outcomes").inner_text()
    shot(page, "desk-13-report")
    resp = page.request.get(desk.base + str(page.locator("#report-csv").get_attribute("href")))
    rows = list(csv.reader(io.StringIO(resp.text())))
    assert rows[0] == ["department", "period", "section", "item", "count"]
    assert [
        "Forensics",
        f"from {today} to {today}",
        "cases closed, by outcome",
        "No result",
        "1",
    ] in rows
    later = (today + timedelta(days=3)).isoformat()
    page.goto(f"{desk.base}/reports?start={later}&end={later}")
    assert page.locator("#closed-outcomes").inner_text().endswith("None.")
    page.goto(f"{desk.base}/reports?start={later}&end={today}")
    assert "the range starts" in page.locator("main").inner_text()
    page.goto(f"{desk.base}/")
    logout(page)

    login(page, desk.base, "aude")
    page.goto(f"{desk.base}/audit")
    page.fill("#audit-filter input[name=start]", today.isoformat())
    page.fill("#audit-filter input[name=end]", today.isoformat())
    page.select_option("#audit-filter select[name=action]", "case_close")
    page.click("#audit-filter button")
    table = page.locator("table.audit").inner_text()
    assert "Closed a case" in table and "outcome: No result" in table and "{" not in table
    shot(page, "desk-14-audit")
    resp = page.request.get(desk.base + str(page.locator("#audit-csv").get_attribute("href")))
    rows = list(csv.reader(io.StringIO(resp.text())))
    assert rows[0][:4] == ["seq", "when_utc", "user", "action"] and len(rows) >= 2
    assert all(r[3] == "case_close" and r[1].startswith(today.isoformat()) for r in rows[1:])
    page.goto(f"{desk.base}/audit?start={later}")
    assert "No entries match." in page.locator("table.audit").inner_text()
    logout(page)
    page.close()


def test_an_unusable_photo_keeps_the_layout(desk: Desk, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    case_id = desk.open_case("CW-PHOTO")
    bad = tmp_path / "statement.jpg"
    bad.write_bytes(b"a witness statement, not a photo\n" * 50)
    login(page, desk.base, "ines")
    page.goto(f"{desk.base}/cases/{case_id}")
    page.set_input_files("#probe-form input[type=file]", str(bad))
    page.click("#probe-form button")
    page.wait_for_load_state()
    assert page.locator("main h1").inner_text() == "Unusable photo"
    # the menu and the user, as on every page; the menu leads on
    assert page.locator("header .who").inner_text().startswith("ines")
    shot(page, "casework-unusable-photo")
    page.click("header nav >> text=Cases")
    page.wait_for_url(f"{desk.base}/cases")
    logout(page)
    page.close()

"""The "unknown persons" page of a case in a real browser: a case holding several photos
of two people groups them into two persons; a wrong grouping is corrected by a
decision that every later grouping keeps (and that can be revoked); a person is
searched as one face, reviewed by two reviewers and identified, and the page says so.
Screenshots go to ``$FACETRACE_SCREENSHOTS``."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from facetrace.service import accounts, reviews, searches
from facetrace.store.service_models import AuditEntry, Search
from tests.web.desk import Desk, login, shot

# Held-out photos (the gallery holds photos 1 and 2 of each), one face in each: photo 7
# of Laura Bush also shows George W. Bush, cut by the frame, which the default (auto)
# detector rightly finds, so it would be a third person.
PROBES = [("Laura_Bush", i) for i in (3, 5, 6)] + [("Jacques_Chirac", i) for i in (4, 5, 8)]


def _seed_probes(desk: Desk, case_id: int) -> None:
    """The probe photos stored with the case through the service (the engine runs once
    each), as the upload form does."""
    state = desk.state
    for name, i in PROBES:
        path = desk.lfw(name, i)
        data = path.read_bytes()
        found = searches.photo_faces(state.analyser.analyse(data, source=path.name))
        with state.sessions.begin() as s:
            inv = accounts.actor_of(accounts.get_user(s, username="ines"))
            searches.add_probe(
                s, actor=inv, case_id=case_id, data=data, filename=path.name, found=found
            )


def _persons(page: Any) -> list[str]:
    return [
        " ".join(sorted(set(re.findall(r"probe (\d+) face", s.inner_html()))))
        for s in page.locator("section.person").all()
    ]


def test_group_correct_search_identify(desk: Desk, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    case_id = desk.open_case("MCI-1")
    _seed_probes(desk, case_id)
    persons_url = f"{desk.base}/cases/{case_id}/persons"

    login(page, desk.base, "ines")
    page.goto(f"{desk.base}/cases/{case_id}")
    page.click("#persons-link")
    page.wait_for_url(persons_url)
    sections = page.locator("section.person")
    assert sections.count() == 2  # two people, three photos each
    assert [sections.nth(i).locator("figure").count() for i in range(2)] == [3, 3]
    before = _persons(page)
    shot(page, "persons-01-grouped")

    # "Not this person" splits a group, and the split holds on every later grouping.
    first = sections.nth(0)
    first.locator("button", has_text="Not this person").first.click()
    page.wait_for_selector("text=Recorded as different people")
    assert page.locator("section.person").count() == 3
    page.reload()
    assert page.locator("section.person").count() == 3
    assert page.locator("#decisions ~ table tbody tr").count() == 1
    shot(page, "persons-02-decision")
    # ... until it is revoked (with a reason)
    page.fill("#decisions ~ table input[name=note]", "same woman after all: the earring")
    page.click("#decisions ~ table button", timeout=10_000)
    page.wait_for_selector("text=revoked")
    assert _persons(page) == before

    # "Confirm" makes a group one person for good; then search it as one face.
    laura = page.locator("section.person").nth(0)
    laura.locator("button", has_text="Confirm: all one person").click()
    page.wait_for_selector("text=Recorded as the same person")
    laura = page.locator("section.person").nth(0)
    assert "confirmed by decisions" in laura.inner_text()
    laura.locator("button", has_text="Search this person").click()
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    search_id = int(re.findall(r"/searches/(\d+)", page.url)[0])
    top = page.locator("article.candidate").first.inner_text()
    assert "Laura Bush" in top or "Jacques Chirac" in top

    # another person searched in the investigation mode, chosen on the persons page
    page.goto(persons_url)
    other = page.locator("section.person").nth(1)
    other.locator("select[name=mode]").select_option("investigation")
    other.locator("button", has_text="Search this person").click()
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    banner = page.locator("#search-mode").inner_text()
    assert "Investigation mode" in banner and "The person who searched chose this mode" in banner
    shot(page, "persons-04-investigation")

    # Two reviewers agree and the identification is recorded (through the service: the
    # review pages have their own browser test); the persons page links it.
    state = desk.state
    with state.sessions.begin() as s:
        search = s.get(Search, search_id)
        assert search is not None
        candidate = search.candidates[0]
        for who in ("rafael", "rita"):
            reviewer = accounts.actor_of(accounts.get_user(s, username=who))
            reviews.record_review(
                s,
                actor=reviewer,
                search_id=search_id,
                conclusion="potential_candidate",
                candidate_id=candidate.id,
                note="agree",
            )
        identifier = accounts.actor_of(accounts.get_user(s, username="ines"))
        reviews.record_identification(
            s,
            actor=identifier,
            case_id=case_id,
            candidate_id=candidate.id,
            primary_identifier="dna",
            evidence="DNA report 2026/117",
        )
        name = candidate.subject_name
    page.goto(persons_url)
    person = page.locator("section.person", has_text=f"search {search_id}")
    assert f"identified: {name}" in person.inner_text()
    shot(page, "persons-03-identified")

    with state.sessions() as s:
        actions = [e.action for e in s.scalars(select(AuditEntry))]
    assert actions.count("person_decision") == 2 and actions.count("person_decision_revoke") == 1

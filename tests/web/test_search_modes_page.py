"""The two search modes in a real browser: the investigator chooses the mode on the
upload form; the results page says in words which mode produced the list and why; in the
investigation mode every listed person is a candidate with score and rate (no look-alikes
behind a step) and the reviewer's "no candidate" reads as "none of the listed people".
Screenshots go to ``$FACETRACE_SCREENSHOTS``."""

from __future__ import annotations

import re
from typing import Any

from tests.web.desk import Desk, login, logout, shot


def _search(page: Any, desk: Desk, number: str, probe: Any, mode: str) -> str:
    case_id = desk.open_case(number)
    page.goto(f"{desk.base}/cases/{case_id}")
    page.select_option("#probe-form select[name=mode]", mode)
    page.set_input_files("#probe-form input[type=file]", str(probe))
    page.click("#probe-form button")
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    return str(page.url)


def test_modes_are_said_in_words(desk: Desk, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    login(page, desk.base, "ines")
    # somebody who is in the gallery, searched for investigation: a ranked list for review
    url = _search(page, desk, "MODE-1", desk.lfw("Jacques_Chirac", 3), "investigation")
    banner = page.locator("#search-mode").inner_text()
    assert "Investigation mode" in banner and "whatever their score" in banner
    assert "The person who searched chose this mode" in banner
    cards = page.locator("article.candidate")
    assert cards.count() >= 5 and page.locator("#lookalikes").count() == 0
    assert all(c.is_visible() for c in cards.all())
    assert "Jacques Chirac" in cards.first.inner_text()
    assert page.locator("article.candidate.below").count() == 0
    assert page.locator("strong.rate").count() == cards.count()  # every one with its rate
    explained = page.locator("#threshold-explained").inner_text()
    assert "no threshold" in explained and "would be" in explained
    shot(page, "modes-01-investigation")
    # the same face in identification, chosen by the gallery's size (9 people: far below
    # the size derived from the calibration table)
    url2 = _search(page, desk, "MODE-2", desk.lfw("Jacques_Chirac", 3), "")
    banner = page.locator("#search-mode").inner_text()
    assert "Identification mode" in banner and "Chosen by the size of the gallery" in banner
    assert "9 people, below the 16,092 from which facetrace switches" in banner
    shot(page, "modes-02-identification")
    logout(page)
    # a reviewer reads conclusions in the words of each mode
    login(page, desk.base, "rafael")
    page.goto(url)
    form = page.locator("#review-form").inner_text()
    assert "none of the listed people is the person" in form
    shot(page, "modes-03-investigation-review")
    page.goto(url2)
    form = page.locator("#review-form").inner_text()
    assert "No candidate" in form and "listed people" not in form
    # reviewed, the investigation search's "no candidate" keeps its words on the case page
    # and in its timeline, where the identification wording would say nobody was close
    page.goto(url)
    page.check("#review-form input[value=no_candidate]")
    page.fill("#review-form textarea[name=note]", "none of them")
    page.click("#review-form button")
    page.wait_for_selector("text=Review recorded.")
    page.click("h1 a[href^='/cases/']")
    reviews = page.locator("h2:has-text('Reviews') + table").inner_text()
    assert "No candidate: none of the listed people is the person" in reviews
    timeline = page.locator("ol.timeline").inner_text()
    assert "none of the listed people is the person" in timeline
    shot(page, "modes-04-case-reviews")

"""Seeing the evidence in a real browser: the results page (the whole probe photo with
its faces boxed, candidates linking to their subject pages, false-match rates as honest
as their evidence, look-alikes behind an explicit step, the threshold explained), the
subject page with every photo's provenance and metadata, and the side-by-side
comparison (zoom together, flip through the reference's photos)."""

from __future__ import annotations

import re
from typing import Any

from tests.web.desk import Desk, login, logout, shot


def _search(page: Any, desk: Desk, number: str, probe: Any) -> int:
    case_id = desk.open_case(number)
    page.goto(f"{desk.base}/cases/{case_id}")
    page.set_input_files("#probe-form input[type=file]", str(probe))
    page.click("#probe-form button")
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    return case_id


def test_results_page_shows_evidence_honestly(desk: Desk, browser: Any) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    login(page, desk.base, "ines")
    _search(page, desk, "EV-1", desk.lfw("Jacques_Chirac", 3))
    main = page.locator("main")
    first = page.locator("article.candidate").first
    assert "Jacques Chirac" in first.inner_text()
    # every rate reads "about 1 in N" (N to at most two significant digits) or says it
    # is beyond the pairs measured; never an 8-digit figure
    rates = [str(r.text_content()).strip() for r in page.locator("strong.rate").all()]
    assert rates
    for rate in rates:
        m = re.fullmatch(
            r"about 1 in ([\d,]+)|about 1 in 2"
            r"|fewer than 1 in [\d.]+ (million|billion) pairs measured",
            rate,
        )
        assert m, rate
        if m.group(1):
            digits = m.group(1).replace(",", "").rstrip("0")
            assert len(digits) <= 2, rate
    # the whole probe photo, its face boxed
    assert page.locator("svg.probe-photo .face-box.current rect").count() == 1
    # look-alikes below the threshold are hidden until asked for
    details = page.locator("#lookalikes")
    assert details.count() == 1
    hidden_names = details.locator("article.candidate h3").all()
    assert hidden_names and not any(h.is_visible() for h in hidden_names)
    assert not page.locator("#lookalike-options option").first.is_visible()
    # the threshold is explained with the gallery size and the verify threshold
    explained = page.locator("#threshold-explained").inner_text()
    assert "with 9 people" in explained and "0.910" in explained, explained
    assert "pairs of photos of different people" in explained
    shot(page, "desk-01-results")
    details.locator("summary").click()
    assert all(h.is_visible() for h in hidden_names)
    shot(page, "desk-02-results-lookalikes")
    text = main.inner_text()
    assert "strong_pose" not in text and "_" not in re.sub(r"MP-\S+|\S+\.jpg", "", text)

    # the candidate links to the subject's page: every photo, provenance and metadata
    first.locator("a.subject-link").click()
    page.wait_for_url(re.compile(r".*/subjects/\d+.*"))
    sections = page.locator("section.reference")
    assert sections.count() == 2
    subject_text = page.locator("main").inner_text()
    for expected in (
        "Missing-person report JAC-1",
        "reported by",
        "family",
        "MP/JACQ",
        "Family consent forms",
    ):
        assert expected in subject_text, expected
    assert page.locator("svg.reference-photo .face-box rect").count() == 2
    shot(page, "desk-03-subject")
    page.go_back()

    # side by side: both panes zoom together, the reference flips through its photos
    page.locator("a.compare-link").first.click()
    page.wait_for_url(re.compile(r".*/compare/\d+"))
    probe_img, ref_img = page.locator("#probe-view"), page.locator("#reference-view")
    for img in (probe_img, ref_img):
        assert img.evaluate("i => i.complete && i.naturalWidth") == 720
    page.click("[data-zoom=in]")
    t1, t2 = (i.evaluate("i => i.style.transform") for i in (probe_img, ref_img))
    assert "scale(1.5)" in t1 and t1 == t2
    assert page.locator("#zoom-level").inner_text() == "150 %"
    box = page.locator(".zoom-pane").first.bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 130)
    page.mouse.up()
    t1, t2 = (i.evaluate("i => i.style.transform") for i in (probe_img, ref_img))
    assert t1 == t2 and "translate(60px, 30px)" in t1, t1
    before = ref_img.get_attribute("src")
    page.click("[data-flip='1']")
    assert ref_img.get_attribute("src") != before
    assert page.locator("#reference-caption").inner_text().startswith("photo ")
    visible = [i for i in page.locator(".ref-info").all() if i.is_visible()]
    assert len(visible) == 1
    page.click("[data-zoom=reset]")
    shot(page, "desk-04-compare")
    logout(page)
    page.close()


def test_api_docs_work_air_gapped(desk: Desk, browser: Any) -> None:
    """Swagger UI renders with every request answered by this server; anything else is
    blocked and would be recorded."""
    page = browser.new_page()
    outside: list[str] = []

    def guard(route: Any) -> None:
        if route.request.url.startswith(desk.base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{desk.base}/api/v1/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 20
    assert "facetrace" in page.locator(".info").inner_text()
    assert outside == []
    assert not [e for e in errors if "Content Security Policy" in e], errors
    shot(page, "desk-05-api-docs")
    page.close()


def test_plain_words_for_refusals(desk: Desk, browser: Any) -> None:
    """A refused page says what the user may not do, not a permission code."""
    page = browser.new_page()
    login(page, desk.base, "aude")
    page.goto(f"{desk.base}/cases")
    text = page.locator("main").inner_text()
    assert "case.read" not in text and "see cases" in text, text
    page.close()


def test_group_photo_each_face_and_a_drawn_box(desk: Desk, browser: Any) -> None:
    """A group photo is uploaded once: the probe page shows it whole with every face
    boxed, each face is searched from there, and a rectangle dragged on the photo
    becomes a new face that is searched at once."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    login(page, desk.base, "ines")
    case_id = desk.open_case("EV-GROUP")
    page.goto(f"{desk.base}/cases/{case_id}")
    group = desk.faces / "webphotos13" / "multi_face" / "selfie-many-people.jpg"
    page.set_input_files("#probe-form input[type=file]", str(group))
    page.click("#probe-form button")
    page.wait_for_url(re.compile(r".*/probes/\d+.*"))
    probe_url = page.url.split("?")[0]
    found = page.locator("svg.probe-photo .face-box").count()
    assert found >= 2 and page.locator(".face-pick").count() == found
    assert "faces were found" in page.locator(".flash").inner_text()
    # search the second face from the probe page, then come back: no new upload
    page.locator("#face-1 button").click()
    page.wait_for_url(re.compile(r".*/searches/\d+"))
    assert "Probe face 2 of" in page.locator(".probe-face figcaption").inner_text()
    page.goto(probe_url)
    assert "Search again" in page.locator("#face-1 button").inner_text()

    # drag a rectangle round the first face's place on the photo
    svg = page.locator("#probe-canvas svg.probe-photo")
    width = float(svg.get_attribute("data-width") or 0)
    r = svg.locator(".face-box rect").first
    x, y, w, h = (float(r.get_attribute(a) or 0) for a in ("x", "y", "width", "height"))
    bbox = svg.bounding_box()
    k = bbox["width"] / width
    page.mouse.move(bbox["x"] + (x - 0.1 * w) * k, bbox["y"] + (y - 0.1 * h) * k)
    page.mouse.down()
    page.mouse.move(bbox["x"] + (x + 1.1 * w) * k, bbox["y"] + (y + 1.1 * h) * k, steps=5)
    page.mouse.up()
    assert "Box drawn" in page.locator("#draw-status").inner_text()
    shot(page, "desk-09-probe-drawn-box")
    page.check("#draw input[name=force]")
    page.click("#draw-search")
    page.wait_for_url(re.compile(r".*/searches/\d+.*"))
    assert f"Face {found + 1} added from your box" in page.locator(".flash").inner_text()
    page.goto(probe_url)
    assert page.locator("svg.probe-photo .face-box.drawn").count() == 1
    assert "box drawn by ines" in page.locator(f"#face-{found}").inner_text()
    shot(page, "desk-10-probe-page")
    page.close()

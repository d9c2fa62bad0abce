"""A video probe in a real browser, as an investigator meets it: the upload on the case
page, the job's live progress (and its cancel), the persons found with their times and
key frames from the original video, and a person's candidate list opened at the key
frame most like the first candidate; a file that is not a video is refused on the spot
with nothing kept. Screenshots go to ``$FACETRACE_SCREENSHOTS``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from facetrace.store.service_models import Probe, Search
from tests.video.synthetic import BLUE, GREY, Actor, Shot, lfw_photo, write_video
from tests.web.desk import Desk, login, shot

# The gallery holds photos 1 and 2 of each (tests/web/desk.py): the video shows photo 3.
A, B = "Jacques_Chirac", "Hugo_Chavez"


def _scene(faces: Path) -> list[Shot]:
    """Two people side by side; a cut; the first alone, leaving and coming back (the same
    photo: the tracker's merging of another photo is tests/video's matter)."""
    return [
        Shot(
            3.0,
            GREY,
            (
                Actor(A, lfw_photo(faces, A, 3), 0.0, 3.0, (0.27, 0.5), (0.32, 0.47)),
                Actor(B, lfw_photo(faces, B, 3), 0.0, 3.0, (0.73, 0.5), (0.68, 0.53)),
            ),
        ),
        Shot(
            4.0,
            BLUE,
            (
                Actor(A, lfw_photo(faces, A, 3), 0.0, 1.3, (0.5, 0.5), (0.6, 0.5)),
                Actor(A, lfw_photo(faces, A, 3), 2.7, 4.0, (0.4, 0.5), (0.5, 0.5)),
            ),
        ),
    ]


def _long(faces: Path) -> list[Shot]:
    """A minute of one person walking slowly: long enough to cancel half-way."""
    return [
        Shot(60.0, GREY, (Actor(B, lfw_photo(faces, B, 3), 0.0, 60.0, (0.3, 0.5), (0.7, 0.5)),))
    ]


def _probes(desk: Desk, case_id: int) -> list[Probe]:
    with desk.state.sessions() as s:
        return list(s.query(Probe).filter(Probe.case_id == case_id))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path) -> Path:
    path = tmp_path_factory.mktemp("clips") / "harbour camera 3.mp4"
    write_video(path, _scene(faces_dir))
    return path


def test_upload_follow_persons_search_at_best_frame(desk: Desk, browser: Any, clip: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(180_000)
    case_id = desk.open_case("VID-1")
    login(page, desk.base, "ines")
    page.goto(f"{desk.base}/cases/{case_id}")
    assert page.locator("#video-form").is_visible()
    shot(page, "video-01-case-upload")
    page.set_input_files("#video-form input[type=file]", str(clip))
    page.click("#video-form button")
    page.wait_for_url(re.compile(r".*/video-jobs/.*"))
    assert "harbour camera 3.mp4" in page.locator("h1").inner_text()
    page.wait_for_selector("#video-status:has-text('Analysing'), #video-status:has-text('Done')")
    shot(page, "video-02-progress")
    # when it is done the page says how many were found and opens the persons
    page.wait_for_url(re.compile(r".*/probes/\d+$"))
    assert "2 persons seen" in page.locator("main").inner_text()
    persons = page.locator("section.video-person")
    assert persons.count() == 2
    texts = persons.all_inner_texts()
    # the first person is on screen in both shots, off screen in the middle of the second
    returns = [i for i, t in enumerate(texts) if "appearances joined" in t]
    assert len(returns) == 1, texts
    a = returns[0]
    # (an interval per appearance: the first shot, the second until they leave, the return)
    when = r"On screen 0:00\.\d–0:0[23]\.\d, 0:0[34]\.\d–0:0[34]\.\d, 0:0[56]\.\d–0:0[67]\.\d"
    assert re.search(when, texts[a]), texts
    assert re.search(r"On screen 0:00\.\d–0:0[23]\.\d ·", texts[1 - a]), texts
    frames = persons.nth(a).locator(".key-frame")
    assert frames.count() >= 2
    assert re.search(r"\d:\d\d\.\d · frame \d+", frames.nth(0).inner_text())
    for img in page.locator("section.video-person img").all():
        assert img.evaluate("i => i.complete && i.naturalWidth > 0"), img.get_attribute("src")
    shot(page, "video-03-persons")
    # the case page lists the video with its persons
    page.goto(f"{desk.base}/cases/{case_id}")
    assert "2 persons seen" in page.locator(".video-probe").inner_text()
    shot(page, "video-04-case-with-video")

    # search person 1: candidate 1 is the right person, shown at its best key frame
    page.click(".video-probe a.probe-thumb")
    page.wait_for_url(re.compile(r".*/probes/\d+$"))
    page.locator("section.video-person").nth(a).locator("button").click()
    page.wait_for_url(re.compile(r".*/searches/\d+$"))
    top = page.locator("article.candidate").first.inner_text()
    assert "Candidate 1: Jacques Chirac" in top, top
    side = page.locator("#video-person").inner_text()
    assert f"Person {a + 1} of 2 in the video harbour camera 3.mp4" in side, side
    assert "the key frame most like candidate 1" in side
    assert re.search(r"at \d:\d\d\.\d \(frame \d+\)", side), side
    assert page.locator("#shown-frame").evaluate("i => i.complete && i.naturalWidth > 0")
    shot(page, "video-05-candidates-at-best-frame")
    # another key frame can be shown; the side-by-side view shows the person's frame
    page.locator(".probe-whole .key-frame").last.click()
    page.wait_for_url(re.compile(r".*\?frame=\d+$"))
    assert "the key frame most like" not in page.locator("#video-person").inner_text()
    page.locator("a.compare-link").first.click()
    page.wait_for_url(re.compile(r".*/compare/\d+.*"))
    caption = page.locator(".pane figcaption").first.inner_text()
    assert f"person {a + 1} of the video at" in caption, caption
    page.wait_for_function("document.getElementById('probe-view').naturalWidth > 0")
    shot(page, "video-06-compare")
    with desk.state.sessions() as s:
        assert s.query(Search).filter(Search.case_id == case_id).count() == 1
    page.close()


def test_not_a_video_is_refused_and_nothing_kept(desk: Desk, browser: Any, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    case_id = desk.open_case("VID-2")
    bad = tmp_path / "statement.mp4"
    bad.write_bytes(b"this is a witness statement, not a video\n" * 50)
    login(page, desk.base, "ines")
    page.goto(f"{desk.base}/cases/{case_id}")
    page.set_input_files("#video-form input[type=file]", str(bad))
    page.click("#video-form button")
    page.wait_for_load_state()
    text = page.locator("main").inner_text()
    assert "Unusable video" in text and "statement.mp4: not a video" in text, text
    assert str(desk.state.data_dir) not in text and "/tmp" not in text, text
    # in the normal layout: the menu and the user, to go on from here
    assert page.locator("header nav a", has_text="Cases").count() == 1
    assert page.locator("header .who").inner_text().startswith("ines")
    shot(page, "video-07-not-a-video")
    assert _probes(desk, case_id) == []
    page.close()


def test_cancel_keeps_nothing(desk: Desk, browser: Any, tmp_path: Path, faces_dir: Path) -> None:
    long = tmp_path / "long walk.mp4"
    write_video(long, _long(faces_dir), width=320, height=180)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    case_id = desk.open_case("VID-3")
    login(page, desk.base, "ines")
    page.goto(f"{desk.base}/cases/{case_id}")
    page.set_input_files("#video-form input[type=file]", str(long))
    page.click("#video-form button")
    page.wait_for_url(re.compile(r".*/video-jobs/.*"))
    page.wait_for_selector("#video-speed:has-text('frames/s')")
    speed = page.locator("#video-speed").inner_text()
    assert re.search(r"\d+\.\d frames/s · (about \d+ (s|min) left|working out)", speed), speed
    shot(page, "video-08-running")
    page.once("dialog", lambda d: d.accept())
    page.click("#video-cancel button")
    page.wait_for_selector("#video-status:has-text('Cancelled')")
    assert page.locator("#video-cancel").is_hidden()
    shot(page, "video-09-cancelled")
    assert _probes(desk, case_id) == []
    page.goto(f"{desk.base}/cases/{case_id}")
    assert "cancelled" in page.locator(".video-job").inner_text()
    page.close()

"""``facetrace search VIDEO``: every person seen, searched once, on the shared clip and on
synthetic videos with known truth; clear errors for videos that cannot be searched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from tests.video.synthetic import BROWN, Shot, lfw_photo, two_people_cut_return, write_video

runner = CliRunner()


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), *args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> Path:
    return faces_dir / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def video_gallery(
    faces_dir: Path, mini_lfw: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The small LFW gallery plus the clip's two reference photos and another photo of
    each person of the synthetic videos (not the ones the videos show)."""
    tree = tmp_path_factory.mktemp("video_gallery_src")
    shutil.copytree(mini_lfw, tree, dirs_exist_ok=True)
    refs = {
        "Lin-Manuel_Miranda": faces_dir / "video" / "lin-manuel-miranda.png",
        "Barack_Obama": faces_dir / "video" / "obama.jpg",
        "Colin_Powell": lfw_photo(faces_dir, "Colin_Powell", 3),
        "Tony_Blair": lfw_photo(faces_dir, "Tony_Blair", 3),
    }
    for name, photo in refs.items():
        (tree / name).mkdir()
        shutil.copy(photo, tree / name / photo.name)
    data = tmp_path_factory.mktemp("video_gallery")
    with Gallery.open(data) as g:
        summary = ingest(g, scan_folder(tree, collection="refs", legal_basis="test"))
    assert summary.photos_added == summary.total, summary.skipped
    return data


@pytest.fixture(scope="module")
def clip_search(video_gallery: Path, clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    crops = tmp_path_factory.mktemp("crops")
    code, out, err = run(
        video_gallery, "search", str(clip), "--json", "--show-below", "--crops", str(crops)
    )
    assert code == 0, err
    return json.loads(out)


def _best(person: dict[str, Any]) -> dict[str, Any] | None:
    rows = person["candidates"] + person["below_threshold"]
    return min(rows, key=lambda c: c["rank"]) if rows else None


def test_clip_finds_the_performer_once(clip_search: Any) -> None:
    found = [
        p
        for p in clip_search["persons"]
        if p["candidates"] and p["candidates"][0]["subject"]["id"] == "Lin-Manuel_Miranda"
    ]
    assert len(found) == 1  # close-up and wide shot merged: listed once
    performer = found[0]
    # on stage in a close-up and a wide shot, either side of a cut at 3.9 s
    assert performer["intervals"][0][0] < 3.5 and performer["intervals"][-1][1] > 6.5
    first = performer["candidates"][0]
    assert first["provenance"]["collection"] == "refs"
    assert 0 < first["false_match_rate"] < 1e-3


def test_clip_audience_ranks_obama_first_and_nobody_else_is_a_candidate(
    clip_search: Any,
) -> None:
    audience = [p for p in clip_search["persons"] if p["intervals"][0][0] > 7.0]
    assert len(audience) == 4  # four faces in one shot, never merged
    tops = [_best(p) for p in audience]
    assert sum(1 for t in tops if t and t["subject"]["id"] == "Barack_Obama") == 1
    others = [
        p for p, t in zip(audience, tops, strict=True) if t["subject"]["id"] != "Barack_Obama"
    ]
    assert all(p["no_candidate"] for p in others)
    # the pianist's profile close-up (0.8-2.6 s), if tracked, is nobody in the gallery
    assert all(p["no_candidate"] for p in clip_search["persons"] if p["intervals"][-1][1] < 2.7)


def test_clip_key_frames_have_timestamps_and_crops(clip_search: Any) -> None:
    assert clip_search["shots"] >= 3 and clip_search["sample_fps"] == 3.0
    for person in clip_search["persons"]:
        assert person["key_frames"]
        for key in person["key_frames"]:
            a, b = person["intervals"][0][0], person["intervals"][-1][1]
            assert a <= key["timestamp_s"] <= b
            with Image.open(key["crop"]) as im:
                assert im.format == "JPEG" and min(im.size) > 20


def test_synthetic_video_finds_both_people(
    video_gallery: Path, faces_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "two.mp4"
    write_video(video, two_people_cut_return(faces_dir))
    code, out, err = run(video_gallery, "search", str(video), "--json", "--sample-fps", "4")
    assert code == 0, err
    res = json.loads(out)
    assert res["sample_fps"] == 4.0
    tops = sorted(p["candidates"][0]["subject"]["id"] for p in res["persons"] if p["candidates"])
    assert tops == ["Colin_Powell", "Tony_Blair"]
    assert len(res["persons"]) == 2
    code, out, err = run(video_gallery, "search", str(video), "--sample-fps", "4")
    assert code == 0
    assert "person 2" in err and "Colin_Powell" in out and "not identifications" in err


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p, clip: p.write_bytes(b"not a video at all " * 50), "not a video"),
        (lambda p, clip: p.write_bytes(clip.read_bytes()[:5000]), "truncated"),
        (lambda p, clip: write_video(p, [Shot(1.0, BROWN, ())]), "no face was seen"),
    ],
    ids=["not-a-video", "truncated", "no-faces"],
)
def test_videos_that_cannot_be_searched(
    video_gallery: Path, clip: Path, tmp_path: Path, make: Any, message: str
) -> None:
    bad = tmp_path / "bad.mp4"
    make(bad, clip)
    code, out, err = run(video_gallery, "search", str(bad))
    assert code == 1
    assert message in err and "Traceback" not in err
    assert out == ""


def test_photo_options_are_refused_for_a_video(video_gallery: Path, clip: Path) -> None:
    code, _, err = run(video_gallery, "search", str(clip), "--face", "0")
    assert code == 1 and "apply to photos" in err

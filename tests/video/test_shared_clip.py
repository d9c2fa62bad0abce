"""The video pipeline on the shared 9.2 s clip (real decode, real models)."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.engine import FacePipeline
from facetrace.errors import ImageError
from facetrace.imaging import inspect_video
from facetrace.video import analyse_video


@pytest.fixture(scope="module")
def clip(faces_dir: Path) -> Path:
    path = faces_dir / "video" / "short_hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip("shared clip missing")
    return path


def test_inspect_describes_the_clip(clip: Path) -> None:
    info = inspect_video(clip)
    assert (info.width, info.height, info.codec) == (640, 360, "h264")
    assert 9.0 < info.duration_s < 10.5


def test_not_a_video_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_bytes(b"just some text, not a video at all" * 20)
    with pytest.raises(ImageError, match=r"not a video|truncated"):
        inspect_video(bad)


def test_truncated_video_is_refused(tmp_path: Path, clip: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:4000])
    with pytest.raises(ImageError, match=r"truncated|damaged"):
        inspect_video(cut)


@pytest.mark.slow  # tests/cli/test_video_search.py runs the same analysis through the CLI
def test_every_person_once_with_intervals(clip: Path, tmp_path: Path) -> None:
    from facetrace.config import PipelineOptions

    pipeline = FacePipeline(PipelineOptions(cache_dir=tmp_path / "models"))
    seen = []
    result = analyse_video(clip, pipeline, progress=seen.append)
    assert seen and seen[-1].frames == result.frames_sampled
    assert result.shots >= 3
    # the performer (close-ups and a wide shot) and four audience faces
    assert len(result.persons) >= 4
    for person in result.persons:
        assert person.key_frames and person.intervals
        assert all(a <= b for a, b in person.intervals)
    audience = [p for p in result.persons if p.intervals[0][0] > 7.0]
    assert len(audience) == 4  # four people in one frame: never merged

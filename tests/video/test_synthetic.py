"""Tracking and merging against known truth: synthetic videos made of LFW photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import NoFaceFound
from facetrace.video import VideoAnalysis, VideoOptions, analyse_video
from facetrace.video.faces import VideoFaceFinder
from tests.video.synthetic import (
    BROWN,
    Shot,
    Truth,
    recurring_cast,
    twins,
    two_people_cut_return,
    who,
    write_video,
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    return FacePipeline(PipelineOptions(cache_dir=tmp_path_factory.mktemp("models")))


# the synthetic faces are 70 px and more: detection at the frames' own size finds them
# (the default budget doubles a 640x360 frame's area, for the small faces of real crowds);
# 5 samples a second so that the 1.2 s appearances have enough faces whatever the default
OPTIONS = VideoOptions(detect_pixels=640 * 360, sample_fps=5.0)


@pytest.fixture(scope="module")
def finder(pipeline: FacePipeline) -> VideoFaceFinder:
    return VideoFaceFinder(pipeline, detect_pixels=OPTIONS.detect_pixels)


def _analyse(
    tmp: Path, shots: list[Shot], pipeline: FacePipeline, finder: VideoFaceFinder
) -> tuple[Truth, VideoAnalysis]:
    path = tmp / "scene.mp4"
    truth = write_video(path, shots)
    return truth, analyse_video(path, pipeline, options=OPTIONS, finder=finder)


def _covered(intervals: tuple[tuple[float, float], ...], t: float, slack: float = 0.25) -> bool:
    return any(a - slack <= t <= b + slack for a, b in intervals)


@pytest.fixture(scope="module")
def cut_return(
    faces_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    pipeline: FacePipeline,
    finder: VideoFaceFinder,
) -> tuple[Truth, VideoAnalysis]:
    tmp = tmp_path_factory.mktemp("cut")
    return _analyse(tmp, two_people_cut_return(faces_dir), pipeline, finder)


def test_two_people_a_cut_and_a_return_are_two_persons(
    cut_return: tuple[Truth, VideoAnalysis],
) -> None:
    truth, result = cut_return
    assert result.shots == 2
    assert len(result.persons) == 2, [p.intervals for p in result.persons]
    # the first person is seen in both shots: before the cut, after it, and back again
    both = [p for p in result.persons if p.intervals[-1][1] > truth.cuts[0]]
    assert len(both) == 1
    returning = both[0]
    for a, b in truth.intervals["Colin_Powell"]:
        assert _covered(returning.intervals, (a + b) / 2)
    # ... and not while they were out of the frame
    assert not _covered(returning.intervals, 5.0, slack=0.0)
    assert len(returning.tracks) >= 2  # the cut ends a track; the merge joins them
    other = next(p for p in result.persons if p is not returning)
    assert other.intervals[-1][1] < truth.cuts[0]


def test_two_faces_in_one_frame_are_never_merged(
    faces_dir: Path, tmp_path: Path, pipeline: FacePipeline, finder: VideoFaceFinder
) -> None:
    """The same photo twice side by side: vectors almost equal, still two people."""
    _, result = _analyse(tmp_path, twins(faces_dir), pipeline, finder)
    assert len(result.persons) == 2
    lefts = sorted(p.thumbnail.box.x1 for p in result.persons)
    assert lefts[0] < 320 < lefts[1]


def test_a_video_without_faces_is_refused(
    tmp_path: Path, pipeline: FacePipeline, finder: VideoFaceFinder
) -> None:
    path = tmp_path / "empty.mp4"
    write_video(path, [Shot(1.0, BROWN, ())])
    with pytest.raises(NoFaceFound, match="no face was seen"):
        analyse_video(path, pipeline, options=OPTIONS, finder=finder)


@pytest.mark.slow  # a 22 s video at the default settings
def test_people_who_come_back_in_other_photos_are_each_reported_once(
    faces_dir: Path, tmp_path: Path, pipeline: FacePipeline
) -> None:
    """Four people come back three times each, cut after cut, each time in another LFW
    photo of them, between three people seen once: seven persons, each one identity."""
    from facetrace.video.workers import FrameWorkers

    shots = recurring_cast(faces_dir, seed=1)
    path = tmp_path / "cast.mp4"
    truth = write_video(path, shots)
    with FrameWorkers(pipeline.options, workers=2) as workers:
        result = analyse_video(path, pipeline, finder=workers)
    assert result.shots == len(shots)
    identities = []
    for p in result.persons:
        seen = {
            who(shots, ff.timestamp_s, *ff.box.center, width=640, height=360) for ff in p.key_frames
        }
        assert len(seen) == 1, seen  # one identity per person
        identities.append(seen.pop())
    assert sorted(identities) == truth.names  # each once: no fragment, nobody missing
    returning = [p for p in result.persons if len(p.tracks) == 3]
    assert len(returning) == 4

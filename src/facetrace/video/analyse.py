"""Analyse a whole video: sample, detect, track, merge, pick key frames, build templates.

Memory does not grow with the video's length: frames are streamed from the decoder one
at a time, and each track keeps only its running template, its time intervals and a
bounded pool of candidate key-frame crops (:class:`~facetrace.video.keyframes.KeyFramePool`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetrace.config import VideoSettings
from facetrace.engine import FacePipeline
from facetrace.errors import Cancelled, ImageTooLarge, NoFaceFound
from facetrace.imaging import ImageLimits, VideoInfo, inspect_video, iter_video_frames
from facetrace.types import Vector
from facetrace.video.faces import DETECT_PIXELS, FrameFace, VideoFaceFinder
from facetrace.video.keyframes import KeyFramePool, frame_quality, pick_key_frames, template
from facetrace.video.merge import MERGE_COSINE, merge_fragments
from facetrace.video.shots import CUT_THRESHOLD, CutDetector
from facetrace.video.track import Track, Tracker
from facetrace.video.workers import FrameWorkers


@dataclass(frozen=True)
class VideoOptions:
    """How a video is analysed (the defaults are the settings' defaults).

    Attributes:
        sample_fps: frames looked at per second of video.
        long_after_s: videos longer than this are sampled at ``long_sample_fps`` instead
            (CCTV: hours of footage, people on screen for many seconds).
        long_sample_fps: the sampling rate of long videos.
        detect_pixels: the area each frame is scaled to for face detection.
        max_lost_s: how long a track may go unseen before it is closed, in seconds.
        min_usable_faces: tracks with fewer usable faces are dropped.
        min_usable_share: so are tracks where less than this share of the faces is
            usable: a "face" the detector doubts in most frames is not one (the edge of
            a photo on a poster, a pattern in a curtain).
        min_detector_score: the detector score from which a face counts as usable.
        key_frames: key frames per person; key_gap_s: their least spacing in seconds.
        cut_threshold: histogram distance of a shot cut (:mod:`facetrace.video.shots`).
        merge_cosine: fragments merge from this template cosine (:mod:`.merge`).
        max_duration_s: the longest video accepted.
        workers: processes finding the frames' faces (:mod:`facetrace.video.workers`);
            0: one per core; 1: in the calling process.
    """

    sample_fps: float = 3.0
    long_after_s: float = 600.0
    long_sample_fps: float = 1.0
    detect_pixels: int = DETECT_PIXELS
    max_lost_s: float = 1.0
    min_usable_faces: int = 3
    min_usable_share: float = 0.5
    min_detector_score: float = 0.5
    key_frames: int = 5
    key_gap_s: float = 0.4
    cut_threshold: float = CUT_THRESHOLD
    merge_cosine: float = MERGE_COSINE
    max_duration_s: float = 3 * 3600.0
    workers: int = 0

    @classmethod
    def from_settings(cls, video: VideoSettings, **changes: Any) -> VideoOptions:
        """The options the installation's settings give (``changes`` override them)."""
        values: dict[str, Any] = {
            "sample_fps": video.sample_fps,
            "long_after_s": video.long_after_s,
            "long_sample_fps": video.long_sample_fps,
            "max_duration_s": video.max_duration_s,
            "max_lost_s": video.max_lost_s,
            "min_usable_faces": video.min_usable_faces,
            "workers": video.workers,
        }
        values.update(changes)
        return cls(**values)

    def rate_for(self, duration_s: float) -> float:
        """The sampling rate for a video of this length (frames per second)."""
        return self.long_sample_fps if duration_s > self.long_after_s else self.sample_fps


@dataclass(frozen=True)
class VideoProgress:
    """Where an analysis is: video seconds done of the total, sampled frames per second
    of wall time, and the estimated seconds left (``None`` until it can be told)."""

    video_s: float
    duration_s: float
    frames: int
    fps: float
    eta_s: float | None


@dataclass(frozen=True, eq=False)
class Person:
    """One person seen in the video: merged tracks, when, the key frames and template.

    Attributes:
        number: 1-based, in order of first appearance.
        intervals: (start_s, end_s) when they are on screen, sorted, disjoint.
        key_frames: the best faces, spaced in time, best first (crops from the original
            frames, with their frame index and timestamp).
        template: quality-weighted mean of the key frames' vectors, normalised (dim,).
        tracks: the numbers of the tracks merged into this person.
        faces: faces seen in all its tracks.
    """

    number: int
    intervals: tuple[tuple[float, float], ...]
    key_frames: tuple[FrameFace, ...]
    template: Vector
    tracks: tuple[int, ...]
    faces: int

    @property
    def thumbnail(self) -> FrameFace:
        """The best key frame."""
        return self.key_frames[0]

    @property
    def seconds(self) -> float:
        return sum(b - a for a, b in self.intervals)


@dataclass(frozen=True, eq=False)
class VideoAnalysis:
    """The result of :func:`analyse_video`.

    Attributes:
        info: the container's description.
        persons: one per person seen, in order of first appearance.
        sample_fps: the sampling rate used.
        frames_sampled, faces_seen, shots: counts.
        tracks: tracks found before dropping and merging; tracks_kept: after dropping.
        elapsed_s: wall time of the analysis.
    """

    info: VideoInfo
    persons: tuple[Person, ...]
    sample_fps: float
    frames_sampled: int
    faces_seen: int
    shots: int
    tracks: int
    tracks_kept: int
    elapsed_s: float

    @property
    def speed(self) -> float:
        """Video seconds analysed per wall-clock second (above 1: faster than real time)."""
        return self.info.duration_s / self.elapsed_s if self.elapsed_s > 0 else float("inf")


def analyse_video(
    path: str | Path,
    pipeline: FacePipeline,
    *,
    options: VideoOptions = VideoOptions(),
    limits: ImageLimits = ImageLimits(),
    progress: Callable[[VideoProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    finder: VideoFaceFinder | FrameWorkers | None = None,
) -> VideoAnalysis:
    """Find, track and describe every person in a video.

    Args:
        path: the video file.
        pipeline: the face pipeline (the gallery's, so vectors are comparable).
        options: sampling, tracking and merging settings.
        limits: file and frame limits (``max_frames`` is raised to what the duration
            needs at the sampling rate).
        progress: called after every sampled frame.
        cancelled: polled after every sampled frame; when it returns True the analysis
            stops with :class:`~facetrace.errors.Cancelled`.
        finder: the face finder, in process or a pool of worker processes (reused
            across videos to keep its models loaded; the caller closes it); default: one
            made by :func:`make_finder` for this video, closed at the end.

    Returns:
        The :class:`VideoAnalysis`.

    Raises:
        ImageError, ImageTooLarge: the checks of :func:`facetrace.imaging.inspect_video`,
            or data that fails to decode part way.
        NoFaceFound: no person was seen long enough to be tracked.
        Cancelled: ``cancelled()`` returned True.
    """
    started = time.monotonic()
    info = inspect_video(path, limits=limits, max_duration_s=options.max_duration_s)
    rate = options.rate_for(info.duration_s)
    needed = int(info.duration_s * rate) + 10
    frame_limits = ImageLimits(
        max_bytes=limits.max_bytes,
        max_pixels=limits.max_pixels,
        max_video_bytes=limits.max_video_bytes,
        max_frames=max(limits.max_frames, needed),
    )
    cuts = CutDetector(options.cut_threshold)
    tracker = Tracker(
        max_lost=max(1, round(options.max_lost_s * rate)),
        min_detector_score=options.min_detector_score,
        pool_size=3 * options.key_frames,
        key_gap_s=options.key_gap_s,
        gap_s=options.max_lost_s,
    )
    frames = faces_seen = 0
    shots = 1
    own = finder is None
    work = finder if finder is not None else make_finder(pipeline, options)
    # frames sent to the workers, oldest first: (timestamp, is a cut, its faces)
    pending: deque[tuple[float, bool, Future[list[FrameFace]]]] = deque()

    def take() -> None:
        nonlocal frames, faces_seen, shots
        timestamp_s, cut, future = pending.popleft()
        found = work.result(future)
        if cut:
            tracker.cut()
            shots += 1
        faces_seen += len(found)
        tracker.step(found)
        frames += 1
        if progress is not None:
            progress(_progress(timestamp_s, info.duration_s, frames, started))
        if cancelled is not None and cancelled():
            raise Cancelled(f"{info.source}: analysis cancelled after {timestamp_s:.1f} s")

    try:
        for frame in iter_video_frames(path, every_seconds=1.0 / rate, limits=frame_limits):
            if frame.timestamp_s > options.max_duration_s:
                raise ImageTooLarge(
                    info.source,
                    f"the video is longer than the limit of {options.max_duration_s:.0f} s",
                )
            cut = cuts.is_cut(frame.pixels)
            pending.append(
                (frame.timestamp_s, cut, work.submit(frame.pixels, frame.index, frame.timestamp_s))
            )
            while len(pending) > work.window:
                take()
        while pending:
            take()
    finally:
        for _, _, future in pending:
            future.cancel()
        if own:
            work.close()
    tracks = tracker.finish()
    kept = [
        t
        for t in tracks
        if t.usable >= options.min_usable_faces and t.usable >= options.min_usable_share * t.faces
    ]
    persons = _persons(kept, options)
    if not persons:
        raise NoFaceFound(
            f"{info.source}: no face was seen long enough to be searched "
            f"({faces_seen} faces in {frames} sampled frames)"
        )
    return VideoAnalysis(
        info=info,
        persons=tuple(persons),
        sample_fps=rate,
        frames_sampled=frames,
        faces_seen=faces_seen,
        shots=shots,
        tracks=len(tracks),
        tracks_kept=len(kept),
        elapsed_s=time.monotonic() - started,
    )


def make_finder(pipeline: FacePipeline, options: VideoOptions) -> VideoFaceFinder | FrameWorkers:
    """The face finder ``options`` ask for: a pool of ``options.workers`` processes (one
    per core for 0), or the calling process when that is one. The caller closes it."""
    workers = options.workers or os.cpu_count() or 1
    if workers <= 1:
        return VideoFaceFinder(pipeline, detect_pixels=options.detect_pixels)
    return FrameWorkers(pipeline.options, detect_pixels=options.detect_pixels, workers=workers)


def video_limits(video: VideoSettings) -> ImageLimits:
    """The decode limits the installation's video settings give (file size, frame area)."""
    return ImageLimits(max_video_bytes=round(video.max_mb * 1024**2), max_pixels=video.max_pixels)


def _progress(video_s: float, duration_s: float, frames: int, started: float) -> VideoProgress:
    wall = time.monotonic() - started
    fps = frames / wall if wall > 0 else 0.0
    eta = None
    if video_s > 0 and duration_s > video_s:
        eta = wall * (duration_s - video_s) / video_s
    return VideoProgress(video_s, duration_s, frames, fps, eta)


def _track_template(t: Track, options: VideoOptions) -> Vector:
    return template(
        pick_key_frames(t.pool.faces, k=options.key_frames, min_gap_s=options.key_gap_s)
    )


def _persons(tracks: list[Track], options: VideoOptions) -> list[Person]:
    templates = [_track_template(t, options) for t in tracks]
    groups = merge_fragments(
        templates, [t.intervals for t in tracks], threshold=options.merge_cosine
    )
    persons: list[Person] = []
    for group in groups:
        members = [tracks[i] for i in group]
        pool = KeyFramePool(3 * options.key_frames, options.key_gap_s)
        for t in members:
            pool.extend(t.pool)
        intervals = [(a, b) for t in members for a, b in t.intervals]
        persons.append(
            _person(
                pool,
                intervals,
                [t.track_id for t in members],
                sum(t.faces for t in members),
                options,
            )
        )
    return numbered(persons)


def _person(
    pool: KeyFramePool,
    intervals: list[tuple[float, float]],
    tracks: list[int],
    faces: int,
    options: VideoOptions,
) -> Person:
    keys = pick_key_frames(pool.faces, k=options.key_frames, min_gap_s=options.key_gap_s)
    keys.sort(key=frame_quality, reverse=True)
    return Person(
        number=0,
        intervals=tuple(_union(sorted(intervals))),
        key_frames=tuple(keys),
        template=template(keys),
        tracks=tuple(sorted(tracks)),
        faces=faces,
    )


def join_persons(a: Person, b: Person, options: VideoOptions = VideoOptions()) -> Person:
    """One person of two (the caller has made sure they are one: never two persons seen
    at the same time): their key frames pooled and picked again, the template rebuilt.
    Numbered 0 (:func:`numbered` renumbers a list)."""
    pool = KeyFramePool(2 * options.key_frames, options.key_gap_s)
    for ff in (*a.key_frames, *b.key_frames):
        pool.offer(ff)
    return _person(
        pool, [*a.intervals, *b.intervals], [*a.tracks, *b.tracks], a.faces + b.faces, options
    )


def numbered(persons: list[Person]) -> list[Person]:
    """The persons in order of first appearance, numbered from 1."""
    persons = sorted(persons, key=lambda p: p.intervals[0][0])
    return [
        Person(i + 1, p.intervals, p.key_frames, p.template, p.tracks, p.faces)
        for i, p in enumerate(persons)
    ]


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in intervals:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out

"""Search a gallery by video: every person seen, searched once with their track template.

:func:`facetrace.video.analyse_video` finds the persons (tracks merged across cuts and
absences, each with key frames and a quality-weighted template); each template is then
one probe vector of :meth:`Gallery.search_vectors`, so a person's candidate list has the
same scores, false-match rates, threshold and provenance as a photo's face.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from PIL import Image

from facetrace.imaging import ImageLimits
from facetrace.video import Person, VideoAnalysis, VideoOptions, VideoProgress, analyse_video
from facetrace.video.analyse import join_persons, numbered
from facetrace.video.faces import FrameFace
from facetrace.video.merge import overlaps

if TYPE_CHECKING:
    from facetrace.calibration import ModeChoice
    from facetrace.config import ModePolicy, SearchMode
    from facetrace.gallery.directory import Candidate, Gallery


@dataclass(frozen=True, slots=True)
class PersonResult:
    """One person of the video and the gallery's candidates for their template."""

    person: Person
    threshold: float
    candidates: tuple[Candidate, ...]
    below_threshold: tuple[Candidate, ...] = ()
    mode: ModeChoice | None = None  # as for a photo's ProbeResult

    @property
    def no_candidate(self) -> bool:
        return not self.candidates

    def as_dict(self, crops: dict[tuple[int, int], Path] | None = None) -> dict[str, Any]:
        """JSON form; ``crops`` maps (person, key frame number) to a written crop file."""
        p = self.person
        return {
            "person": p.number,
            "intervals": [[round(a, 3), round(b, 3)] for a, b in p.intervals],
            "seconds": round(p.seconds, 3),
            "tracks": list(p.tracks),
            "faces": p.faces,
            "key_frames": [
                key_frame_dict(ff, None if crops is None else crops.get((p.number, i)))
                for i, ff in enumerate(p.key_frames)
            ],
            "mode": None if self.mode is None else str(self.mode.mode),
            "mode_choice": None if self.mode is None else self.mode.as_dict(),
            "threshold": round(self.threshold, 4),
            "no_candidate": self.no_candidate,
            "candidates": [c.as_dict() for c in self.candidates],
            "below_threshold": [c.as_dict() for c in self.below_threshold],
        }


def key_frame_dict(ff: FrameFace, crop: Path | None = None) -> dict[str, Any]:
    """A key frame as JSON: where and when in the original video, its quality."""
    q = ff.face.quality
    out: dict[str, Any] = {
        "frame_index": ff.frame_index,
        "timestamp_s": round(ff.timestamp_s, 3),
        "box": ff.box.as_list(),
        "detector_score": round(ff.face.detection.score, 4),
        "quality": q.score,
        "quality_reasons": [str(r) for r in q.reasons],
    }
    if crop is not None:
        out["crop"] = str(crop)
    return out


@dataclass(frozen=True, slots=True)
class VideoSearch:
    """A video's analysis and one :class:`PersonResult` per person, in order of appearance."""

    analysis: VideoAnalysis
    persons: tuple[PersonResult, ...]

    def summary(self) -> dict[str, Any]:
        """What was looked at: the video, the sampling and the counts."""
        a = self.analysis
        return {
            "duration_s": round(a.info.duration_s, 3),
            "fps": round(a.info.fps, 3),
            "width": a.info.width,
            "height": a.info.height,
            "codec": a.info.codec,
            "sample_fps": a.sample_fps,
            "frames_sampled": a.frames_sampled,
            "faces_seen": a.faces_seen,
            "shots": a.shots,
            "tracks": a.tracks,
            "tracks_kept": a.tracks_kept,
            "persons": len(self.persons),
            "elapsed_s": round(a.elapsed_s, 3),
            "speed": round(a.speed, 3),
        }


def search_video(
    gallery: Gallery,
    path: str | Path,
    *,
    options: VideoOptions = VideoOptions(),
    limits: ImageLimits = ImageLimits(),
    k: int = 10,
    fpir: float = 0.01,
    collections: Iterable[str] | None = None,
    include_below: bool = False,
    progress: Callable[[VideoProgress], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    mode: SearchMode | None = None,
    policy: ModePolicy | None = None,
) -> VideoSearch:
    """Analyse a video with the gallery's pipeline and search every person once, in
    ``mode`` or the one ``policy`` chooses (as :meth:`Gallery.search`).

    Raises what :func:`~facetrace.video.analyse_video` raises: ImageError (not a video,
    truncated, no video stream, unsupported codec), ImageTooLarge (over the limits),
    NoFaceFound (nobody seen long enough), Cancelled.
    """
    analysis = analyse_video(
        path,
        gallery.pipeline,
        options=options,
        limits=limits,
        progress=progress,
        cancelled=cancelled,
    )
    from facetrace.config import ModePolicy, SearchMode
    from facetrace.gallery.directory import listed

    how = gallery.choose_mode(mode, policy=policy or ModePolicy(), fpir=fpir)
    investigating = how.mode == SearchMode.INVESTIGATION
    selector = gallery.selector_for(collections)

    def search(persons: list[Person]) -> list[Row]:
        vectors = np.stack([p.template for p in persons]).astype(np.float32)
        return gallery.search_vectors(
            vectors, k=k, fpir=fpir, selector=selector, include_below=include_below or investigating
        )

    people = list(analysis.persons)
    persons_rows = join_same_subject(people, search(people), search, options)
    people = [p for p, _ in persons_rows]
    analysis = replace(analysis, persons=tuple(people))
    persons = tuple(
        PersonResult(
            p,
            thr,
            tuple(listed(above, below, how.mode)),
            () if investigating else tuple(below),
            mode=how,
        )
        for p, (thr, above, below) in persons_rows
    )
    return VideoSearch(analysis, persons)


# (threshold, candidates at or above it, below it) of one person's search
Row = tuple[float, list["Candidate"], list["Candidate"]]
# Two persons found by one gallery subject are joined only when their own templates are at
# least this close: the tracker's bar for one face followed with its position (FMR 1 %).
JOIN_FLOOR = 0.91
R = TypeVar("R")


def join_same_subject(
    persons: list[Person],
    rows: list[R],
    search: Callable[[list[Person]], list[R]],
    options: VideoOptions = VideoOptions(),
    subject: Callable[[R], Hashable | None] | None = None,
) -> list[tuple[Person, R]]:
    """Join persons of the video whom the gallery finds as one subject.

    The fragment merge (:mod:`facetrace.video.merge`) joins appearances of one person only
    when their templates alone are as close as a false-match rate of 1e-3; appearances in
    another light or pose often are not (two LFW photos of one person score 0.91-0.93).
    When both persons have the same subject first *above the identification threshold*,
    each is identified as that subject anyway, and listing them apart reports one person
    twice. Such a pair is joined when it was never on screen at the same time (two faces of
    one frame are two people, always) and its templates reach ``JOIN_FLOOR``; the joined
    person is searched again and kept only if the subject is still first above the
    threshold (else the two stay apart). Most similar pair first, until none is left.

    ``subject`` tells a row's first subject above the threshold (default: a
    :data:`Row`'s); the service passes its own, for rows that are stored searches.

    Returns:
        (person, its search row) pairs, in order of first appearance, numbered from 1.
    """
    first: Callable[[R], Hashable | None] = subject or _first_subject
    people = list(persons)
    found = list(rows)
    refused: set[tuple[tuple[int, ...], tuple[int, ...]]] = set()
    while True:
        pairs = []
        for a in range(len(people)):
            for b in range(a + 1, len(people)):
                sa, sb = first(found[a]), first(found[b])
                key = (people[a].tracks, people[b].tracks)
                if sa is None or sa != sb or key in refused:
                    continue
                if overlaps(people[a].intervals, people[b].intervals):
                    continue
                cosine = float(people[a].template @ people[b].template)
                if cosine >= JOIN_FLOOR:
                    pairs.append((cosine, a, b))
        if not pairs:
            break
        _, a, b = max(pairs)
        joined = join_persons(people[a], people[b], options)
        row = search([joined])[0]
        if first(row) != first(found[a]):
            refused.add((people[a].tracks, people[b].tracks))
            continue
        people[a], found[a] = joined, row
        del people[b], found[b]
    order = sorted(range(len(people)), key=lambda i: people[i].intervals[0][0])
    renumbered = numbered(people)
    return [(p, found[i]) for p, i in zip(renumbered, order, strict=True)]


def _first_subject(row: Any) -> int | None:
    """The subject of the best candidate at or above the threshold, if any."""
    _, above, _ = row
    return min(above, key=lambda c: c.rank).info.subject_id if above else None


def write_crops(result: VideoSearch, folder: Path) -> dict[tuple[int, int], Path]:
    """Write every person's key-frame crops as JPEG files into ``folder`` (created),
    named ``person-N-keyI-T.jpg`` with T the timestamp in milliseconds.

    Returns:
        (person number, key frame number) -> the file written.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[tuple[int, int], Path] = {}
    for pr in result.persons:
        for i, ff in enumerate(pr.person.key_frames):
            name = f"person-{pr.person.number}-key{i}-{round(ff.timestamp_s * 1000)}ms.jpg"
            target = folder / name
            Image.fromarray(ff.crop).save(target, quality=90)
            written[(pr.person.number, i)] = target
    return written

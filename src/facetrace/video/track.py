"""Frame-to-frame tracking of faces within a shot.

Each sampled frame's faces are matched to the live tracks of the current shot, one to
one, greedily by ``IoU + cosine``. A pair may match when

* the face overlaps the track's *predicted* box (last box moved by the track's velocity,
  constant-velocity prediction over the samples since it was last seen) with IoU at
  least ``IOU_MIN`` and its vector has cosine at least ``COSINE_WITH_POSITION`` to the
  track's running template, or
* without overlap, the cosine alone is at least ``COSINE_ALONE`` (a fast move or a
  detector miss).

Thresholds on our cosine scale (dlib ResNet + flip; the packaged calibration gives the
false-match rate of an impostor pair at each score). The scale is compressed: different
people commonly score 0.85-0.93 (Obama against the performer's template: 0.89 on the
shared clip), one person in consecutive samples 0.94-0.99. With position, 0.91 (FMR 1 %);
without, 0.95 (FMR below 1e-4). One-to-one assignment per frame does the rest.

A track not matched is kept for ``max_lost`` samples, then closed; every track closes at
a shot cut. The running template is an exponential mean (weight 0.3 on the newest face)
of normalised vectors, renormalised.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from facetrace.types import BoundingBox, Vector
from facetrace.video.faces import FrameFace
from facetrace.video.keyframes import KeyFramePool
from facetrace.vision.embed import l2_normalise

IOU_MIN = 0.1
COSINE_WITH_POSITION = 0.91
COSINE_ALONE = 0.95
TEMPLATE_RATE = 0.3


def iou(a: tuple[float, float, float, float], b: BoundingBox) -> float:
    """Intersection over union of a float box (x1, y1, x2, y2) and a box.

    >>> round(iou((0, 0, 10, 10), BoundingBox(5, 0, 15, 10)), 3)
    0.333
    """
    ix = max(0.0, min(a[2], b.x2) - max(a[0], b.x1))
    iy = max(0.0, min(a[3], b.y2) - max(a[1], b.y1))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    union = area_a + b.area - inter
    return inter / union if union > 0 else 0.0


@dataclass(eq=False)
class Track:
    """One face followed through consecutive samples of one shot.

    Attributes:
        track_id: number in order of creation, from 0.
        shot: the shot it belongs to (0-based).
        template: running normalised template for association (dim,).
        pool: candidate key frames (bounded).
        intervals: [start_s, end_s] of each run of samples it was seen in.
        faces: faces matched; usable: those of at least the minimum quality.
        first_frame, last_frame: the stream indices of its first and last face.
    """

    track_id: int
    shot: int
    template: Vector
    pool: KeyFramePool
    intervals: list[list[float]]
    last_box: BoundingBox
    last_sample: int
    velocity: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    faces: int = 1
    usable: int = 0
    first_frame: int = 0
    last_frame: int = 0
    gap_s: float = field(default=1.0)

    def predicted(self, sample: int) -> tuple[float, float, float, float]:
        """The box expected at sample number ``sample`` (constant velocity)."""
        n = sample - self.last_sample
        b, v = self.last_box, self.velocity
        return (b.x1 + v[0] * n, b.y1 + v[1] * n, b.x2 + v[2] * n, b.y2 + v[3] * n)

    def add(self, ff: FrameFace, sample: int, *, usable: bool) -> None:
        n = max(1, sample - self.last_sample)
        b, o = ff.box, self.last_box
        self.velocity = (
            (b.x1 - o.x1) / n,
            (b.y1 - o.y1) / n,
            (b.x2 - o.x2) / n,
            (b.y2 - o.y2) / n,
        )
        self.last_box, self.last_sample = b, sample
        mixed = (1 - TEMPLATE_RATE) * self.template + TEMPLATE_RATE * ff.face.vector
        self.template = l2_normalise(mixed[None, :].astype(np.float32))[0]
        self.pool.offer(ff)
        self.faces += 1
        self.usable += int(usable)
        self.last_frame = ff.frame_index
        if ff.timestamp_s - self.intervals[-1][1] > self.gap_s:
            self.intervals.append([ff.timestamp_s, ff.timestamp_s])
        else:
            self.intervals[-1][1] = ff.timestamp_s


class Tracker:
    """Associates the faces of consecutive sampled frames into tracks.

    Args:
        max_lost: samples a track may go unmatched before it is closed.
        min_detector_score: a face counts as usable from this detector score (the CNN's
            scores of clear faces are near 1; of doubtful ones below 0.5). Quality is not
            used here: dark, turned faces in a crowd still identify, and the template
            weights its faces by quality anyway.
        pool_size, key_gap_s: the key-frame pool of each track.
        gap_s: a pause longer than this (seconds) starts a new time interval.
    """

    def __init__(
        self,
        *,
        max_lost: int = 3,
        min_detector_score: float = 0.5,
        pool_size: int = 12,
        key_gap_s: float = 0.4,
        gap_s: float = 1.0,
    ) -> None:
        self.max_lost = max_lost
        self.min_detector_score = min_detector_score
        self.pool_size = pool_size
        self.key_gap_s = key_gap_s
        self.gap_s = gap_s
        self.live: list[Track] = []
        self.closed: list[Track] = []
        self._shot = 0
        self._sample = -1
        self._next_id = 0

    def cut(self) -> None:
        """A new shot starts: every live track is closed."""
        self.closed.extend(self.live)
        self.live = []
        self._shot += 1

    def step(self, faces: list[FrameFace]) -> list[int]:
        """Match the faces of the next sampled frame; the track id given to each face."""
        self._sample += 1
        s = self._sample
        pairs: list[tuple[float, int, int]] = []
        for ti, t in enumerate(self.live):
            box = t.predicted(s)
            for fi, ff in enumerate(faces):
                cos = float(t.template @ ff.face.vector)
                overlap = iou(box, ff.box)
                if (overlap >= IOU_MIN and cos >= COSINE_WITH_POSITION) or cos >= COSINE_ALONE:
                    pairs.append((overlap + cos, ti, fi))
        pairs.sort(reverse=True)
        given: dict[int, int] = {}
        used: set[int] = set()
        for _, ti, fi in pairs:
            if ti in used or fi in given:
                continue
            used.add(ti)
            t = self.live[ti]
            t.add(faces[fi], s, usable=self._usable(faces[fi]))
            given[fi] = t.track_id
        for fi, ff in enumerate(faces):
            if fi not in given:
                given[fi] = self._start(ff, s).track_id
        still: list[Track] = []
        for t in self.live:
            (still if s - t.last_sample <= self.max_lost else self.closed).append(t)
        self.live = still
        return [given[i] for i in range(len(faces))]

    def finish(self) -> list[Track]:
        """Close every track; all tracks in order of creation."""
        self.closed.extend(self.live)
        self.live = []
        return sorted(self.closed, key=lambda t: t.track_id)

    def _usable(self, ff: FrameFace) -> bool:
        return ff.face.detection.score >= self.min_detector_score

    def _start(self, ff: FrameFace, sample: int) -> Track:
        pool = KeyFramePool(self.pool_size, self.key_gap_s)
        pool.offer(ff)
        t = Track(
            track_id=self._next_id,
            shot=self._shot,
            template=ff.face.vector.astype(np.float32),
            pool=pool,
            intervals=[[ff.timestamp_s, ff.timestamp_s]],
            last_box=ff.box,
            last_sample=sample,
            usable=int(self._usable(ff)),
            first_frame=ff.frame_index,
            last_frame=ff.frame_index,
            gap_s=self.gap_s,
        )
        self._next_id += 1
        self.live.append(t)
        return t

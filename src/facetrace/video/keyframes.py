"""Key frames and the template of a track or person.

A face's key-frame quality is the pipeline's quality score (face size, sharpness,
frontal pose, exposure: :func:`facetrace.vision.quality.assess`) times the detector's
confidence clipped to [0.1, 1]. The key frames are the best faces at least ``min_gap_s``
apart (greedy, best first), so that they show the person at different moments; the
template is the quality-weighted mean of their L2-normalised vectors, normalised again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from facetrace.types import Vector
from facetrace.video.faces import FrameFace
from facetrace.vision.embed import l2_normalise


def frame_quality(ff: FrameFace) -> float:
    """Key-frame quality of one face in [0, 1] (higher is better)."""
    detector = min(1.0, max(0.1, ff.face.detection.score))
    return float(ff.face.quality.score) * detector


def pick_key_frames(faces: Iterable[FrameFace], *, k: int, min_gap_s: float) -> list[FrameFace]:
    """The best ``k`` faces by :func:`frame_quality`, at least ``min_gap_s`` apart in
    time; fewer when the faces are fewer. Best first."""
    chosen: list[FrameFace] = []
    for ff in sorted(faces, key=frame_quality, reverse=True):
        if len(chosen) >= k:
            break
        if all(abs(ff.timestamp_s - c.timestamp_s) >= min_gap_s for c in chosen):
            chosen.append(ff)
    return chosen


def template(key_frames: Sequence[FrameFace]) -> Vector:
    """Quality-weighted mean of the key frames' normalised vectors, normalised (dim,).

    A floor of 0.05 on each weight keeps a track of only poor faces usable.
    """
    if not key_frames:
        raise ValueError("a template needs at least one face")
    vectors = l2_normalise(np.stack([ff.face.vector for ff in key_frames]).astype(np.float32))
    weights = np.array([max(0.05, frame_quality(ff)) for ff in key_frames], dtype=np.float32)
    mean = (weights[:, None] * vectors).sum(axis=0, keepdims=True)
    return l2_normalise(mean)[0]


class KeyFramePool:
    """A bounded pool of a track's candidate key frames, kept while the video streams.

    At most ``capacity`` faces are held: a new face replaces a worse one within half of
    ``min_gap_s`` of it, else it is added and the worst face is dropped when full. So
    memory per track does not grow with the video's length. Half, not the whole gap:
    with the whole gap, samples closer than it (3 frames/s against 0.4 s) competed with
    their neighbour, and a person on screen for two seconds kept two faces where six
    were seen; :func:`pick_key_frames` spaces the chosen ones by the whole gap.
    """

    def __init__(self, capacity: int, min_gap_s: float) -> None:
        self.capacity = capacity
        self.min_gap_s = min_gap_s
        self.faces: list[FrameFace] = []

    def offer(self, ff: FrameFace) -> None:
        q = frame_quality(ff)
        window = self.min_gap_s / 2
        near = [i for i, f in enumerate(self.faces) if abs(f.timestamp_s - ff.timestamp_s) < window]
        if near:
            worst = min(near, key=lambda i: frame_quality(self.faces[i]))
            if frame_quality(self.faces[worst]) < q:
                self.faces[worst] = ff
            return
        self.faces.append(ff)
        if len(self.faces) > self.capacity:
            self.faces.remove(min(self.faces, key=frame_quality))

    def extend(self, other: KeyFramePool) -> None:
        for ff in other.faces:
            self.offer(ff)

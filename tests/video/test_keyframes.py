"""Key frames of a track: every sampled face competes for the pool, the chosen ones are
spaced in time, and the template is their quality-weighted mean."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

from facetrace.types import BoundingBox, Detection, Face, Landmarks, Quality
from facetrace.video.faces import FrameFace
from facetrace.video.keyframes import KeyFramePool, pick_key_frames


def _face(t: float, quality: float) -> FrameFace:
    box = BoundingBox(10, 10, 90, 90)
    lm = Landmarks((60, 40), (55, 40), (30, 40), (35, 40), (45, 60))
    vec = np.zeros(128, dtype=np.float32)
    vec[0] = 1.0
    face = Face(Detection(box, lm, 1.0), Quality(quality), vec, "test")
    crop = np.zeros((4, 4, 3), dtype=np.uint8)
    return FrameFace(round(t * 30), t, face, crop, box)


def test_samples_closer_than_the_gap_all_enter_the_pool() -> None:
    """Three samples a second against a 0.4 s gap: a person seen six times in two
    seconds keeps all six as candidates (it kept two when neighbours competed), and three
    key frames at least 0.4 s apart come out of them."""
    pool = KeyFramePool(capacity=15, min_gap_s=0.4)
    qualities = [0.2, 0.5, 0.3, 0.6, 0.4, 0.9]
    for i, q in enumerate(qualities):
        pool.offer(_face(7.34 + i / 3, q))
    assert len(pool.faces) == 6
    keys = pick_key_frames(pool.faces, k=5, min_gap_s=0.4)
    times = sorted(k.timestamp_s for k in keys)
    assert len(keys) == 3 and all(b - a >= 0.4 for a, b in pairwise(times))
    assert keys[0].face.quality.score == 0.9  # best first


def test_the_pool_stays_bounded_and_keeps_the_best() -> None:
    pool = KeyFramePool(capacity=5, min_gap_s=0.4)
    qualities = [(i * 37 % 101) / 101 for i in range(300)]  # ten minutes, a face per 2 s
    for i, q in enumerate(qualities):
        pool.offer(_face(i * 2.0, q))
    assert len(pool.faces) == 5
    assert sorted(f.face.quality.score for f in pool.faces) == sorted(qualities)[-5:]

"""Subject templates: one or a few vectors standing for all of a subject's reference faces.

The mean of several photos' unit vectors points closer to the person's "true" vector than
any one photo does (its noise averages out), while a stranger's score against it stays
spread as against a single face; so a mate scores higher at the same false-alarm rate.
Each face counts by its quality. When the photos are spread out (different ages or
poses: some pair of faces scores below :data:`SPREAD_COSINE`), one mean would sit between
them and match neither well, so the faces are split into up to ``max_centroids`` groups
(farthest-point seeds, then nearest-seed assignment) and each group gets its own mean.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

SPREAD_COSINE = 0.75  # faces of one subject closer than this are averaged together
MAX_CENTROIDS = 3
MIN_WEIGHT = 0.05  # a face of quality 0 still counts a little


def _unit(v: npt.NDArray[np.floating]) -> Vectors:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(n, 1e-12)).astype(np.float32)


def subject_template(
    vectors: Vectors,
    quality: npt.ArrayLike | None = None,
    *,
    spread_cosine: float = SPREAD_COSINE,
    max_centroids: int = MAX_CENTROIDS,
) -> Vectors:
    """The template of one subject: (c, d) unit vectors, ``1 <= c <= max_centroids``.

    Args:
        vectors: the subject's face vectors, (n, d), L2-normalised, n >= 1.
        quality: each face's quality in [0, 1] (weights); default all equal.
        spread_cosine: faces whose score with the others falls below this are split into
            sub-centroids.
        max_centroids: the most sub-centroids kept.

    >>> t = subject_template(np.eye(2, dtype=np.float32))
    >>> t.shape  # two orthogonal faces: too spread for one mean
    (2, 2)
    >>> subject_template(np.array([[1, 0], [0.96, 0.28]], np.float32)).shape
    (1, 2)
    """
    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"need (n, d) vectors with n >= 1, got shape {v.shape}")
    n = v.shape[0]
    w = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64).reshape(n)
    w = np.maximum(w, MIN_WEIGHT)
    if n == 1:
        return _unit(v)
    sims = v @ v.T
    if max_centroids <= 1 or sims.min() >= spread_cosine:
        return _unit((w[:, None] * v).sum(axis=0, keepdims=True))
    # farthest-point seeds: the best-quality face, then the face least like any seed
    seeds = [int(np.argmax(w))]
    while len(seeds) < min(max_centroids, n):
        closest = sims[:, seeds].max(axis=1)
        far = int(np.argmin(closest))
        if closest[far] >= spread_cosine:
            break
        seeds.append(far)
    owner = np.argmax(sims[:, seeds], axis=1)
    return _unit(
        np.stack([(w[owner == c, None] * v[owner == c]).sum(axis=0) for c in range(len(seeds))])
    )

"""Benchmark galleries: real LFW embeddings plus synthetic faces drawn to match them.

How the synthetic faces are drawn (a two-level Gaussian fitted to the real vectors):

* the *within-identity* covariance ``W`` is the covariance of (photo - its identity's
  mean) over LFW identities with two or more photos, corrected for the bias of
  small groups (``n/(n-1)``);
* the *between-identity* covariance is ``B = T - W``, with ``T`` the covariance of all
  real vectors, clipped to be positive semi-definite; the centres' mean is the mean
  of all real vectors;
* a synthetic identity draws a centre ``c ~ N(mean, B)`` and each of its photos is
  ``c + e`` with ``e ~ N(0, W)``, then L2-normalised like a real embedding;
* photos per identity follow LFW's own counts, capped at 10.

:func:`similarity_stats` compares genuine and impostor cosine scores of real and
synthetic data, so the benchmark can show the match (BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FaceModel:
    """The fitted two-level Gaussian: centre mean, Cholesky factors of B and W, counts."""

    mean: npt.NDArray[np.float64]
    between: npt.NDArray[np.float64]
    within: npt.NDArray[np.float64]
    photos_per_identity: I64


def _psd_factor(cov: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))


def fit(vectors: F32, labels: I64) -> FaceModel:
    """Fit the generator to real unit vectors (n, d) with identity labels (n,)."""
    x = vectors.astype(np.float64)
    uniq, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    sums = np.zeros((uniq.size, x.shape[1]))
    np.add.at(sums, inverse, x)
    means = sums / counts[:, None]
    multi = counts[inverse] >= 2
    resid = (x - means[inverse])[multi]
    scale = (counts[inverse] / np.maximum(counts[inverse] - 1, 1))[multi]
    within = (resid * scale[:, None]).T @ resid / max(resid.shape[0], 1)
    total = np.cov(x, rowvar=False)
    return FaceModel(
        mean=x.mean(axis=0),
        between=_psd_factor(total - within),
        within=_psd_factor(within),
        photos_per_identity=np.minimum(counts, 10).astype(np.int64),
    )


def synthesize(model: FaceModel, n: int, seed: int, out: F32 | None = None) -> tuple[F32, I64]:
    """``n`` synthetic unit vectors (n, d) float32 and their identity labels (n,).

    Written into ``out`` (shape (n, d)) when given, so 10M faces need one 5 GB array.
    """
    rng = np.random.default_rng(seed)
    d = model.mean.size
    counts: list[int] = []
    total = 0
    while total < n:
        c = int(rng.choice(model.photos_per_identity))
        c = min(c, n - total)
        counts.append(c)
        total += c
    labels = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    centres = np.empty((len(counts), d), dtype=np.float32)
    for start in range(0, len(counts), 250_000):
        stop = min(len(counts), start + 250_000)
        centres[start:stop] = model.mean + rng.standard_normal((stop - start, d)) @ model.between.T
    if out is None:
        out = np.empty((n, d), dtype=np.float32)
    step = 250_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        noise = rng.standard_normal((stop - start, d)) @ model.within.T
        block = centres[labels[start:stop]] + noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop] = block
    return out, labels


def similarity_stats(vectors: F32, labels: I64, seed: int = 0) -> dict[str, float]:
    """Median and 1st/99th percentile of genuine and impostor cosine scores (sampled)."""
    rng = np.random.default_rng(seed)
    n = len(vectors)
    a, b = rng.integers(0, n, 200_000), rng.integers(0, n, 200_000)
    impostor = np.einsum("ij,ij->i", vectors[a], vectors[b])[labels[a] != labels[b]]
    order = np.argsort(labels, kind="stable")
    same = np.flatnonzero(np.diff(labels[order]) == 0)
    pick = rng.choice(same, size=min(same.size, 50_000), replace=False)
    genuine = np.einsum("ij,ij->i", vectors[order[pick]], vectors[order[pick + 1]])
    return {
        "genuine_p1": float(np.percentile(genuine, 1)),
        "genuine_p50": float(np.median(genuine)),
        "impostor_p50": float(np.median(impostor)),
        "impostor_p99": float(np.percentile(impostor, 99)),
        "impostor_p99.99": float(np.percentile(impostor, 99.99)),
    }


@dataclass(frozen=True)
class Split:
    """Real photos arranged as gallery part and two query sets."""

    gallery: F32  # real photos enrolled in the gallery
    enrolled_queries: F32  # held-out photos of people with other photos in the gallery
    stranger_queries: F32  # photos of people with no photo in the gallery


def split_lfw(vectors: F32, labels: I64, seed: int = 0) -> Split:
    """Half the identities with 2+ photos are enrolled (one photo held out as a query);
    the other half are strangers (one query each, none of their photos enrolled)."""
    rng = np.random.default_rng(seed)
    uniq, counts = np.unique(labels, return_counts=True)
    multi = uniq[counts >= 2]
    rng.shuffle(multi)
    enrolled, strangers = set(multi[: multi.size // 2]), set(multi[multi.size // 2 :])
    gallery: list[int] = []
    enrolled_q: list[int] = []
    stranger_q: list[int] = []
    seen: set[int] = set()
    for i, label in enumerate(labels.tolist()):
        if label in strangers:
            if label not in seen:
                stranger_q.append(i)
                seen.add(label)
        elif label in enrolled and label not in seen:
            enrolled_q.append(i)
            seen.add(label)
        else:
            gallery.append(i)
    return Split(vectors[gallery], vectors[enrolled_q], vectors[stranger_q])

"""Adaptive symmetric score normalisation (AS-norm) against a cohort of strangers.

A raw cosine means different things for different faces: some faces (a common look, a
poor photo) score high against everyone. AS-norm measures that: each side of a
comparison is scored against a cohort of faces of people in neither the gallery's test
nor the probe, and its ``top_k`` highest cohort scores give a mean and a spread; the
normalised score is the mean of the two z-scores,

    s' = ((s - mu_probe) / sigma_probe + (s - mu_ref) / sigma_ref) / 2.

Only the index's top candidates are re-scored (a probe's cohort statistics cost one
matrix product, each candidate's another), so the search stays an index search. The
normalised score has its own false-match table (a raw-cosine table does not apply to it).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]

# cohort scores per side that make the statistics: chosen on the LFW dev part from 50, 100,
# 200 and 400 of a 1,283-face LFW cohort (BENCHMARKS.md "accuracy")
TOP_K = 400
MIN_SIGMA = 1e-3


@dataclass(frozen=True, eq=False)
class Cohort:
    """Unit vectors of faces of people outside any test, one model's.

    Attributes:
        model_id: the model the vectors come from.
        vectors: (m, d) float32 unit rows.
        top_k: cohort scores per side used for the statistics (at most m).
        source: where the faces came from.
    """

    model_id: str
    vectors: Vectors
    top_k: int = TOP_K
    source: str = ""

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] < 2:
            raise ValueError("a cohort needs at least two vectors")
        if not 1 <= self.top_k <= self.vectors.shape[0]:
            raise ValueError(f"top_k must be in [1, {self.vectors.shape[0]}], got {self.top_k}")

    def stats(self, vectors: Vectors) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """(mean, spread) of each row's ``top_k`` highest cohort scores, shapes (n,)."""
        v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        scores = v @ self.vectors.T
        k = self.top_k
        top = np.partition(scores, scores.shape[1] - k, axis=1)[:, -k:].astype(np.float64)
        return top.mean(axis=1), np.maximum(top.std(axis=1), MIN_SIGMA)

    def normalise(
        self,
        raw: npt.ArrayLike,
        probe_stats: tuple[npt.ArrayLike, npt.ArrayLike],
        ref_stats: tuple[npt.ArrayLike, npt.ArrayLike],
    ) -> npt.NDArray[np.float64]:
        """AS-norm of raw scores given both sides' statistics (broadcasting)."""
        s = np.asarray(raw, dtype=np.float64)
        mp, sp = (np.asarray(x, dtype=np.float64) for x in probe_stats)
        mr, sr = (np.asarray(x, dtype=np.float64) for x in ref_stats)
        return 0.5 * ((s - mp) / sp + (s - mr) / sr)

    def score_pairs(self, a: Vectors, b: Vectors) -> npt.NDArray[np.float64]:
        """AS-norm of every pair (a_i, b_j): shape (len(a), len(b))."""
        a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
        ma, sa = self.stats(a2)
        mb, sb = self.stats(b2)
        raw = a2 @ b2.T
        return self.normalise(raw, (ma[:, None], sa[:, None]), (mb[None, :], sb[None, :]))


def cohort_bytes(cohort: Cohort) -> bytes:
    """A cohort as ``.npz`` bytes (vectors as float16: 256 bytes a 128-d face) with its
    model, ``top_k`` and source."""
    meta = {"model_id": cohort.model_id, "top_k": cohort.top_k, "source": cohort.source}
    buf = io.BytesIO()
    np.savez_compressed(
        buf, vectors=cohort.vectors.astype(np.float16), meta=np.array(json.dumps(meta))
    )
    return buf.getvalue()


def save_cohort(cohort: Cohort, path: Path) -> None:
    """Write a cohort as an ``.npz`` file (:func:`cohort_bytes`)."""
    path.write_bytes(cohort_bytes(cohort))


def read_cohort(data: bytes, *, what: str) -> Cohort:
    """A cohort from :func:`save_cohort`'s bytes; ValueError naming ``what`` if malformed."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            vectors = npz["vectors"].astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return Cohort(
            model_id=str(meta["model_id"]),
            vectors=(vectors / np.maximum(norms, 1e-12)).astype(np.float32),
            top_k=int(meta["top_k"]),
            source=str(meta.get("source", "")),
        )
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed cohort {what}: {exc}") from exc


def impostor_scores_normalised(
    vectors: Vectors, labels: npt.ArrayLike, cohort: Cohort, *, chunk: int = 2048
) -> npt.NDArray[np.float32]:
    """AS-norm scores of every pair of vectors with different labels (as
    :func:`facetrace.calibration.impostor_scores` for raw cosines): the impostor pairs a
    false-match table of the normalised score is fitted on. The labelled people must not
    be in the cohort."""
    labels_arr = np.asarray(labels)
    mean, spread = cohort.stats(vectors)
    out: list[npt.NDArray[np.float32]] = []
    n = vectors.shape[0]
    for start in range(0, n, chunk):
        block = vectors[start : start + chunk] @ vectors.T
        stop = start + block.shape[0]
        norm = cohort.normalise(
            block,
            (mean[start:stop, None], spread[start:stop, None]),
            (mean[None, :], spread[None, :]),
        )
        for i in range(block.shape[0]):
            row = start + i
            mask = labels_arr[row + 1 :] != labels_arr[row]
            out.append(norm[i, row + 1 :][mask].astype(np.float32))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


def in_cohort(name: str, share: float = 0.2) -> bool:
    """Whether identity ``name`` of a labelled set goes to the cohort (about ``share`` of
    them, by a hash of the name: the same people every run, whatever the results).

    >>> sum(in_cohort(f"person {i}") for i in range(1000)) in range(150, 250)
    True
    """
    digest = hashlib.sha256(f"role:{name}".encode()).digest()
    return digest[0] < round(256 * share)

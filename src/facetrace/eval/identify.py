"""Open-set 1:N identification on any folder-per-subject set, NIST style.

For subjects with at least two photos, the first (sorted by file name) is
enrolled and the others are probes. Half of those subjects, chosen by a
seeded hash of the name, are not enrolled at all: their probes are
"non-mated" and should come back "no candidate". Single-photo subjects are
enrolled as distractors.

Reported: rank-1 and rank-10 hit rates of mated probes (closed-set view), and
FNIR at FPIR: the threshold ``T`` is set so that a fraction FPIR of non-mated
probes has a top score ``>= T``; FNIR is the fraction of mated probes whose
mate is not returned within the candidate list (``rank <= 10``) at a score
``>= T`` (NIST's FNIR(N, R=L, T)).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.config import PipelineOptions
from facetrace.eval.embedding import embed_photos
from facetrace.gallery.ingest import IMAGE_SUFFIXES
from facetrace.index.flat import FlatIndex

CANDIDATES = 10


def unenrolled(name: str, seed: int) -> bool:
    """Whether a multi-photo subject is held out of the gallery (about half are).

    >>> [unenrolled(n, 0) for n in ("a", "b", "c", "d")].count(True) in range(0, 5)
    True
    """
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return digest[0] % 2 == 1


def split(
    images: Path, seed: int = 0
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path, bool]]]:
    """(gallery [(subject, path)], probes [(subject, path, mated)])."""
    gallery: list[tuple[str, Path]] = []
    probes: list[tuple[str, Path, bool]] = []
    for sub in sorted(p for p in images.iterdir() if p.is_dir()):
        photos = sorted(
            p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not photos:
            continue
        if len(photos) == 1:
            gallery.append((sub.name, photos[0]))
            continue
        held_out = unenrolled(sub.name, seed)
        if not held_out:
            gallery.append((sub.name, photos[0]))
        probes.extend((sub.name, p, not held_out) for p in photos[1:])
    return gallery, probes


def fnir_at_fpir(
    mate_scores: npt.NDArray[np.float64], nonmated_top: npt.NDArray[np.float64], fpir: float
) -> tuple[float | None, float | None]:
    """(FNIR, threshold) at ``fpir``; (None, None) if too few non-mated probes to resolve it.

    ``mate_scores`` holds each mated probe's mate score within the candidate
    list, or ``-inf`` when the mate was not in it.
    """
    n = nonmated_top.size
    if n == 0 or fpir * n < 1:
        return None, None
    s = np.sort(nonmated_top)[::-1]
    allowed = int(np.floor(fpir * n))  # non-mated probes allowed at or above T
    t = float(np.nextafter(s[allowed], np.inf)) if allowed < n else float(s[-1])
    return float((mate_scores < t).mean()), t


def evaluate_identify(
    images: Path,
    *,
    options: PipelineOptions,
    workers: int = 1,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol on ``images`` (folder per subject); returns a JSON-ready dict."""
    gallery, probes = split(images, seed)
    paths = [p for _, p in gallery] + [p for _, p, _ in probes]
    vecs = embed_photos(paths, options=options, workers=workers, progress=progress)
    g_vecs = vecs[: len(gallery)]
    p_vecs = vecs[len(gallery) :]
    keep = [i for i, v in enumerate(g_vecs) if v.vector is not None]
    dim = next(v.vector.shape[0] for v in vecs if v.vector is not None)
    index = FlatIndex(dim)
    if keep:
        index.add(
            np.array(keep, dtype=np.int64),
            np.stack([g_vecs[i].vector for i in keep]).astype(np.float32),  # type: ignore[misc]
        )
    usable = [i for i, v in enumerate(p_vecs) if v.vector is not None]
    q = np.stack([p_vecs[i].vector for i in usable]).astype(np.float32)  # type: ignore[misc]
    scores, ids = index.search(q, CANDIDATES)
    gallery_names = [name for name, _ in gallery]
    mate_rank: list[int | None] = []
    mate_score: list[float] = []
    nonmated_top: list[float] = []
    for row, i in enumerate(usable):
        name, _, mated = probes[i]
        if mated:
            rank = next(
                (r for r, gid in enumerate(ids[row]) if gid >= 0 and gallery_names[gid] == name),
                None,
            )
            mate_rank.append(rank)
            mate_score.append(float(scores[row, rank]) if rank is not None else -np.inf)
        else:
            nonmated_top.append(float(scores[row, 0]))
    ranks = np.array([r if r is not None else 10**9 for r in mate_rank])
    ms = np.array(mate_score)
    nm = np.array(nonmated_top)
    result: dict[str, Any] = {
        "protocol": "open-set-1:N",
        "gallery_size": len(keep),
        "mated_probes": len(mate_rank),
        "nonmated_probes": len(nonmated_top),
        "unreadable": [v.path for v in vecs if v.vector is None],
        "no_face_detected": sum(1 for v in vecs if v.how == "centre"),
        "no_face_policy": "detector retried at threshold -0.5, then a centred box (half the image)",
        "rank1": float((ranks == 0).mean()) if ranks.size else None,
        "rank10": float((ranks < 10).mean()) if ranks.size else None,
        "seed": seed,
        "candidate_list_length": CANDIDATES,
        "model": options.model,
    }
    for fpir in (0.1, 0.01, 0.001):
        fnir, t = fnir_at_fpir(ms, nm, fpir)
        result[f"fnir_at_fpir_{fpir:g}"] = fnir
        result[f"threshold_at_fpir_{fpir:g}"] = t
    return result

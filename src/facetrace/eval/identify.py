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
from facetrace.eval.embedding import SUBJECT_POLICY, embed_photos
from facetrace.gallery.ingest import IMAGE_SUFFIXES
from facetrace.scoring.asnorm import Cohort
from facetrace.scoring.templates import subject_template

CANDIDATES = 10
RESCORE = 50  # candidates re-scored by AS-norm (the gallery's search does the same)


def unenrolled(name: str, seed: int) -> bool:
    """Whether a multi-photo subject is held out of the gallery (about half are).

    >>> [unenrolled(n, 0) for n in ("a", "b", "c", "d")].count(True) in range(0, 5)
    True
    """
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return digest[0] % 2 == 1


def split(
    images: Path, seed: int = 0, *, enrol: int = 1, probe_from: int | None = None
) -> tuple[list[tuple[str, Path]], list[tuple[str, Path, bool]]]:
    """(gallery [(subject, path)], probes [(subject, path, mated)]).

    Subjects with more photos than ``probe_from`` (default ``enrol``) are enrolled with
    their first ``enrol`` photos, or held out (about half, by a hash of the name and
    ``seed``); their photos from number ``probe_from`` on are the probes. The others are
    distractors, enrolled with up to ``enrol`` photos. ``probe_from`` above ``enrol``
    keeps the probes of a comparison fixed (1 vs 3 enrolled photos: ``probe_from=3``).
    """
    if enrol < 1:
        raise ValueError(f"enrol must be at least 1, got {enrol}")
    first_probe = enrol if probe_from is None else probe_from
    if first_probe < enrol:
        raise ValueError(f"probe_from ({first_probe}) must be at least enrol ({enrol})")
    gallery: list[tuple[str, Path]] = []
    probes: list[tuple[str, Path, bool]] = []
    for sub in sorted(p for p in images.iterdir() if p.is_dir()):
        photos = sorted(
            p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not photos:
            continue
        if len(photos) <= first_probe:
            gallery.extend((sub.name, p) for p in photos[:enrol])
            continue
        held_out = unenrolled(sub.name, seed)
        if not held_out:
            gallery.extend((sub.name, p) for p in photos[:enrol])
        probes.extend((sub.name, p, not held_out) for p in photos[first_probe:])
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


def rank_subjects(
    probes: npt.NDArray[np.float32],
    refs: npt.NDArray[np.float32],
    owner: npt.NDArray[np.int64],
    n_subjects: int,
    *,
    cohort: Cohort | None = None,
    rescore: int = RESCORE,
    k: int = CANDIDATES,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Top-``k`` subjects per probe: (scores, subject numbers), best first, exhaustively.

    ``refs`` are the gallery's reference vectors (faces, and templates if searched),
    ``owner`` their subject numbers (0 .. n_subjects-1); a subject scores its best
    reference. With a ``cohort`` the ``rescore`` best subjects are re-scored by AS-norm
    (their best reference against the probe) and re-ranked, as the gallery's search does.
    Missing ranks (a gallery smaller than ``k``) have score -inf and subject -1.
    """
    raw = probes.astype(np.float32) @ refs.astype(np.float32).T
    best = np.full((raw.shape[0], n_subjects), -np.inf)
    arg = np.zeros((raw.shape[0], n_subjects), dtype=np.int64)
    for j in range(refs.shape[0]):
        g = int(owner[j])
        better = raw[:, j] > best[:, g]
        best[better, g] = raw[better, j]
        arg[better, g] = j
    depth = min(n_subjects, max(k, rescore) if cohort is not None else k)
    top = np.argsort(-best, axis=1, kind="stable")[:, :depth]
    scores = np.take_along_axis(best, top, axis=1)
    if cohort is not None:
        used = np.take_along_axis(arg, top, axis=1)
        pm, ps = cohort.stats(probes)
        rm, rs = cohort.stats(refs)
        scores = cohort.normalise(scores, (pm[:, None], ps[:, None]), (rm[used], rs[used]))
        order = np.argsort(-scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        scores = np.take_along_axis(scores, order, axis=1)
    scores, top = scores[:, :k], top[:, :k]
    if top.shape[1] < k:
        pad = k - top.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        top = np.pad(top, ((0, 0), (0, pad)), constant_values=-1)
    return scores, top


def evaluate_identify(
    images: Path,
    *,
    options: PipelineOptions,
    workers: int = 1,
    seed: int = 0,
    enrol: int = 1,
    probe_from: int | None = None,
    templates: bool = False,
    cohort: Cohort | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol on ``images`` (folder per subject); returns a JSON-ready dict.

    ``enrol`` photos per enrolled subject (probes from photo ``probe_from`` on, see
    :func:`split`); ``templates`` searches each subject's template
    (:func:`facetrace.scoring.templates.subject_template`) alongside its faces;
    ``cohort`` re-scores the top candidates by AS-norm.
    """
    gallery, probes = split(images, seed, enrol=enrol, probe_from=probe_from)
    paths = [p for _, p in gallery] + [p for _, p, _ in probes]
    vecs = embed_photos(paths, options=options, workers=workers, progress=progress)
    g_vecs = vecs[: len(gallery)]
    p_vecs = vecs[len(gallery) :]
    names = sorted(
        {name for (name, _), v in zip(gallery, g_vecs, strict=True) if v.vector is not None}
    )
    number = {name: i for i, name in enumerate(names)}
    faces: dict[str, list[tuple[npt.NDArray[np.float32], float]]] = {n: [] for n in names}
    for (name, _), v in zip(gallery, g_vecs, strict=True):
        if v.vector is not None:
            faces[name].append((v.vector, v.quality))
    refs: list[npt.NDArray[np.float32]] = []
    owner: list[int] = []
    templated = 0
    for name in names:
        vs = np.stack([f for f, _ in faces[name]]).astype(np.float32)
        refs.append(vs)
        owner += [number[name]] * len(vs)
        if templates and len(vs) > 1:
            template = subject_template(vs, [q for _, q in faces[name]])
            refs.append(template)
            owner += [number[name]] * len(template)
            templated += 1
    usable = [i for i, v in enumerate(p_vecs) if v.vector is not None]
    q = np.stack([p_vecs[i].vector for i in usable]).astype(np.float32)  # type: ignore[misc]
    scores, ids = rank_subjects(
        q, np.concatenate(refs), np.array(owner, dtype=np.int64), len(names), cohort=cohort
    )
    mate_rank: list[int | None] = []
    mate_score: list[float] = []
    nonmated_top: list[float] = []
    for row, i in enumerate(usable):
        name, _, mated = probes[i]
        if mated:
            rank = next((r for r, gid in enumerate(ids[row]) if gid == number.get(name)), None)
            mate_rank.append(rank)
            mate_score.append(float(scores[row, rank]) if rank is not None else -np.inf)
        else:
            nonmated_top.append(float(scores[row, 0]))
    ranks = np.array([r if r is not None else 10**9 for r in mate_rank])
    ms = np.array(mate_score)
    nm = np.array(nonmated_top)
    per_subject = np.bincount([len(faces[n]) for n in names])
    result: dict[str, Any] = {
        "protocol": "open-set-1:N",
        "gallery_size": len(names),
        "enrolled_photos": int(sum(len(f) for f in faces.values())),
        "subjects_by_enrolled_photos": {
            str(n): int(c) for n, c in enumerate(per_subject.tolist()) if c
        },
        "enrol": enrol,
        "probe_from": enrol if probe_from is None else probe_from,
        "templates": templates,
        "templated_subjects": templated,
        "score": "as-norm" if cohort is not None else "cosine",
        "cohort": None
        if cohort is None
        else {
            "faces": int(cohort.vectors.shape[0]),
            "top_k": cohort.top_k,
            "source": cohort.source,
        },
        "mated_probes": len(mate_rank),
        "nonmated_probes": len(nonmated_top),
        "unreadable": [v.path for v in vecs if v.vector is None],
        "no_face_detected": sum(1 for v in vecs if v.how == "centre"),
        "subject_policy": SUBJECT_POLICY,
        "centre_face_by_cnn": sum(1 for v in vecs if v.how == "centre-cnn"),
        "no_face_policy": "detector retried at threshold -0.5, then a centred box (half the image)",
        "rank1": float((ranks == 0).mean()) if ranks.size else None,
        "rank10": float((ranks < 10).mean()) if ranks.size else None,
        "seed": seed,
        "candidate_list_length": CANDIDATES,
        "model": options.model,
        "detector": str(options.detector),
    }
    for fpir in (0.1, 0.01, 0.001):
        fnir, t = fnir_at_fpir(ms, nm, fpir)
        result[f"fnir_at_fpir_{fpir:g}"] = fnir
        result[f"threshold_at_fpir_{fpir:g}"] = t
        result[f"nonmated_probes_at_fpir_{fpir:g}"] = int(np.floor(fpir * nm.size))
    return result

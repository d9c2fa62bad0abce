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

The search is the gallery's own (:meth:`facetrace.gallery.directory.Gallery.search_vectors`
on a throw-away gallery of the enrolled photos' vectors, :func:`gallery_search`): its best
face per subject, its subject templates and its template false-match tables, as an
investigator's search runs. The gallery's own "no candidate" threshold at each FPIR is
checked against the non-mated probes too (``gallery_threshold``: the FPIR it really
gives). Only AS-norm (``cohort``) is scored by :func:`rank_subjects` over the same
vectors, since a gallery AS-norms with a false-match table of its own that an evaluation
does not have.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.calibration import TemplateCalibration
from facetrace.config import PipelineOptions
from facetrace.eval.curves import LeverCurves, cmc, identification_det
from facetrace.eval.embedding import SUBJECT_POLICY, embed_photos
from facetrace.gallery.directory import Gallery, NewPhoto
from facetrace.gallery.ingest import IMAGE_SUFFIXES
from facetrace.scoring.asnorm import Cohort
from facetrace.scoring.templates import subject_template
from facetrace.store.repo import Provenance
from facetrace.types import BoundingBox, Detection, Face, Landmarks, Quality

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

    The figures at the top level are the configuration asked for; ``levers`` lists
    every configuration the same embeddings allow (cosine on faces only; with templates
    when a subject has several photos; with AS-norm when a ``cohort`` is given; both),
    each with its figures and its DET and CMC curves (:class:`LeverCurves`), so each
    lever can be drawn as its own line (:mod:`facetrace.eval.plots`).
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
    usable = [i for i, v in enumerate(p_vecs) if v.vector is not None]
    q = np.stack([p_vecs[i].vector for i in usable]).astype(np.float32)  # type: ignore[misc]
    mated = [probes[i][2] for i in usable]
    mate_of = [number.get(probes[i][0], -1) for i in usable]
    several = any(len(f) > 1 for f in faces.values())
    levers = [
        (lever_label(t, c is not None), t, c)
        for t in ([False, True] if several else [False])
        for c in ([None, cohort] if cohort is not None else [None])
    ]
    measured = {
        label: _measure(
            q, mated, mate_of, names, faces, number, templates=t, cohort=c, options=options
        )
        for label, t, c in levers
    }
    configured = lever_label(templates and several, cohort is not None)
    run = measured[configured]
    ranks, nm, templated = run.ranks, run.nonmated_top, run.templated
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
        "mated_probes": int(ranks.size),
        "nonmated_probes": int(nm.size),
        "unreadable": [v.path for v in vecs if v.vector is None],
        "no_face_detected": sum(1 for v in vecs if v.how == "centre"),
        "subject_policy": SUBJECT_POLICY,
        "centre_face_by_cnn": sum(1 for v in vecs if v.how == "centre-cnn"),
        "no_face_policy": "detector retried at threshold -0.5, then a centred box (half the image)",
        **run.figures(),
        "seed": seed,
        "candidate_list_length": CANDIDATES,
        "model": options.model,
        "detector": str(options.detector),
    }
    result["levers"] = [
        m.curves(label, configured=label == configured).as_dict() for label, m in measured.items()
    ]
    return result


def lever_label(templates: bool, asnorm: bool) -> str:
    """A configuration in words, as the figures' legends and ``levers`` name it."""
    parts = (["templates"] if templates else []) + (["AS-norm"] if asnorm else [])
    return " + ".join(parts) or "cosine, faces only"


@dataclass(frozen=True)
class _Measured:
    """One configuration's outcome on the probes: each mated probe's mate rank (0-based;
    10**9 when the mate is not in the list) and mate score (-inf then), each non-mated
    probe's top score, and how many subjects got a template."""

    ranks: npt.NDArray[np.int64]
    mate_scores: npt.NDArray[np.float64]
    nonmated_top: npt.NDArray[np.float64]
    templated: int
    search: str = "gallery"  # or "rank_subjects (AS-norm)"
    # FPIR -> the gallery's own threshold, the FPIR and FNIR it gives on these probes
    gallery_threshold: dict[str, dict[str, float | None]] = field(default_factory=dict)
    top_by_template: int = 0  # probes whose first candidate was scored by a template

    def figures(self) -> dict[str, Any]:
        """rank-1, rank-10 and, at FPIR 0.1, 0.01 and 0.001, FNIR, its threshold and the
        number of non-mated probes allowed above it."""
        r, ms, nm = self.ranks, self.mate_scores, self.nonmated_top
        out: dict[str, Any] = {
            "rank1": float((r == 0).mean()) if r.size else None,
            "rank10": float((r < 10).mean()) if r.size else None,
        }
        for fpir in (0.1, 0.01, 0.001):
            fnir, t = fnir_at_fpir(ms, nm, fpir)
            out[f"fnir_at_fpir_{fpir:g}"] = fnir
            out[f"threshold_at_fpir_{fpir:g}"] = t
            out[f"nonmated_probes_at_fpir_{fpir:g}"] = int(np.floor(fpir * nm.size))
        out["search"] = self.search
        out["gallery_threshold"] = self.gallery_threshold
        out["top_candidates_by_template"] = self.top_by_template
        return out

    def curves(self, label: str, *, configured: bool) -> LeverCurves:
        """The DET (FNIR against FPIR) and CMC (ranks 1 to 10) of this configuration."""
        x, y = identification_det(self.mate_scores, self.nonmated_top)
        return LeverCurves(
            label=label,
            det_x=x,
            det_y=y,
            cmc=cmc(self.ranks, CANDIDATES),
            configured=configured,
            summary=self.figures(),
        )


def _measure(
    q: npt.NDArray[np.float32],
    mated: list[bool],
    mate_of: list[int],
    names: list[str],
    faces: dict[str, list[tuple[npt.NDArray[np.float32], float]]],
    number: dict[str, int],
    *,
    templates: bool,
    cohort: Cohort | None,
    options: PipelineOptions | None = None,
) -> _Measured:
    """Search the probes ``q`` against the gallery built from ``faces``: the gallery's own
    search (:func:`gallery_search`, with its templates if ``templates``), or with a
    ``cohort`` :func:`rank_subjects` re-scoring by AS-norm."""
    templated = sum(1 for n in names if len(faces[n]) > 1) if templates else 0
    gallery_threshold: dict[str, dict[str, float | None]] = {}
    by_template = 0
    if cohort is None:
        enrolled = [(n, v, qual) for n in names for v, qual in faces[n]]
        ranked, answered, thresholds = gallery_search(
            enrolled, q, options=options, templates=templates
        )
        ids = np.full((len(ranked), CANDIDATES), -1, dtype=np.int64)
        scores = np.full((len(ranked), CANDIDATES), -np.inf)
        for row, cands in enumerate(ranked):
            for col, (name, score, _) in enumerate(cands[:CANDIDATES]):
                ids[row, col] = number[name]
                scores[row, col] = score
        by_template = sum(1 for c in ranked if c and c[0][2] == "template")
        nonmated_rows = [r for r, m in enumerate(mated) if not m]
        mate_best = [
            float(scores[r, list(ids[r]).index(mate)]) if mate in ids[r] else -np.inf
            for r, (m, mate) in enumerate(zip(mated, mate_of, strict=True))
            if m
        ]
        for fpir, thr in thresholds.items():
            gallery_threshold[f"{fpir:g}"] = {
                "threshold": round(thr, 4),
                "measured_fpir": float(np.mean([answered[fpir][r] for r in nonmated_rows]))
                if nonmated_rows
                else None,
                "fnir": float(np.mean(np.array(mate_best) < thr)) if mate_best else None,
            }
    else:
        refs: list[npt.NDArray[np.float32]] = []
        owner: list[int] = []
        for name in names:
            vs = np.stack([f for f, _ in faces[name]]).astype(np.float32)
            refs.append(vs)
            owner += [number[name]] * len(vs)
            if templates and len(vs) > 1:
                template = subject_template(vs, [qual for _, qual in faces[name]])
                refs.append(template)
                owner += [number[name]] * len(template)
        scores, ids = rank_subjects(
            q, np.concatenate(refs), np.array(owner, dtype=np.int64), len(names), cohort=cohort
        )
    mate_rank: list[int] = []
    mate_score: list[float] = []
    nonmated_top: list[float] = []
    for row, (is_mated, mate) in enumerate(zip(mated, mate_of, strict=True)):
        if is_mated:
            rank = next((r for r, gid in enumerate(ids[row]) if gid == mate), None)
            mate_rank.append(10**9 if rank is None else rank)
            mate_score.append(float(scores[row, rank]) if rank is not None else -np.inf)
        else:
            nonmated_top.append(float(scores[row, 0]))
    return _Measured(
        ranks=np.array(mate_rank, dtype=np.int64),
        mate_scores=np.array(mate_score, dtype=np.float64),
        nonmated_top=np.array(nonmated_top, dtype=np.float64),
        templated=templated,
        search="gallery" if cohort is None else "rank_subjects (AS-norm)",
        gallery_threshold=gallery_threshold,
        top_by_template=by_template,
    )


def gallery_search(
    enrolled: Sequence[tuple[str, npt.NDArray[np.float32], float]],
    probes: npt.NDArray[np.float32],
    *,
    options: PipelineOptions | None = None,
    templates: bool = True,
    k: int = CANDIDATES,
    fpirs: Sequence[float] = (0.1, 0.01, 0.001),
    template_calibration: TemplateCalibration | None = None,
) -> tuple[list[list[tuple[str, float, str]]], dict[float, list[bool]], dict[float, float]]:
    """Search ``probes`` with a gallery's own search, in a throw-away gallery holding
    ``enrolled`` (subject, vector, quality) as one photo each (``template_calibration``:
    template tables of its own instead of the packaged ones).

    Returns, per probe, its top-``k`` candidates (subject, score, matched_by); per FPIR
    of ``fpirs``, whether each probe had a candidate at or above the gallery's own
    threshold; and those thresholds."""
    with (
        tempfile.TemporaryDirectory(prefix="facetrace-eval-") as tmp,
        Gallery.open(Path(tmp), pipeline=options, index_kind="flat") as g,
    ):
        model = g.descriptor.model_id
        photos = [
            NewPhoto(
                sha256=hashlib.sha256(f"{n}:{name}".encode()).hexdigest(),
                width=1,
                height=1,
                faces=[_face(vector, quality, model)],
                subject_face=0,
                provenance=Provenance(subject_id=name, collection="eval"),
            )
            for n, (name, vector, quality) in enumerate(enrolled)
        ]
        if template_calibration is not None:
            g.set_template_calibration(template_calibration)
        for start in range(0, len(photos), 1000):
            g.add_photos(photos[start : start + 1000])
        ranked: list[list[tuple[str, float, str]]] = []
        answered: dict[float, list[bool]] = {f: [] for f in fpirs}
        thresholds = {f: g.threshold(f) for f in fpirs}
        for start in range(0, probes.shape[0], 256):
            rows = g.search_vectors(
                probes[start : start + 256], k=k, include_below=True, templates=templates
            )
            for _, above, below in rows:
                cands = sorted(above + below, key=lambda c: c.rank)
                ranked.append([(c.info.subject_external_id, c.score, c.matched_by) for c in cands])
                top = cands[0].score if cands else -np.inf
                for f in fpirs:
                    answered[f].append(bool(top >= thresholds[f]))
    return ranked, answered, thresholds


def _face(vector: npt.NDArray[np.float32], quality: float, model_id: str) -> Face:
    """An enrolled photo's main face as the gallery stores it (only its vector and quality
    count for a search)."""
    return Face(
        detection=Detection(
            box=BoundingBox(0, 0, 1, 1), landmarks=Landmarks.from_array(np.zeros((5, 2))), score=1.0
        ),
        quality=Quality(score=float(quality)),
        vector=np.asarray(vector, dtype=np.float32),
        model_id=model_id,
    )

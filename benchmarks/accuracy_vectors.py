"""The main face of every photo of a labelled set, through facetrace's own pipeline, cached.

One row per photo: its subject (the folder), the vector of its subject's face (the face
covering the centre, as ``facetrace eval`` picks it:
:func:`facetrace.eval.embedding.embed_main_face`), the
face's quality score and how the face was found. Cached per set and detector in
``.bench/acc-<set>-<detector>.npz`` (gitignored), so the accuracy benchmark's many
protocol variants re-use one embedding run.

    python -m benchmarks.accuracy_vectors --set lfw --detector auto
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.common import ROOT, faces_dir
from facetrace.config import DetectorKind, PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.eval.embedding import embed_main_face
from facetrace.gallery.ingest import IMAGE_SUFFIXES
from facetrace.imaging import ImageLimits
from facetrace.pool import map_photos

SETS = {"lfw": "lfw/images", "att": "att_orl", "webphotos13": "webphotos13/identities"}


@dataclass
class LabelledVectors:
    """Rows in (subject, file name) order; ``how``: detected, centre or failed."""

    subjects: npt.NDArray[np.str_]
    paths: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float32]
    quality: npt.NDArray[np.float32]
    how: npt.NDArray[np.str_]

    def usable(self) -> LabelledVectors:
        keep = self.how != "failed"
        return LabelledVectors(
            self.subjects[keep],
            self.paths[keep],
            self.vectors[keep],
            self.quality[keep],
            self.how[keep],
        )


def _embed(path: Path, pipeline: FacePipeline, limits: ImageLimits) -> tuple[object, float, str]:
    pv = embed_main_face(path, pipeline, limits)  # the subject's face, as `facetrace eval`
    return pv.vector, pv.quality if pv.vector is not None else 0.0, pv.how


def photos(set_name: str) -> list[tuple[str, Path]]:
    root = faces_dir() / SETS[set_name]
    out = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for p in sorted(sub.iterdir()):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | {".pgm"}:
                out.append((sub.name, p))
    return out


def cache_path(set_name: str, detector: str) -> Path:
    return ROOT / ".bench" / f"acc-{set_name}-{detector}.npz"


def load(set_name: str, detector: str = "auto", *, workers: int = 2) -> LabelledVectors:
    """The set's vectors, computed (and cached) on first use."""
    path = cache_path(set_name, detector)
    if not path.exists():
        items = photos(set_name)
        options = PipelineOptions(
            detector=DetectorKind(detector), cache_dir=ROOT / ".bench" / "models"
        )
        start = time.perf_counter()
        rows = list(
            map_photos(
                _embed,
                [p for _, p in items],
                options=options,
                limits=ImageLimits(),
                workers=workers,
            )
        )
        dim = next(np.asarray(v).shape[0] for v, _, _ in rows if v is not None)
        vectors = np.stack(
            [np.zeros(dim, np.float32) if v is None else np.asarray(v) for v, _, _ in rows]
        ).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            path,
            subjects=np.array([s for s, _ in items]),
            paths=np.array([str(p.relative_to(faces_dir())) for _, p in items]),
            vectors=vectors,
            quality=np.array([q for _, q, _ in rows], np.float32),
            how=np.array([h for _, _, h in rows]),
            seconds=np.array(time.perf_counter() - start),
        )
    data = np.load(path)
    return LabelledVectors(
        data["subjects"], data["paths"], data["vectors"], data["quality"], data["how"]
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", choices=sorted(SETS), default="lfw")
    ap.add_argument("--detector", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    lv = load(args.set, args.detector, workers=args.workers)
    hows = {h: int((lv.how == h).sum()) for h in ("detected", "centre-cnn", "centre", "failed")}
    print(f"{args.set}/{args.detector}: {len(lv.subjects)} photos, {hows}")


if __name__ == "__main__":
    main()


@dataclass(frozen=True)
class PairRows:
    """LFW's verification pairs among a set's rows: the rows of each side, whether the
    pair is one person, and its fold."""

    a: npt.NDArray[np.intp]
    b: npt.NDArray[np.intp]
    same: npt.NDArray[np.bool_]
    folds: npt.NDArray[np.int_]

    def __len__(self) -> int:
        return len(self.a)


def lfw_pair_rows(lv: LabelledVectors, keep: Callable[[str], bool]) -> PairRows:
    """The pairs of ``pairs.txt`` whose two photos are rows of ``lv`` and whose identities
    pass ``keep`` (so a cohort or training split stays out of the test)."""
    from facetrace.eval.lfw import read_pairs

    images = faces_dir() / "lfw" / "images"
    _, pairs = read_pairs(faces_dir() / "lfw" / "pairs.txt", images)
    where = {str(faces_dir() / p): i for i, p in enumerate(lv.paths)}
    sel = [
        p
        for p in pairs
        if keep(Path(p.a).parent.name)
        and keep(Path(p.b).parent.name)
        and str(p.a) in where
        and str(p.b) in where
    ]
    return PairRows(
        a=np.array([where[str(p.a)] for p in sel], dtype=np.intp),
        b=np.array([where[str(p.b)] for p in sel], dtype=np.intp),
        same=np.array([p.same for p in sel], dtype=bool),
        folds=np.array([p.fold for p in sel]),
    )

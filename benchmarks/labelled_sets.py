"""Labelled face sets embedded with facetrace's own pipeline, computed once and cached.

The grouping benchmark measures clusters of the vectors that ``facetrace group`` and the
gallery would hold, so it embeds with :class:`facetrace.engine.FacePipeline` (ONNX
descriptor, mirrored chip), not with dlib's plain pipeline of
:mod:`benchmarks.lfw_embeddings`: the calibration table that sets the grouping
threshold was measured on the pipeline's vectors. One vector per photo (its main face,
a centred box when no face is detected), labelled by its folder.

    python -m benchmarks.labelled_sets [--sets lfw,att,webphotos13] [--workers 2]

Caches ``.bench/labelled-<set>.npz`` (vectors, labels, paths); later runs read it.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from benchmarks.common import ROOT, faces_dir

if TYPE_CHECKING:
    from facetrace.engine import FacePipeline
    from facetrace.imaging import ImageLimits

log = logging.getLogger(__name__)

CACHE_DIR = ROOT / ".bench"

#: set name -> (folder under $FACETRACE_FACES holding one folder per person, file suffixes)
SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "lfw": ("lfw/images", (".jpg",)),
    "att": ("att_orl", (".pgm",)),
    "webphotos13": ("webphotos13/identities", (".jpg", ".jpeg", ".png")),
    "aligned_chips": ("aligned_chips", (".jpg",)),
}


@dataclass(frozen=True)
class LabelledSet:
    """Vectors (n, d) float32, integer labels (n,), each row's photo path and the face's
    quality score (0..1; the centred fallback box of a photo with no detected face
    counts as quality 0)."""

    name: str
    vectors: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    paths: list[str]
    quality: npt.NDArray[np.float32]

    @property
    def identities(self) -> int:
        return int(np.unique(self.labels).size)


def photos_of(name: str) -> list[tuple[int, Path]]:
    """(label, path) of every photo of set ``name``, people in sorted folder order."""
    folder, suffixes = SETS[name]
    root = faces_dir() / folder
    people = sorted(p for p in root.iterdir() if p.is_dir())
    out: list[tuple[int, Path]] = []
    for label, person in enumerate(people):
        out.extend((label, p) for p in sorted(person.iterdir()) if p.suffix.lower() in suffixes)
    return out


def _main_face(
    path: Path, pipeline: FacePipeline, limits: ImageLimits
) -> tuple[npt.NDArray[np.float32], float] | None:
    """(vector, quality) of the photo's main face, or of a centred box (quality 0)."""
    from facetrace.errors import FacetraceError
    from facetrace.imaging import load_image
    from facetrace.vision.detect import main_face

    try:
        pixels = load_image(path, limits=limits).pixels
    except FacetraceError:
        return None
    faces = pipeline.analyse(pixels)
    if not faces:
        return pipeline.analyse_centred(pixels).vector, 0.0
    h, w = pixels.shape[:2]
    face = faces[main_face([f.detection for f in faces], w, h)]
    return face.vector, float(face.quality.score)


def compute(name: str, workers: int) -> LabelledSet:
    """Embed every photo of set ``name`` (photos that fail to decode are left out)."""
    from facetrace.config import PipelineOptions
    from facetrace.imaging import ImageLimits
    from facetrace.pool import map_photos

    items = photos_of(name)
    options = PipelineOptions(cache_dir=CACHE_DIR / "models")
    start = time.perf_counter()
    found = []
    paths = [p for _, p in items]
    for got in map_photos(
        _main_face, paths, options=options, limits=ImageLimits(), workers=workers
    ):
        found.append(got)
        if len(found) % 500 == 0 or len(found) == len(items):
            log.info(
                "%s: %d/%d photos, %.0f s",
                name,
                len(found),
                len(items),
                time.perf_counter() - start,
            )
    keep = [i for i, got in enumerate(found) if got is not None]
    vectors = np.stack([found[i][0] for i in keep]).astype(np.float32)  # type: ignore[index]
    quality = np.asarray([found[i][1] for i in keep], dtype=np.float32)  # type: ignore[index]
    labels = np.asarray([items[i][0] for i in keep], dtype=np.int64)
    rel = [str(items[i][1].relative_to(faces_dir())) for i in keep]
    return LabelledSet(name, vectors, labels, rel, quality)


def load(name: str, workers: int = 2) -> LabelledSet:
    """The cached set, embedding it (minutes for LFW) on first use."""
    cache = CACHE_DIR / f"labelled-{name}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return LabelledSet(
                name,
                data["vectors"].astype(np.float32),
                data["labels"].astype(np.int64),
                [str(p) for p in data["paths"]],
                data["quality"].astype(np.float32),
            )
    got = compute(name, workers)
    cache.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache.parent, suffix=".npz")
    os.close(fd)
    np.savez(
        tmp,
        vectors=got.vectors,
        labels=got.labels,
        paths=np.asarray(got.paths),
        quality=got.quality,
    )
    os.replace(tmp, cache)
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sets", default="lfw,att,webphotos13", help="comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in args.sets.split(","):
        got = load(name, args.workers)
        log.info("%s: %d vectors of %d people", name, len(got.vectors), got.identities)


if __name__ == "__main__":
    main()

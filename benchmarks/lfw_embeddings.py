"""Real LFW face embeddings for the benchmarks, computed once and cached.

Runs dlib's own pipeline (HOG detector, 5-point landmarks, 150x150 chip, ResNet
descriptor) on every LFW photo and caches the L2-normalised vectors with their
identity labels in ``.bench/lfw_dlib.npz`` (gitignored). About 6k photos take
~10 minutes on one core; later runs read the cache.

    python -m benchmarks.lfw_embeddings [--limit N]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".bench" / "lfw_dlib.npz"


def faces_dir() -> Path:
    """``$FACETRACE_FACES`` or ``../shared/faces`` next to the repository."""
    configured = os.environ.get("FACETRACE_FACES")
    return Path(configured) if configured else REPO_ROOT.parent / "shared" / "faces"


def compute(limit: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Embed LFW photos: returns (vectors (n, 128) float32 unit rows, labels (n,) int64).

    Photos with no detected face are skipped; with several, the largest face is used.
    """
    import dlib
    import face_recognition_models as frm
    from PIL import Image

    detector = dlib.get_frontal_face_detector()
    shaper = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    root = faces_dir() / "lfw" / "images"
    people = sorted(p for p in root.iterdir() if p.is_dir())
    vectors: list[npt.NDArray[np.float32]] = []
    labels: list[int] = []
    done = 0
    start = time.perf_counter()
    for label, person in enumerate(people):
        for photo in sorted(person.glob("*.jpg")):
            if limit is not None and done >= limit:
                break
            done += 1
            img = np.asarray(Image.open(photo).convert("RGB"))
            dets = detector(img, 1)
            if len(dets) == 0:
                continue
            det = max(dets, key=lambda r: r.area())
            chip = dlib.get_face_chip(img, shaper(img, det), size=150, padding=0.25)
            vec = np.asarray(net.compute_face_descriptor(chip), dtype=np.float32)
            vectors.append(vec / np.linalg.norm(vec))
            labels.append(label)
            if done % 500 == 0:
                log.info("%d photos, %.0f s", done, time.perf_counter() - start)
    return np.stack(vectors), np.asarray(labels, dtype=np.int64)


def load(limit: int | None = None) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Cached LFW vectors and labels, computing them (slowly) on first use."""
    if CACHE.exists():
        with np.load(CACHE) as data:
            return data["vectors"].astype(np.float32), data["labels"].astype(np.int64)
    vectors, labels = compute(limit)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=CACHE.parent, suffix=".npz")
    os.close(fd)
    np.savez(tmp, vectors=vectors, labels=labels)
    os.replace(tmp, CACHE)
    return vectors, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="embed at most N photos")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    vectors, labels = load(args.limit)
    log.info("%d vectors of %d identities in %s", len(vectors), len(set(labels.tolist())), CACHE)


if __name__ == "__main__":
    main()

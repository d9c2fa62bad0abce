"""Shared fixtures for the vision tests: real faces, real dlib models."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageOps

REPO_ROOT = Path(__file__).resolve().parents[2]


def faces_root() -> Path:
    """The shared face photos: ``$FACETRACE_FACES`` or ``../shared/faces``."""
    return Path(os.environ.get("FACETRACE_FACES", REPO_ROOT.parent / "shared" / "faces"))


def require_dir(path: Path) -> Path:
    """Skip (fail under CI=true) when a folder of test photos is missing."""
    if not path.is_dir():
        reason = f"test photos not found at {path} (set FACETRACE_FACES)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def load_rgb(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


class ChipExtractor:
    """HOG detector (upsample 1) + dlib's 5-point landmarks -> 150x150 dlib chips."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location()
        )

    def chips(
        self, image: npt.NDArray[np.uint8], *, largest_only: bool = False
    ) -> list[npt.NDArray[np.uint8]]:
        boxes = list(self._detector(image, 1))
        if largest_only and boxes:
            boxes = [max(boxes, key=lambda r: r.area())]
        out = []
        for box in boxes:
            shape = self._predictor(image, box)
            out.append(np.asarray(self._dlib.get_face_chip(image, shape, size=150, padding=0.25)))
        return out

    def chips_from(
        self, paths: Iterable[Path], *, limit: int, largest_only: bool = False
    ) -> npt.NDArray[np.uint8]:
        found: list[npt.NDArray[np.uint8]] = []
        for path in paths:
            found.extend(self.chips(load_rgb(path), largest_only=largest_only))
            if len(found) >= limit:
                break
        return np.stack(found[:limit]) if found else np.zeros((0, 150, 150, 3), np.uint8)


@pytest.fixture(scope="session")
def chip_extractor() -> ChipExtractor:
    return ChipExtractor()


def webphotos(root: Path) -> list[Path]:
    """All webphotos13 photos, smallest first (cheap to detect at upsample 1)."""
    paths = sorted(require_dir(root / "webphotos13").rglob("*.jpg"))

    def pixels(p: Path) -> int:
        with Image.open(p) as im:
            return im.width * im.height

    return sorted(paths, key=lambda p: (pixels(p), str(p)))


def lfw_images(root: Path) -> list[Path]:
    return sorted(require_dir(root / "lfw" / "images").rglob("*.jpg"))


@pytest.fixture(scope="session")
def faces() -> Path:
    return faces_root()


@pytest.fixture(scope="session")
def small_web_chips(faces: Path, chip_extractor: ChipExtractor) -> npt.NDArray[np.uint8]:
    """About 15 real faces from the smallest webphotos13 photos (fast to detect)."""
    chips = chip_extractor.chips_from(webphotos(faces), limit=15)
    assert len(chips) >= 10, "expected at least 10 faces in webphotos13"
    return chips


@pytest.fixture(scope="session")
def all_web_chips(faces: Path, chip_extractor: ChipExtractor) -> npt.NDArray[np.uint8]:
    """Every face HOG finds in webphotos13 (identities and multi_face)."""
    return chip_extractor.chips_from(webphotos(faces), limit=10**6)


@pytest.fixture(scope="session")
def lfw_chips(faces: Path, chip_extractor: ChipExtractor) -> npt.NDArray[np.uint8]:
    """The largest face of the first 500 LFW images (sorted by path) where HOG finds one."""
    chips = chip_extractor.chips_from(lfw_images(faces), limit=500, largest_only=True)
    assert len(chips) == 500
    return chips


@pytest.fixture(scope="session")
def web_photo_paths(faces: Path) -> list[Path]:
    """webphotos13 photo paths, smallest first."""
    return webphotos(faces)

"""A small real gallery shared by the gallery and CLI tests: a few LFW subjects, real
models (a plugin of ``tests/conftest.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.imaging import load_image
from facetrace.store.models import Subject
from facetrace.vision.detect import HogDetector

# subjects with several photos in the LFW half, plus single-photo distractors
ENROLLED = ["Abdoulaye_Wade", "Adam_Sandler", "Adel_Al-Jubeir", "Al_Pacino", "Albert_Costa"]
DISTRACTORS = ["AJ_Cook", "Aaron_Patterson", "Abba_Eban"]


def _lfw(faces_dir: Path) -> Path:
    return faces_dir / "lfw" / "images"


@pytest.fixture(scope="session")
def mini_lfw(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder-per-subject tree: each enrolled subject's first two photos, distractors' first.

    The third photo of each enrolled subject stays out, to be used as a probe.
    """
    root = tmp_path_factory.mktemp("mini_lfw")
    for name in ENROLLED + DISTRACTORS:
        src = _lfw(faces_dir) / name
        photos = sorted(src.glob("*.jpg"))
        if not photos:
            pytest.fail(f"{src} has no photos: the faces folder is not the expected one")
        (root / name).mkdir()
        for p in photos[: 2 if name in ENROLLED else 1]:
            shutil.copy(p, root / name / p.name)
    return root


@pytest.fixture(scope="session")
def probe_of(faces_dir: Path) -> dict[str, Path]:
    """A photo of each enrolled subject that is not in the gallery, with a detectable face."""
    detector = HogDetector()
    out = {}
    for name in ENROLLED:
        photos = sorted((_lfw(faces_dir) / name).glob("*.jpg"))[2:]
        found = [p for p in photos if detector.boxes(load_image(p).pixels)]
        assert found, f"{name} needs a third photo with a detectable face"
        out[name] = found[0]
    return out


@pytest.fixture(scope="session")
def built_gallery(mini_lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory with ``mini_lfw`` ingested once (copy it before changing it)."""
    data = tmp_path_factory.mktemp("gallery")
    with Gallery.open(data) as g:
        summary = ingest(g, scan_folder(mini_lfw, collection="lfw", legal_basis="test"))
    assert summary.photos_added == summary.total, summary.skipped
    return data


@pytest.fixture()
def gallery_dir(built_gallery: Path, tmp_path: Path) -> Path:
    """A private copy of the built gallery, so a test may change it."""
    dst = tmp_path / "data"
    shutil.copytree(built_gallery, dst)
    return dst


@pytest.fixture()
def gallery(gallery_dir: Path) -> Iterator[Gallery]:
    with Gallery.open(gallery_dir) as g:
        yield g


# Duplicates planted in a second collection, "registry": the same people under other ids
COPIED = "Abdoulaye_Wade"  # a re-encoded copy (a scan) of one of the gallery's photos
OTHER_PHOTO = "Al_Pacino"  # another photo of this person (the probe photo)


@pytest.fixture(scope="session")
def planted_gallery(
    built_gallery: Path,
    mini_lfw: Path,
    probe_of: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The built gallery plus a "registry" collection holding two of its people again
    as ``R-<name>`` (copy it before changing it)."""
    data = tmp_path_factory.mktemp("planted") / "data"
    shutil.copytree(built_gallery, data)
    registry = tmp_path_factory.mktemp("registry")
    (registry / f"R-{COPIED}").mkdir()
    first = sorted((mini_lfw / COPIED).glob("*.jpg"))[0]
    with Image.open(first) as im:
        im.resize((230, 230)).save(registry / f"R-{COPIED}" / "scan.jpg", quality=80)
    (registry / f"R-{OTHER_PHOTO}").mkdir()
    shutil.copy(probe_of[OTHER_PHOTO], registry / f"R-{OTHER_PHOTO}" / "record.jpg")
    with Gallery.open(data) as g:
        summary = ingest(g, scan_folder(registry, collection="registry", legal_basis="test"))
    assert summary.photos_added == 2, summary.skipped
    return data


@pytest.fixture()
def planted_dir(planted_gallery: Path, tmp_path: Path) -> Path:
    """A private copy of the planted gallery."""
    dst = tmp_path / "planted"
    shutil.copytree(planted_gallery, dst)
    return dst


def subject_id(session: Session, external_id: str) -> int:
    """The SQL id of the subject with this record id."""
    return int(session.scalars(select(Subject.id).where(Subject.external_id == external_id)).one())

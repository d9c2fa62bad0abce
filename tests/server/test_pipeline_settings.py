"""The service builds its face pipeline from the same settings as the CLI
(``FACETRACE_PIPELINE__*``, ``FACETRACE_DETECT__*``), through
:meth:`facetrace.config.Settings.pipeline_options`, and honours every field."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import Backend, ServiceConfig
from facetrace.gallery.directory import Gallery
from facetrace.server.app import create_app
from facetrace.service import accounts
from facetrace.service.accounts import Role
from facetrace.vision.arcface import ArcFaceEmbedder
from facetrace.vision.detect import AutoDetector, CnnDetector, HogDetector
from facetrace.vision.dlib_onnx import DlibEmbedder
from tests.onnx_models import tiny_model


@contextmanager
def service(
    data: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """A running app configured by ``env`` only, as ``facetrace serve`` would be."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with TestClient(create_app(ServiceConfig(data=data)), follow_redirects=False) as client:
        yield client


def _gallery(client: TestClient) -> Gallery:
    gallery: Gallery = client.app.state.service.gallery.gallery()  # type: ignore[attr-defined]
    return gallery


def _investigator(client: TestClient) -> dict[str, str]:
    state = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions.begin() as s:
        user = accounts.create_user(
            s,
            actor=accounts.SYSTEM,
            username="inv",
            password="password-123",
            roles=frozenset({Role.INVESTIGATOR}),
            department="Dept A",
        )
        _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="t")
    return {"Authorization": f"Bearer {key}"}


def _search(client: TestClient, headers: dict[str, str], photo: Path) -> int:
    case = client.post(
        "/api/v1/cases",
        json={"number": f"C-{photo.stem}", "purpose": "trace_missing", "legal_basis": "test"},
        headers=headers,
    )
    assert case.status_code == 201, case.text
    resp = client.post(
        "/api/v1/search",
        data={"case_id": str(case.json()["id"]), "face": "0"},
        files={"image": (photo.name, photo.read_bytes(), "application/octet-stream")},
        headers=headers,
    )
    return resp.status_code


def test_detector_and_dlib_fields(
    tmp_path: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = faces_dir / "att_orl" / "s1" / "1.pgm"  # a 92x112 photo, its face 75 px wide
    # found with the default smallest face of 40 px...
    with service(tmp_path / "default", {}, monkeypatch) as client:
        assert _search(client, _investigator(client), small) == 201
    env = {
        "FACETRACE_DETECT__DETECTOR": "hog",
        "FACETRACE_DETECT__MIN_FACE_PX": "120",
        "FACETRACE_DETECT__MAX_DETECT_PIXELS": "500000",
        "FACETRACE_PIPELINE__BACKEND": "dlib",
        "FACETRACE_PIPELINE__BATCH_SIZE": "7",
    }
    with service(tmp_path / "configured", env, monkeypatch) as client:
        # ...and not with a smallest face of 120 px: the service detects what it is told to
        assert _search(client, _investigator(client), small) == 422
        pipeline = _gallery(client).pipeline
        detector = pipeline.detector
        assert isinstance(detector, HogDetector)
        assert pipeline.options.min_face_px == detector.min_face_px == 120
        assert pipeline.options.max_detect_pixels == detector.max_pixels == 500_000
        assert pipeline.options.backend is Backend.DLIB
        assert isinstance(pipeline.embedder, DlibEmbedder)
        assert pipeline.embedder.batch_size == 7
        assert pipeline.options.cache_dir == tmp_path / "configured" / "models"


def test_the_default_detector_and_its_cnn_area(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"FACETRACE_DETECT__MAX_CNN_PIXELS": "300000", "FACETRACE_DETECT__MIN_FACE_PX": "60"}
    with service(tmp_path / "data", env, monkeypatch) as client:
        detector = _gallery(client).pipeline.detector
        assert isinstance(detector, AutoDetector)  # HOG, confirmed and completed by the CNN
        assert isinstance(detector.cnn, CnnDetector)
        assert detector.cnn.max_pixels == 300_000
        assert detector.hog.min_face_px == detector.cnn.min_face_px == 60


def test_serve_runs_an_arcface_gallery(
    tmp_path: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tiny_model(tmp_path / "w600k_tiny.onnx")
    env = {
        "FACETRACE_PIPELINE__MODEL": str(model),
        "FACETRACE_PIPELINE__THREADS": "1",
        "FACETRACE_PIPELINE__BATCH_SIZE": "5",
    }
    with service(tmp_path / "data", env, monkeypatch) as client:
        photo = faces_dir / "webphotos13" / "identities" / "id01" / "img1.jpg"
        assert _search(client, _investigator(client), photo) == 201
        gallery = _gallery(client)
        assert gallery.status()["model"] == "arcface:w600k_tiny"
        assert isinstance(gallery.pipeline.embedder, ArcFaceEmbedder)
        assert gallery.pipeline.embedder.batch_size == 5
        assert gallery.pipeline.embedder.runtime.intra_op_threads == 1

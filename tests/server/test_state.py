"""The state built in the lifespan: one database for the service and the gallery."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from tests.api.conftest import make_client


def test_service_and_gallery_share_one_database(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        gallery = state.gallery.gallery()
        assert gallery.database is state.database
        assert gallery.engine is state.database.engine
        assert state.imports._sessions is state.database.sessions
    # closed with the app, by the app: the gallery does not dispose what it was lent
    assert gallery._owns_database is False


def _budget_photos(data: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The decode budget's photo count of a service configured by ``env``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with TestClient(create_app(ServiceConfig(data=data))) as client:
        state = client.app.state.service  # type: ignore[attr-defined]
        assert state.analyser.budget is state.decode_budget
        photos: int = state.decode_budget.max_photos
        return photos


def test_photos_decoded_at_once_follow_the_inference_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workers = "FACETRACE_SERVICE__INFERENCE_WORKERS"
    # unset: one photo per analysing process (one per core by default)
    assert _budget_photos(tmp_path / "a", {workers: "3"}, monkeypatch) == 3
    assert _budget_photos(tmp_path / "b", {workers: "0"}, monkeypatch) == 1  # in-process
    monkeypatch.delenv(workers)
    assert _budget_photos(tmp_path / "c", {}, monkeypatch) == (os.cpu_count() or 1)
    # set: as configured, whatever the workers
    both = {workers: "3", "FACETRACE_SERVICE__DECODE_MAX_PHOTOS": "1"}
    assert _budget_photos(tmp_path / "d", both, monkeypatch) == 1

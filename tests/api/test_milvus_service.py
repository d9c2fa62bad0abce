"""The service opens its gallery on Milvus when the settings say so (Milvus Lite here)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app

pytest.importorskip("pymilvus", reason="the milvus extra is not installed")


def test_service_gallery_uses_the_configured_milvus(tmp_path: Path) -> None:
    lite = tmp_path / "vectors.db"
    cfg = ServiceConfig(
        data=tmp_path / "data",
        index_kind="milvus",
        milvus={"uri": str(lite), "token": "root:hidden-4711", "collection": "faces_svc"},
    )
    assert "hidden-4711" not in repr(cfg)  # the token never shows in logs or tracebacks
    with TestClient(create_app(cfg)) as client:
        status = client.app.state.service.gallery.status()  # type: ignore[attr-defined]
    index = status["index"]
    assert index["kind"] == "milvus" and index["uri"] == str(lite)
    assert index["collection"] == "faces_svc" and "token" not in index
    for path in (tmp_path / "data").rglob("*"):
        assert not path.is_file() or b"hidden-4711" not in path.read_bytes(), path

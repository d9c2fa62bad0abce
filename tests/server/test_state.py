"""The state built in the lifespan: one database for the service and the gallery."""

from __future__ import annotations

from pathlib import Path

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

"""The service on a real Milvus server that goes down and comes back (slow: own server).

A search while the server is down is a 503 problem naming the server, never a
traceback or a 500; once the server is back (and has reloaded the collection) the
same search succeeds again, without restarting the service.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from tests.api.conftest import add_user
from tests.milvus_server import (
    TEST_SERVER_CONFIG,
    RunningMilvus,
    kill_milvus,
    restart_milvus,
    start_milvus,
    stop_milvus,
)

pytest.importorskip("milvus", reason="the Milvus server package is not installed")
pytestmark = pytest.mark.slow

PEOPLE = ["Hugo_Chavez", "Laura_Bush"]


@pytest.fixture()
def own_server() -> Iterator[RunningMilvus]:
    """A server of this test's own (the session's is shared and must stay up)."""
    data = Path(tempfile.mkdtemp(prefix="facetrace-milvus-outage-"))
    running = start_milvus(data, extra_config=TEST_SERVER_CONFIG)
    try:
        yield running
    finally:
        stop_milvus(running)
        shutil.rmtree(data, ignore_errors=True)  # ~520 MB; the watchdog only removes an orphan's


def test_down_server_is_503_and_searches_resume(
    own_server: RunningMilvus, faces_dir: Path, tmp_path: Path
) -> None:
    lfw = tmp_path / "lfw"
    for name in PEOPLE:
        (lfw / name).mkdir(parents=True)
        for i in (1, 2):
            src = faces_dir / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"
            (lfw / name / src.name).write_bytes(src.read_bytes())
    milvus = {"uri": own_server.uri, "collection": "faces_outage", "timeout": 5}
    cfg = ServiceConfig(data=tmp_path / "data", index_kind="milvus", milvus=milvus)
    with Gallery.open(cfg.data, index_kind="milvus", index_params=cfg.index_params()) as g:
        assert ingest(g, scan_folder(lfw, collection="register")).photos_added == 4
    probe = (faces_dir / "lfw" / "images" / "Laura_Bush" / "Laura_Bush_0003.jpg").read_bytes()
    with TestClient(create_app(cfg)) as client:
        inv = {"Authorization": f"Bearer {add_user(client, 'inv', {Role.INVESTIGATOR}, 'A')}"}
        case = client.post(
            "/api/v1/cases",
            headers=inv,
            json={"number": "A-1", "purpose": "trace_missing", "legal_basis": "Order 3"},
        ).json()

        def search() -> tuple[int, dict[str, object]]:
            resp = client.post(
                "/api/v1/search",
                headers=inv,
                data={"case_id": str(case["id"])},
                files={"image": ("p.jpg", probe, "image/jpeg")},
            )
            return resp.status_code, resp.json()

        code, body = search()
        assert code == 201, body
        assert body["candidates"][0]["subject"]["id"] == "Laura_Bush"  # type: ignore[index]

        kill_milvus(own_server)
        code, body = search()
        assert code == 503, body
        detail = str(body.get("detail", ""))
        assert own_server.uri in detail and "Milvus" in detail and "Traceback" not in detail
        assert body.get("title") == "Index unavailable"

        restart_milvus(own_server)
        # back: the server reloads the collection (replaying its log after the kill);
        # until then the service keeps answering 503, then the same search succeeds
        deadline = time.monotonic() + 180
        while (code := search()[0]) == 503 and time.monotonic() < deadline:
            time.sleep(1)
        code, body = search()
        assert code == 201, body
        assert body["candidates"][0]["subject"]["id"] == "Laura_Bush"  # type: ignore[index]

"""A probe-analysing worker that dies (issue 10 item 2): the search it had is answered at
once with a 503 problem (never a hang), nothing is stored, and the next search is answered
by a new worker. A real app with one inference worker, killed with SIGKILL."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from facetrace.store.service_models import Probe, Search
from tests.api.conftest import add_user


def test_a_dead_worker_gives_a_503_problem_then_searches_resume(
    faces_dir: Path, tmp_path: Path
) -> None:
    cfg = ServiceConfig(data=tmp_path / "data")
    cfg.service.inference_workers = 1  # the only worker: its death cannot be hidden
    photo = (faces_dir / "lfw" / "images" / "Laura_Bush" / "Laura_Bush_0001.jpg").read_bytes()
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        inv = {"Authorization": f"Bearer {add_user(client, 'inv', {Role.INVESTIGATOR}, 'A')}"}
        case = client.post(
            "/api/v1/cases",
            headers=inv,
            json={"number": "A-1", "purpose": "trace_missing", "legal_basis": "Order 3"},
        ).json()

        def search() -> object:
            return client.post(
                "/api/v1/search",
                headers=inv,
                data={"case_id": str(case["id"]), "face": "0"},
                files={"image": ("probe.jpg", photo, "image/jpeg")},
            )

        first = search()
        assert first.status_code == 201, first.text
        state = client.app.state.service  # type: ignore[attr-defined]
        pool = state.analyser.pool()
        assert pool is not None
        (pid,) = pool.pids()
        assert pid != os.getpid()  # the model ran in the worker, not in the server
        os.kill(pid, signal.SIGKILL)

        down = search()
        assert down.status_code == 503
        assert down.headers["content-type"].startswith("application/problem+json")
        assert down.headers["retry-after"] == "5"
        body = down.json()
        assert body["title"] == "Face analysis unavailable"
        assert "try again" in body["detail"]
        with state.sessions() as s:
            assert s.query(Probe).count() == 1 and s.query(Search).count() == 1

        again = search()
        assert again.status_code == 201, again.text
        assert pool.pids() and pid not in pool.pids()


def test_the_worker_count_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def workers() -> int:
        with TestClient(create_app(ServiceConfig(data=tmp_path / "data"))) as client:
            analyser = client.app.state.service.analyser  # type: ignore[attr-defined]
            return int(analyser.workers)

    monkeypatch.delenv("FACETRACE_SERVICE__INFERENCE_WORKERS", raising=False)
    assert workers() == (os.cpu_count() or 1)  # default: one per core
    monkeypatch.setenv("FACETRACE_SERVICE__INFERENCE_WORKERS", "3")
    assert workers() == 3
    monkeypatch.setenv("FACETRACE_SERVICE__INFERENCE_WORKERS", "0")
    with TestClient(create_app(ServiceConfig(data=tmp_path / "data"))) as client:
        assert client.app.state.service.analyser.pool() is None  # type: ignore[attr-defined]

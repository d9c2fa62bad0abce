"""Faults reported well (issue 11, item 9), on ``facetrace serve`` in a process of its
own: ``/healthz`` and ``/readyz``; a 503 naming the dependency while the database is
unreachable or the data directory read-only, and recovery once it is back; start-up on
an unusable database or data directory fails with one line and a non-zero exit."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from facetrace.service.accounts import Role
from tests.dbutil import database_url
from tests.live import (
    Relay,
    facetrace_env,
    free_port,
    make_user,
    read_only,
    serve_command,
    serve_process,
)

UNKNOWN_KEY = {"Authorization": "Bearer ft_" + "x" * 43}  # looked up in the database


def _until(base: str, path: str, status: int, *, headers: dict[str, str] | None = None) -> Any:
    """Poll ``path`` until it answers ``status`` (a wait for the server, not a timing
    assertion: the deadline only keeps a broken server from hanging the run)."""
    deadline = time.monotonic() + 120
    while True:
        resp = httpx.get(base + path, headers=headers, timeout=30)
        if resp.status_code == status:
            return resp
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} stayed {resp.status_code}: {resp.text}")
        time.sleep(0.2)


def test_healthz_and_readyz(tmp_path: Path) -> None:
    with serve_process(tmp_path) as server:
        health = httpx.get(server.base + "/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        ready = _until(server.base, "/readyz", 200).json()
        assert ready == {
            "status": "ready",
            "checks": {"database": None, "index": None, "data_directory": None},
            "index_rebuild": None,  # no lost index being rebuilt
        }


def test_a_read_only_data_directory_is_a_503_not_a_500(tmp_path: Path) -> None:
    data = tmp_path / "data"
    key = make_user(data, "ada", {Role.ADMIN}, None)
    headers = {"Authorization": f"Bearer {key}"}
    with serve_process(data) as server:
        _until(server.base, "/readyz", 200)
        coll = httpx.post(
            server.base + "/api/v1/collections",
            headers=headers,
            json={"name": "c", "legal_basis": "x", "retention": "y"},
            timeout=30,
        ).json()
        with read_only(data):
            ready = _until(server.base, "/readyz", 503)
            assert "not writable" in ready.json()["checks"]["data_directory"]
            assert str(data) not in ready.text, "no path told to an unauthenticated caller"
            assert ready.json()["checks"]["database"] is None
            assert httpx.get(server.base + "/healthz", timeout=30).status_code == 200
            resp = httpx.post(
                f"{server.base}/api/v1/collections/{coll['id']}/imports",
                headers=headers,
                files={"file": ("g.zip", b"PK\x05\x06" + b"\0" * 18, "application/zip")},
                timeout=30,
            )
            assert resp.status_code == 503, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert "data directory" in resp.json()["detail"]
        _until(server.base, "/readyz", 200)


def _one_line_failure(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return lines[0]


def test_start_on_a_read_only_data_directory_fails_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_user(data, "ada", {Role.ADMIN}, None)  # an installation that worked before
    with read_only(data):
        line = _one_line_failure(serve_command(data, free_port()), facetrace_env())
    assert "data directory" in line and "not writable" in line


@pytest.mark.pg
def test_an_unreachable_database_is_a_503_until_it_is_back(tmp_path: Path) -> None:
    with database_url("pg", tmp_path) as direct:
        url = make_url(direct)
        relay = Relay((url.host or "127.0.0.1", url.port or 5432))
        relay.mend()
        through = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
        env = facetrace_env(FACETRACE_DATABASE_URL=through)
        with serve_process(tmp_path / "data", env=env) as server:
            _until(server.base, "/readyz", 200)
            login = httpx.get(server.base + "/login", timeout=30)
            assert login.status_code == 200
            relay.cut()
            try:
                ready = _until(server.base, "/readyz", 503)
                assert "database does not answer" in ready.json()["checks"]["database"]
                # issue 11 item 14: no host or port told to an unauthenticated caller
                assert "127.0.0.1" not in ready.text and str(relay.port) not in ready.text
                api = httpx.get(server.base + "/api/v1/me", headers=UNKNOWN_KEY, timeout=30)
                assert api.status_code == 503, api.text
                assert api.json()["title"] == "Database unavailable"
                assert "retry-after" in api.headers
                assert httpx.get(server.base + "/healthz", timeout=30).status_code == 200
            finally:
                relay.mend()
            _until(server.base, "/readyz", 200)
            # the key is looked up again: the database answers
            resp = httpx.get(server.base + "/api/v1/me", headers=UNKNOWN_KEY, timeout=30)
            assert resp.status_code == 401, resp.text
        relay.cut()


@pytest.mark.pg
def test_start_on_an_unreachable_database_fails_with_one_line(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/facetrace"
    line = _one_line_failure(
        serve_command(tmp_path / "data", free_port()),
        facetrace_env(FACETRACE_DATABASE_URL=url),
    )
    assert "cannot open the database" in line and "refused" in line.lower()


def test_start_with_an_unreadable_audit_key_fails_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_user(data, "ada", {Role.ADMIN}, None)
    key_dir = tmp_path / "not-a-key"  # a directory: unreadable as a key, even for root
    key_dir.mkdir()
    env = facetrace_env(FACETRACE_AUDIT_KEY_FILE=str(key_dir))
    line = _one_line_failure(serve_command(data, free_port()), env)
    assert "audit key file" in line and str(key_dir) in line
    assert "FACETRACE_AUDIT_KEY_FILE" in line

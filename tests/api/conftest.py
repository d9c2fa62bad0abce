"""A running app (SQLite in a temporary data directory) with one user per role."""

from __future__ import annotations

import io
import time
import traceback
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import facetrace
from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service import accounts
from facetrace.service.accounts import Role

PASSWORD = "password-123"


@dataclass
class Running:
    """The client and what the fixture created."""

    client: TestClient
    keys: dict[str, str]
    app_state: object


def make_client(data: Path, database_url: str | None = None) -> TestClient:
    """A TestClient for a fresh app; use it as a context manager to run the lifespan."""
    cfg = ServiceConfig(data=data, database_url=database_url)
    cfg.service.login_per_minute = 1000
    return TestClient(create_app(cfg), follow_redirects=False)


def add_user(client: TestClient, name: str, roles: set[Role], dept: str | None) -> str:
    """Create a user directly through the service layer; return an API key for it."""
    state = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions.begin() as s:
        user = accounts.create_user(
            s,
            actor=accounts.SYSTEM,
            username=name,
            password=PASSWORD,
            roles=frozenset(roles),
            department=dept,
        )
        _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="test")
    return key


ROLE_USERS = {
    "admin": ({Role.ADMIN}, None),
    "supervisor": ({Role.SUPERVISOR}, "Dept A"),
    "investigator": ({Role.INVESTIGATOR}, "Dept A"),
    "reviewer": ({Role.REVIEWER}, "Dept A"),
    "auditor": ({Role.AUDITOR}, None),
}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One app for a test module, with a user (and API key) per role."""
    with make_client(tmp_path_factory.mktemp("data")) as client:
        keys = {n: add_user(client, n, roles, dept) for n, (roles, dept) in ROLE_USERS.items()}
        yield Running(client, keys, client.app.state.service)  # type: ignore[attr-defined]


def login_token(client: TestClient) -> str:
    """Open the login page (which sets the login cookie) and return the form's token."""
    text = client.get("/login").text
    marker = 'name="login_token" value="'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


def login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the CSRF token of the new session."""
    client.cookies.clear()
    resp = client.post(
        "/login",
        data={"username": username, "password": password, "login_token": login_token(client)},
    )
    assert resp.status_code == 303, resp.text
    page = client.get("/account")
    marker = 'name="csrf_token" value="'
    start = page.text.index(marker) + len(marker)
    return page.text[start : page.text.index('"', start)]


def index_stacks(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """From now on, each search of the app's vector index appends the modules of ours on
    the stack at that moment (paths under ``src/facetrace``, sorted): the files a search
    request went through to reach the index (DEVELOPERS.md, "Following a search")."""
    index = client.app.state.service.gallery.gallery().index  # type: ignore[attr-defined]
    package = Path(facetrace.__file__).resolve().parent
    stacks: list[list[str]] = []
    real = index.search

    def recorded(*args: Any, **kw: Any) -> Any:
        ours = [Path(f.filename).resolve() for f in traceback.extract_stack()]
        stacks.append(
            sorted({p.relative_to(package).as_posix() for p in ours if p.is_relative_to(package)})
        )
        return real(*args, **kw)

    monkeypatch.setattr(index, "search", recorded)
    return stacks


def wait_job(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll a job (an import or a video job) until it ends, or for ten minutes."""
    deadline = time.monotonic() + 600
    while True:
        body: dict[str, Any] = client.get(url, headers=headers).json()
        if body["state"] in ("done", "failed", "cancelled") or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def import_folders(
    client: TestClient, admin: dict[str, str], collection: int, photos: dict[str, Path]
) -> dict[str, Any]:
    """Import ``photos`` (subject -> photo) into ``collection`` as a zip of one folder per
    subject, through the API; returns the ended import job."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for subject, src in photos.items():
            zf.write(src, f"export/{subject}/{src.name}")
    job = client.post(
        f"/api/v1/collections/{collection}/imports",
        headers=admin,
        files={"file": ("g.zip", buf.getvalue(), "application/zip")},
    ).json()
    return wait_job(client, f"/api/v1/imports/{job['id']}", admin)

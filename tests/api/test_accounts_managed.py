"""Accounts (issue 11, item 14): departments as managed records (unique whatever their
case, users assigned from them), one-time passwords changed at the first login, an
administrator's password reset, and the password policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import column, insert, select, table

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role, password_problem
from facetrace.store.service_models import Department, User
from tests.api.conftest import add_user, login_token
from tests.dbutil import database_url


@pytest.fixture()
def admin(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with TestClient(create_app(ServiceConfig(data=tmp_path)), follow_redirects=False) as client:
        key = add_user(client, "ada", {Role.ADMIN}, None)
        yield client, {"Authorization": f"Bearer {key}"}


def test_departments_are_managed_and_unique_whatever_their_case(
    admin: tuple[TestClient, dict[str, str]],
) -> None:
    client, h = admin
    made = client.post("/api/v1/departments", headers=h, json={"name": "Forensics"})
    assert made.status_code == 201, made.text
    again = client.post("/api/v1/departments", headers=h, json={"name": "  FORENSICS "})
    assert again.status_code == 409 and "Forensics" in again.json()["detail"]
    user = {"username": "ines", "roles": ["investigator"], "department": "forensics"}
    resp = client.post("/api/v1/users", headers=h, json=user)
    assert resp.status_code == 201 and resp.json()["department"] == "Forensics"
    unknown = {"username": "omar", "roles": ["investigator"], "department": "Narcotics"}
    resp = client.post("/api/v1/users", headers=h, json=unknown)
    assert resp.status_code == 422 and "no department called 'Narcotics'" in resp.text
    listed = client.get("/api/v1/departments", headers=h).json()
    assert [(d["name"], d["users"]) for d in listed] == [("Forensics", 1)]
    dept_id = made.json()["id"]
    assert client.delete(f"/api/v1/departments/{dept_id}", headers=h).status_code == 409
    renamed = client.patch(
        f"/api/v1/departments/{dept_id}", headers=h, json={"name": "Forensic Medicine"}
    )
    assert renamed.json()["name"] == "Forensic Medicine"
    assert client.get("/api/v1/users", headers=h).json()[1]["department"] == "Forensic Medicine"
    spare = client.post("/api/v1/departments", headers=h, json={"name": "Spare"}).json()
    assert client.delete(f"/api/v1/departments/{spare['id']}", headers=h).status_code == 200
    state = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        assert s.scalars(select(Department.name)).all() == ["Forensic Medicine"]


def _form_login(client: TestClient, username: str, password: str) -> str:
    client.cookies.clear()
    form = {"username": username, "password": password, "login_token": login_token(client)}
    resp = client.post("/login", data=form)
    assert resp.status_code == 303, resp.text
    return str(resp.headers["location"])


def _csrf(client: TestClient) -> str:
    page = client.get("/account").text
    marker = 'name="csrf_token" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def test_a_one_time_password_must_be_changed_at_first_login(
    admin: tuple[TestClient, dict[str, str]],
) -> None:
    client, h = admin
    client.post("/api/v1/departments", headers=h, json={"name": "Forensics"})
    user = {"username": "ines", "roles": ["investigator"], "department": "Forensics"}
    one_time = client.post("/api/v1/users", headers=h, json=user).json()["password"]
    assert _form_login(client, "ines", one_time).startswith("/account?msg=")
    assert "Choose your password" in client.get("/account").text
    blocked = client.get("/cases")
    assert blocked.status_code == 303 and blocked.headers["location"].startswith("/account")
    csrf = _csrf(client)
    weak = client.post(
        "/account/password", data={"current": one_time, "new": "Password2024!", "csrf_token": csrf}
    )
    assert "most+common" in weak.headers["location"] or "most%20common" in weak.headers["location"]
    assert client.get("/cases").status_code == 303, "still to be changed"
    done = client.post(
        "/account/password",
        data={"current": one_time, "new": "a-long-own-passphrase", "csrf_token": csrf},
    )
    assert done.headers["location"].startswith("/login")
    assert _form_login(client, "ines", "a-long-own-passphrase") == "/"
    assert client.get("/cases").status_code == 200


def test_an_administrator_resets_a_password(admin: tuple[TestClient, dict[str, str]]) -> None:
    client, h = admin
    add_user(client, "ines", {Role.INVESTIGATOR}, "Forensics")
    assert _form_login(client, "ines", "password-123") == "/"
    session = dict(client.cookies)
    resp = client.post("/api/v1/users/ines/password-reset", headers=h)
    assert resp.status_code == 200, resp.text
    new = resp.json()["password"]
    client.cookies.clear()
    client.cookies.update(session)
    assert client.get("/cases").status_code == 303, "the user's sessions ended"
    client.cookies.clear()
    form = {"username": "ines", "password": "password-123", "login_token": login_token(client)}
    assert client.post("/login", data=form).status_code == 401, "the old password is gone"
    assert _form_login(client, "ines", new).startswith("/account?msg=")
    state = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        user = s.scalars(select(User).where(User.username == "ines")).one()
        assert user.must_change_password


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("short", "at least 10"),
        ("Password2024!", "most common"),
        ("qwertyuiop", "most common"),
        ("ines-was-here", "user name"),
        ("aaaaaaaaaaaa", "repeated"),
        ("1234567890", "plain run"),
        ("correct horse battery staple", None),
    ],
)
def test_the_password_policy(password: str, problem: str | None) -> None:
    found = password_problem(password, username="ines")
    assert (found is None) if problem is None else (problem in (found or ""))


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_the_migration_keeps_case_twins_apart_and_renamed(kind: str, tmp_path: Path) -> None:
    from alembic import command

    from facetrace.store.db import alembic_config, make_engine, migrate

    t = datetime(2026, 1, 1, tzinfo=UTC)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0014")
        department = table("department", column("id"), column("name"), column("created_at"))
        with engine.begin() as conn:
            for i, name in enumerate(["Forensics", "forensics", " FORENSICS", "Other"], 1):
                conn.execute(insert(department).values(id=i, name=name, created_at=t))
        migrate(engine)  # as the service does at start-up
        with engine.connect() as conn:
            rows = conn.execute(select(Department.name, Department.name_key)).all()
        engine.dispose()
    assert sorted(rows) == [
        (" FORENSICS (3)", "forensics (3)"),
        ("Forensics", "forensics"),
        ("Other", "other"),
        ("forensics (2)", "forensics (2)"),
    ]

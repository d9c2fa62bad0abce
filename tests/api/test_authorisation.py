"""The authorisation matrix: every endpoint, called by every role, answers "forbidden"
exactly for the roles that may not use it, and "log in" to anonymous callers.

The expected table is written out here by hand from the issue (not derived from
``accounts.PERMISSIONS``), so a change to the permission table that is not also
made here fails the test. A final check makes sure no route is missing from it.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute

from facetrace.service import cases, searches
from facetrace.service.accounts import SYSTEM, Role, actor_of, get_user
from facetrace.store.models import Collection
from tests.api.conftest import ROLE_USERS, Running, login
from tests.fakes import fixed_faces, fixed_result

ADMIN, SUP, INV, REV, AUD = "admin", "supervisor", "investigator", "reviewer", "auditor"
ALL = {ADMIN, SUP, INV, REV, AUD}
CASEWORK = {INV, REV}
GALLERY = {ADMIN, INV, REV}

# (method, path template, allowed roles, request keyword arguments)
API: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("GET", "/api/v1/me", ALL, {}),
    ("POST", "/api/v1/me/api-keys", ALL, {"json": {"name": "k"}}),
    ("GET", "/api/v1/me/api-keys", ALL, {}),
    ("DELETE", "/api/v1/me/api-keys/{key}", ALL, {}),
    ("GET", "/api/v1/users", {ADMIN}, {}),
    ("POST", "/api/v1/users", {ADMIN}, {"json": {"username": "new{n}", "roles": ["auditor"]}}),
    ("POST", "/api/v1/users/{dummy}/disable", {ADMIN}, {}),
    ("POST", "/api/v1/users/{dummy}/enable", {ADMIN}, {}),
    ("GET", "/api/v1/collections", GALLERY, {}),
    (
        "POST",
        "/api/v1/collections",
        {ADMIN},
        {"json": {"name": "c{n}", "legal_basis": "lb", "retention": "r"}},
    ),
    ("DELETE", "/api/v1/collections/{missing}", {ADMIN}, {}),
    (
        "POST",
        "/api/v1/collections/{missing}/imports",
        {ADMIN},
        {"files": {"file": ("x.zip", b"PK", "application/zip")}},
    ),
    ("GET", "/api/v1/imports/{missing}", {ADMIN}, {}),
    ("POST", "/api/v1/imports/{missing}/cancel", {ADMIN}, {}),
    ("POST", "/api/v1/imports/{missing}/resume", {ADMIN}, {}),
    ("GET", "/api/v1/collections/{coll}/imports", {ADMIN}, {}),
    ("GET", "/api/v1/collections/{coll}/subjects", GALLERY, {}),
    ("GET", "/api/v1/subjects/{missing}", GALLERY, {}),
    ("DELETE", "/api/v1/subjects/{missing}", {ADMIN}, {}),
    ("DELETE", "/api/v1/photos/{missing}", {ADMIN}, {}),
    ("GET", "/api/v1/cases", CASEWORK | {SUP}, {}),
    (
        "POST",
        "/api/v1/cases",
        {INV},
        {"json": {"number": "N{n}", "purpose": "trace_missing", "legal_basis": "lb"}},
    ),
    ("GET", "/api/v1/cases/{case}", CASEWORK | {SUP}, {}),
    (
        "POST",
        "/api/v1/search",
        {INV},
        {
            "data": {"case_id": "{case}"},
            "files": {"image": ("p.jpg", b"not a photo", "image/jpeg")},
        },
    ),
    (
        "POST",
        "/api/v1/cases/{case}/probes",
        {INV},
        {"files": {"image": ("p.jpg", b"not a photo", "image/jpeg")}},
    ),
    ("GET", "/api/v1/probes/{probe}", CASEWORK, {}),
    ("POST", "/api/v1/probes/{probe}/faces", {INV}, {"json": {"box": [5, 5, 90, 90]}}),
    ("POST", "/api/v1/probes/{probe}/search", {INV}, {"json": {"face": 7}}),
    ("GET", "/api/v1/searches/{search}", CASEWORK, {}),
    ("POST", "/api/v1/searches/{search}/reviews", {REV}, {"json": {"conclusion": "inconclusive"}}),
    (
        "POST",
        "/api/v1/cases/{case}/identification",
        CASEWORK,
        {"json": {"candidate_id": "{cand}", "primary_identifier": "dna", "evidence": "e"}},
    ),
    ("POST", "/api/v1/cases/{case}/contacts", {INV}, {"json": {"name": "x"}}),
    (
        "POST",
        "/api/v1/cases/{case}/notifications",
        {INV},
        {"json": {"channel": "c", "notified_on": "2026-01-01", "outcome": "o"}},
    ),
    ("GET", "/api/v1/cases/{case}/notification-record", {INV}, {}),
    ("GET", "/api/v1/reports", {SUP}, {}),
    ("GET", "/api/v1/audit", {AUD}, {}),
    ("GET", "/api/v1/audit/verify", {AUD}, {}),
]

# Web pages and forms, driven with a session cookie and the CSRF token.
WEB: list[tuple[str, str, set[str], dict[str, Any]]] = [
    ("GET", "/", ALL, {}),
    ("GET", "/account", ALL, {}),
    ("POST", "/account/keys", ALL, {"data": {"name": "k"}}),
    ("POST", "/account/keys/{missing}/revoke", ALL, {}),
    ("POST", "/account/password", ALL, {"data": {"current": "wrong-password", "new": "x" * 12}}),
    ("GET", "/admin/users", {ADMIN}, {}),
    ("POST", "/admin/users", {ADMIN}, {"data": {"username": "w{n}", "roles": ["auditor"]}}),
    ("POST", "/admin/users/{dummy}/roles", {ADMIN}, {"data": {"roles": ["auditor"]}}),
    ("POST", "/admin/users/{dummy}/{op}", {ADMIN}, {}),
    ("GET", "/collections", GALLERY, {}),
    (
        "POST",
        "/collections",
        {ADMIN},
        {"data": {"name": "w{n}", "legal_basis": "l", "retention": "r"}},
    ),
    ("GET", "/collections/{coll}", GALLERY, {}),
    (
        "POST",
        "/collections/{missing}/import",
        {ADMIN},
        {"files": {"file": ("x.zip", b"PK", "application/zip")}},
    ),
    ("GET", "/imports/{missing}", {ADMIN}, {}),
    ("GET", "/imports/{missing}/skipped.csv", {ADMIN}, {}),
    ("POST", "/imports/{missing}/cancel", {ADMIN}, {}),
    ("POST", "/imports/{missing}/resume", {ADMIN}, {}),
    ("POST", "/collections/{missing}/delete", {ADMIN}, {}),
    ("GET", "/subjects/{missing}", GALLERY, {}),
    ("POST", "/subjects/{missing}/delete", {ADMIN}, {}),
    ("POST", "/photos/{missing}/delete", {ADMIN}, {}),
    ("GET", "/photos/{missing}/face.jpg", GALLERY, {}),
    ("GET", "/photos/{missing}/photo.jpg", GALLERY, {}),
    ("GET", "/photos/{missing}/aligned.jpg", GALLERY, {}),
    ("GET", "/photos/{missing}/view", GALLERY, {}),
    ("GET", "/photos/{missing}/subject", GALLERY, {}),
    ("GET", "/cases", CASEWORK | {SUP}, {}),
    (
        "POST",
        "/cases",
        {INV},
        {"data": {"number": "W{n}", "purpose": "trace_missing", "legal_basis": "lb"}},
    ),
    ("GET", "/cases/{case}", CASEWORK | {SUP}, {}),
    (
        "POST",
        "/cases/{case}/probes",
        {INV},
        {"files": {"image": ("p.jpg", b"not a photo", "image/jpeg")}},
    ),
    ("POST", "/probes/{probe}/search", {INV}, {"data": {"face": "7"}}),
    ("GET", "/probes/{probe}/faces/{face}.jpg", CASEWORK, {}),
    ("GET", "/probes/{probe}/faces/{face}/aligned.jpg", CASEWORK, {}),
    ("GET", "/probes/{probe}/photo.jpg", CASEWORK, {}),
    ("GET", "/probes/{probe}", CASEWORK, {}),
    (
        "POST",
        "/probes/{probe}/faces",
        {INV},
        {"data": {"x1": "0", "y1": "0", "x2": "1", "y2": "1"}},
    ),
    ("GET", "/searches/{search}/compare/{cand}", CASEWORK, {}),
    ("GET", "/searches/{search}", CASEWORK, {}),
    ("POST", "/searches/{search}/reviews", {REV}, {"data": {"conclusion": "inconclusive"}}),
    (
        "POST",
        "/cases/{case}/identification",
        CASEWORK,
        {"data": {"candidate_id": "{cand}", "primary_identifier": "dna", "evidence": "e"}},
    ),
    ("POST", "/cases/{case}/contacts", {INV}, {"data": {"name": "x"}}),
    (
        "POST",
        "/cases/{case}/notifications",
        {INV},
        {"data": {"channel": "c", "notified_on": "2026-01-01", "outcome": "o"}},
    ),
    ("GET", "/cases/{case}/record", {INV}, {}),
    ("GET", "/queue", {REV}, {}),
    ("POST", "/cases/{case}/notes", CASEWORK | {SUP}, {"data": {"text": "n"}}),
    ("POST", "/cases/{case}/assign", {SUP}, {"data": {"username": ""}}),
    (
        "POST",
        "/cases/{missing}/close",
        {INV, SUP},
        {"data": {"outcome": "no_result", "reason": "r"}},
    ),
    ("POST", "/cases/{missing}/reopen", {SUP}, {"data": {"reason": "r"}}),
    ("GET", "/reports", {SUP}, {}),
    ("GET", "/reports.csv", {SUP}, {}),
    ("GET", "/audit", {AUD}, {}),
    ("GET", "/audit.csv", {AUD}, {}),
]

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/api/v1/docs")}


@pytest.fixture(scope="module")
def ids(running: Running) -> dict[str, Any]:
    """A case with a probe and a search in Dept A, a collection, a spare user."""
    state: Any = running.app_state
    with state.sessions.begin() as s:
        inv = actor_of(get_user(s, username=INV))
        case = cases.create_case(
            s,
            actor=inv,
            number="M-1",
            purpose="identify_deceased",
            legal_basis="lb",
            retention_days=30,
        )
        probe = searches.add_probe(
            s,
            actor=inv,
            case_id=case.id,
            data=b"x",
            filename="p.jpg",
            found=fixed_faces(),
        )
        search = searches.record_search(
            s,
            actor=inv,
            probe_id=probe.id,
            face=0,
            force=False,
            result=fixed_result(),
        )
        coll = Collection(name="matrix", legal_basis="lb", retention="r")
        s.add(coll)
        s.flush()
        from facetrace.service.accounts import create_user

        create_user(
            s,
            actor=SYSTEM,
            username="dummy",
            password="password-123",
            roles=frozenset({Role.AUDITOR}),
        )
        return {
            "case": case.id,
            "probe": probe.id,
            "search": search.id,
            "cand": search.candidates[0].id,
            "coll": coll.id,
            "missing": 987654,
            "dummy": "dummy",
            "op": "enable",
            "face": 0,
            "key": 987654,
        }


def _fill(value: Any, ids: dict[str, Any], n: int) -> Any:
    if isinstance(value, str):
        out = value.replace("{n}", str(n))
        for k, v in ids.items():
            out = out.replace("{" + k + "}", str(v))
        return int(out) if out.isdigit() and value.startswith("{") else out
    if isinstance(value, dict):
        return {k: _fill(v, ids, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids, n) for v in value]
    return value


def test_api_matrix(running: Running, ids: dict[str, Any]) -> None:
    client = running.client
    client.cookies.clear()
    n = 0
    wrong: list[str] = []
    for method, path, allowed, kwargs in API:
        url = _fill(path, ids, 0)
        anon = client.request(method, url, **_fill(kwargs, ids, n))
        if anon.status_code != 401:
            wrong.append(f"anonymous {method} {path}: {anon.status_code}")
        for role in ROLE_USERS:
            n += 1
            resp = client.request(
                method,
                url,
                headers={"Authorization": f"Bearer {running.keys[role]}"},
                **_fill(kwargs, ids, n),
            )
            assert resp.status_code < 500, (method, path, role, resp.text)
            denied = resp.status_code == 403
            if denied == (role in allowed) or resp.status_code == 401:
                wrong.append(f"{role} {method} {path}: {resp.status_code} {resp.text[:120]}")
    assert not wrong, "\n".join(wrong)


def test_web_matrix(running: Running, ids: dict[str, Any]) -> None:
    client = running.client
    n = 1000
    wrong: list[str] = []
    for role in ROLE_USERS:
        csrf = login(client, role)
        for method, path, allowed, kwargs in WEB:
            n += 1
            args = _fill(kwargs, ids, n)
            if method == "POST":
                args.setdefault("data", {})["csrf_token"] = csrf
            resp = client.request(method, _fill(path, ids, n), **args)
            assert resp.status_code < 500, (method, path, role, resp.text)
            denied = resp.status_code == 403
            if denied == (role in allowed) or resp.status_code == 401:
                wrong.append(f"{role} {method} {path}: {resp.status_code}")
    client.cookies.clear()
    for method, path, _allowed, _kwargs in WEB:
        resp = client.request(method, _fill(path, ids, 0))
        if resp.status_code != 303 or "/login" not in resp.headers.get("location", ""):
            wrong.append(f"anonymous {method} {path}: {resp.status_code}")
    assert not wrong, "\n".join(wrong)


def test_every_route_is_in_the_matrix(running: Running) -> None:
    app: Any = running.client.app
    routes = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) for m in r.methods}
    covered = {(m, p) for m, p, _, _ in API + WEB} | PUBLIC
    normalise = {(m, p.replace("{key}", "{key_id}")) for m, p in covered}
    missing = sorted(
        r for r in routes if r not in covered and r not in normalise and not _same_shape(r, covered)
    )
    assert not missing, f"routes missing from the matrix: {missing}"


def _same_shape(route: tuple[str, str], covered: set[tuple[str, str]]) -> bool:
    """Route templates name parameters differently from the table; compare shapes."""
    import re

    def shape(p: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", p)

    return any(m == route[0] and shape(p) == shape(route[1]) for m, p in covered)


def test_cookie_writes_need_the_csrf_token(running: Running) -> None:
    client = running.client
    login(client, INV)
    resp = client.post(
        "/cases", data={"number": "CSRF-1", "purpose": "trace_missing", "legal_basis": "lb"}
    )
    assert resp.status_code == 403 and "CSRF" in resp.text
    resp = client.post(
        "/api/v1/cases", json={"number": "CSRF-2", "purpose": "trace_missing", "legal_basis": "lb"}
    )
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("application/problem+json")
    client.cookies.clear()

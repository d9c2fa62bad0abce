"""An error page is drawn in the normal layout: the menu, the signed-in user and the
log-out form, as on every other page (it was the bare title and "Go back · Home")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.service.accounts import Role
from tests.api.conftest import add_user, login, make_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("data")) as c:
        yield c


def _layout(html: str) -> str:
    """The page's header (menu and user)."""
    match = re.search(r'<header class="top">(.*?)</header>', html, re.S)
    assert match is not None, html
    return match.group(1)


def _signed_in(html: str, username: str, csrf: str) -> None:
    header = _layout(html)
    assert '<a href="/cases">Cases</a>' in header, header
    assert f'<a href="/account">{username}</a>' in header, header
    assert f'name="csrf_token" value="{csrf}"' in header, header  # log-out works


def test_unusable_photo_page_has_the_menu_and_user(client: TestClient) -> None:
    key = add_user(client, "ines", {Role.INVESTIGATOR}, "Forensics")
    case = client.post(
        "/api/v1/cases",
        headers={"Authorization": f"Bearer {key}"},
        json={"number": "E-1", "purpose": "trace_missing", "legal_basis": "court order"},
    ).json()
    csrf = login(client, "ines")
    resp = client.post(
        f"/cases/{case['id']}/probes",
        data={"csrf_token": csrf},
        files={"image": ("statement.jpg", b"a witness statement, not a photo\n" * 20)},
    )
    assert resp.status_code == 422
    assert "<h1>Unusable photo</h1>" in resp.text
    _signed_in(resp.text, "ines", csrf)
    # a refused action elsewhere (another department's case is 'not found')
    resp = client.get("/cases/999999")
    assert resp.status_code == 404
    _signed_in(resp.text, "ines", csrf)


def test_a_mistyped_address_shows_the_menu_to_a_signed_in_user(client: TestClient) -> None:
    add_user(client, "olga", {Role.INVESTIGATOR}, "Forensics")
    csrf = login(client, "olga")
    resp = client.get("/no/such/page")
    assert resp.status_code == 404
    _signed_in(resp.text, "olga", csrf)
    client.cookies.clear()
    resp = client.get("/no/such/page")  # nobody signed in: no menu, no user
    assert resp.status_code == 404
    assert "<nav>" not in _layout(resp.text) and "Log out" not in resp.text
    client.cookies.set("ft_session", "an ended session")
    resp = client.get("/no/such/page")
    assert resp.status_code == 404 and "<nav>" not in _layout(resp.text)


def test_nothing_broken_for_the_api(client: TestClient, tmp_path: Path) -> None:
    resp = client.get("/api/v1/no/such/route")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")

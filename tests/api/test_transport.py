"""Transport (issue 11, item 14): Secure cookies and HSTS whenever the service is reached
over HTTPS, links limited to http(s), and a readiness answer that names no server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from facetrace.config import ServiceConfig
from facetrace.errors import ManifestError
from facetrace.gallery.ingest import read_manifest
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from facetrace.store.models import Photo
from tests.api.conftest import PASSWORD, add_user, login, login_token


def _app(data: Path, **service: object) -> TestClient:
    cfg = ServiceConfig(data=data)
    cfg.service = cfg.service.model_copy(update=service)
    return TestClient(create_app(cfg), follow_redirects=False)


def _session_cookie(resp: object) -> str:
    headers = resp.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return next(h for h in headers if h.startswith("ft_session="))


def _log_in(client: TestClient, **kwargs: object) -> object:
    form = {"username": "ines", "password": PASSWORD, "login_token": login_token(client)}
    resp = client.post("/login", data=form, **kwargs)  # type: ignore[arg-type]
    assert resp.status_code == 303, resp.text
    return resp


def test_over_https_cookies_are_secure_and_hsts_is_sent(tmp_path: Path) -> None:
    with _app(tmp_path) as plain:
        add_user(plain, "ines", {Role.INVESTIGATOR}, "Forensics")
        resp = _log_in(plain)
        assert "secure" not in _session_cookie(resp).lower()
        assert "strict-transport-security" not in plain.get("/login").headers
        https = TestClient(plain.app, base_url="https://testserver", follow_redirects=False)
        page = https.get("/login")
        assert page.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in page.headers["set-cookie"].lower(), "the login form's cookie too"
        assert "secure" in _session_cookie(_log_in(https)).lower()


def test_behind_a_trusted_proxy_its_forwarded_proto_counts(tmp_path: Path) -> None:
    with _app(tmp_path, trusted_proxies=["10.0.0.5"]) as first:
        add_user(first, "ines", {Role.INVESTIGATOR}, "Forensics")
        proxy = TestClient(first.app, follow_redirects=False, client=("10.0.0.5", 443))
        stranger = TestClient(first.app, follow_redirects=False, client=("203.0.113.7", 443))
        forwarded = {"X-Forwarded-Proto": "https"}
        resp = proxy.get("/login", headers=forwarded)
        assert resp.headers["strict-transport-security"].startswith("max-age=")
        assert "secure" in _session_cookie(_log_in(proxy, headers=forwarded)).lower()
        resp = stranger.get("/login", headers=forwarded)
        assert "strict-transport-security" not in resp.headers, "a client's own header"


@pytest.mark.parametrize(
    "url",
    ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<b>x</b>", "ftp://x/y"],
)
def test_manifest_links_other_than_http_are_refused(tmp_path: Path, url: str) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        f'path,subject_id,source_url\na.jpg,P-1,https://example.org/a\nb.jpg,P-2,"{url}"\n'
    )
    with pytest.raises(ManifestError, match=r"csv:3: source_url: only http:// and https://"):
        read_manifest(manifest)
    ok = tmp_path / "ok.csv"
    ok.write_text("path,subject_id,source_url\na.jpg,P-1,  https://example.org/a \n")
    assert read_manifest(ok)[0].record.provenance.source_url == "https://example.org/a"


def test_a_stored_javascript_link_is_not_rendered_as_a_link(
    built_gallery: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(built_gallery, data)
    with _app(data) as client:
        add_user(client, "ada", {Role.ADMIN}, None)
        state = client.app.state.service  # type: ignore[attr-defined]
        with state.sessions.begin() as s:  # kept before manifests were checked
            photo = s.execute(select(Photo).order_by(Photo.id)).scalars().first()
            assert photo is not None
            subject = photo.subject_id
            s.execute(
                update(Photo)
                .where(Photo.id == photo.id)
                .values(source_url="javascript:alert(1)", source_title="")
            )
        login(client, "ada")
        page = client.get(f"/subjects/{subject}")
        assert page.status_code == 200, page.text
        assert 'href="javascript:' not in page.text
        assert "javascript:alert(1)" in page.text, "still shown, as text"

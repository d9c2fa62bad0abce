"""Abuse limits: login and search are rate limited, uploads are size limited."""

from __future__ import annotations

from pathlib import Path

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from tests.api.conftest import add_user, login_token


def test_login_is_rate_limited(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    cfg = ServiceConfig(data=tmp_path)
    cfg.service.login_per_minute = 3
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        codes = []
        for _ in range(4):
            form = {
                "username": "nobody",
                "password": "wrong-password",
                "login_token": login_token(client),
            }  # a failed login renews the token
            codes.append(client.post("/login", data=form).status_code)
        assert codes == [401, 401, 401, 429]
        resp = client.post("/login", data={"username": "nobody", "password": "x"})
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) > 0


def test_upload_size_limit(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    cfg = ServiceConfig(data=tmp_path)
    cfg.service.max_upload_mb = 0.01
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        key = add_user(client, "ines", {Role.INVESTIGATOR}, "Forensics")
        h = {"Authorization": f"Bearer {key}"}
        case = client.post(
            "/api/v1/cases",
            headers=h,
            json={"number": "L-1", "purpose": "trace_missing", "legal_basis": "x"},
        ).json()
        resp = client.post(
            "/api/v1/search",
            headers=h,
            data={"case_id": str(case["id"])},
            files={"image": ("big.jpg", b"0" * 20_000, "image/jpeg")},
        )
        assert resp.status_code == 422 and "larger than the limit" in resp.json()["detail"]


def test_production_refuses_insecure_cookies() -> None:
    import pytest
    from pydantic import ValidationError

    from facetrace.config import ServiceSettings

    with pytest.raises(ValidationError, match="SECURE_COOKIES"):
        ServiceSettings(environment="production")
    assert ServiceSettings(environment="production", secure_cookies=True).secure_cookies


def test_pages_carry_security_headers(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceConfig(data=tmp_path))) as client:
        resp = client.get("/login")
        assert "script-src 'self'" in resp.headers["content-security-policy"]
        assert resp.headers["x-frame-options"] == "DENY"
        assert "onclick" not in resp.text and "onsubmit" not in resp.text


def test_login_needs_the_form_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    with TestClient(create_app(ServiceConfig(data=tmp_path))) as client:
        resp = client.post("/login", data={"username": "a", "password": "b", "login_token": "x"})
        assert resp.status_code == 400 and "expired" in resp.text

"""The app on PostgreSQL: log in, open a case, review the audit chain."""

from __future__ import annotations

from pathlib import Path

from facetrace.service.accounts import Role
from tests.api.conftest import add_user, login, make_client
from tests.dbutil import database_url


def test_app_on_postgresql(tmp_path: Path) -> None:
    with database_url("pg", tmp_path) as url, make_client(tmp_path / "data", url) as client:
        add_user(client, "ines", {Role.INVESTIGATOR}, "Forensics")
        aud = add_user(client, "aude", {Role.AUDITOR}, None)
        csrf = login(client, "ines")
        resp = client.post(
            "/cases",
            data={
                "number": "PG-1",
                "purpose": "trace_missing",
                "legal_basis": "Order 1",
                "csrf_token": csrf,
            },
        )
        assert resp.status_code == 303
        assert "PG-1" in client.get(resp.headers["location"]).text
        client.cookies.clear()
        check = client.get("/api/v1/audit/verify", headers={"Authorization": f"Bearer {aud}"})
        assert check.json()["ok"] and check.json()["entries"] >= 4

"""Admission control in the service (issue 11, item 4): ten concurrent searches with a
79-megapixel JPEG stay within the decode budget, and the rate limits (per account and
per client address) refuse work before a photo is decoded. Memory itself is measured in
benchmarks/bench_admission.py (BENCHMARKS.md), not here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service import accounts
from facetrace.service.accounts import Role
from tests.live import serve_thread
from tests.test_admission import big_jpeg

SEARCH_BODY = {"number": "A-1", "purpose": "trace_missing", "legal_basis": "court order"}


def _user(app: Any, name: str) -> dict[str, str]:
    state = app.state.service
    with state.sessions.begin() as s:
        user = accounts.create_user(
            s,
            actor=accounts.SYSTEM,
            username=name,
            password="password-123",
            roles=frozenset({Role.INVESTIGATOR}),
            department="Forensics",
        )
        _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="t")
    return {"Authorization": f"Bearer {key}"}


def _config(data: Path, **service: object) -> ServiceConfig:
    cfg = ServiceConfig(data=data)
    # the detector looks at 4 MP: a 79 MP JPEG is decoded at 1/4 of its side (4.95 MP)
    cfg.detect.max_detect_pixels = 4_000_000
    cfg.service = cfg.service.model_copy(update=service)
    return cfg


def test_ten_concurrent_79_megapixel_searches_stay_within_the_budget(tmp_path: Path) -> None:
    photo = big_jpeg()
    assert len(photo) < 2_000_000
    with serve_thread(_config(tmp_path)) as (base, app):
        headers = _user(app, "ines")
        case = httpx.post(f"{base}/api/v1/cases", headers=headers, json=SEARCH_BODY, timeout=30)
        case_id = str(case.json()["id"])

        def search(_: int) -> httpx.Response:
            return httpx.post(
                f"{base}/api/v1/search",
                headers=headers,
                data={"case_id": case_id},
                files={"image": ("big.jpg", photo, "image/jpeg")},
                timeout=300,
            )

        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(search, range(10)))
        budget = app.state.service.decode_budget
    codes = sorted(a.status_code for a in answers)
    # no face in the grey photo (422), or the queue was full (503 with Retry-After)
    assert set(codes) <= {422, 503}, [a.text for a in answers]
    assert any(a.status_code == 422 and "no face" in a.text for a in answers)
    assert all("retry-after" in a.headers for a in answers if a.status_code == 503)
    one = 2225 * 2225
    assert budget.max_photos == 2 and budget.peak_pixels <= 2 * one, "two reduced photos"
    assert budget.in_flight == (0, 0)


def test_the_address_limit_refuses_before_any_decode(tmp_path: Path) -> None:
    cfg = _config(tmp_path, search_per_minute_per_address=2)
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        a, b = _user(client.app, "ines"), _user(client.app, "omar")
        cases = [
            client.post("/api/v1/cases", headers=h, json={**SEARCH_BODY, "number": n}).json()
            for h, n in ((a, "A-1"), (b, "B-1"))
        ]
        junk = {"image": ("x.jpg", b"not a photo", "image/jpeg")}
        for _ in range(2):  # keeping a probe runs the pipeline: it counts
            resp = client.post(f"/api/v1/cases/{cases[0]['id']}/probes", headers=a, files=junk)
            assert resp.status_code == 422, resp.text
        big = {"image": ("big.jpg", big_jpeg(), "image/jpeg")}
        resp = client.post(f"/api/v1/cases/{cases[1]['id']}/probes", headers=b, files=big)
        assert resp.status_code == 429 and int(resp.headers["retry-after"]) >= 1
        assert client.app.state.service.decode_budget.peak_pixels == 0, "nothing decoded"
        # another address is not held back by this one
        other = TestClient(client.app, client=("198.51.100.9", 5000))
        resp = other.post(f"/api/v1/cases/{cases[1]['id']}/probes", headers=b, files=junk)
        assert resp.status_code == 422


def test_the_account_limit_follows_the_account_across_addresses(tmp_path: Path) -> None:
    cfg = _config(tmp_path, search_per_minute=2)
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        a = _user(client.app, "ines")
        case = client.post("/api/v1/cases", headers=a, json=SEARCH_BODY).json()
        junk = {"image": ("x.jpg", b"not a photo", "image/jpeg")}
        for address in ("203.0.113.1", "203.0.113.2"):
            c = TestClient(client.app, client=(address, 5000))
            assert (
                c.post(f"/api/v1/cases/{case['id']}/probes", headers=a, files=junk).status_code
                == 422
            )
        c = TestClient(client.app, client=("203.0.113.3", 5000))
        resp = c.post(f"/api/v1/cases/{case['id']}/probes", headers=a, files=junk)
        assert resp.status_code == 429

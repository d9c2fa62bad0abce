"""The two search modes through the API and the pages, with the real engine on real faces:
a gallery set to switch to investigation from 3 subjects lists candidates for a person who
is not in it (each with score and false-match rate), identification asked per search says
"no candidate" for the same photo, and every result, listing and audit entry says which
mode produced it."""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facetrace.config import SearchSettings, ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from tests.api.conftest import add_user, login

PEOPLE = ["Hugo_Chavez", "Jacques_Chirac", "Laura_Bush", "Lleyton_Hewitt"]
ABSENT = "Colin_Powell"  # nobody of the gallery


@pytest.fixture(scope="module")
def app(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app whose 4-subject gallery is past its (configured) investigation size of 3."""
    cfg = ServiceConfig(
        data=tmp_path_factory.mktemp("data"), search=SearchSettings(investigation_from_subjects=3)
    )
    cfg.service.login_per_minute = 1000
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        admin = add_user(client, "admin", {Role.ADMIN}, None)
        inv = add_user(client, "inv", {Role.INVESTIGATOR}, "Dept A")
        aud = add_user(client, "aud", {Role.AUDITOR}, None)
        h_admin = {"Authorization": f"Bearer {admin}"}
        coll = client.post(
            "/api/v1/collections",
            headers=h_admin,
            json={"name": "register", "legal_basis": "Act 12", "retention": "10 years"},
        ).json()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name in PEOPLE:
                src = faces_dir / "lfw" / "images" / name / f"{name}_0001.jpg"
                zf.write(src, f"export/{name}/{src.name}")
        job = client.post(
            f"/api/v1/collections/{coll['id']}/imports",
            headers=h_admin,
            files={"file": ("g.zip", buf.getvalue(), "application/zip")},
        )
        assert job.status_code == 202, job.text
        deadline = time.monotonic() + 300
        while True:
            state = client.get(f"/api/v1/imports/{job.json()['id']}", headers=h_admin).json()
            if state["state"] in ("done", "failed") or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert state["state"] == "done", state
        h_inv = {"Authorization": f"Bearer {inv}"}
        case = client.post(
            "/api/v1/cases",
            headers=h_inv,
            json={"number": "M-1", "purpose": "trace_missing", "legal_basis": "Order 3"},
        ).json()
        yield {
            "client": client,
            "inv": h_inv,
            "aud": {"Authorization": f"Bearer {aud}"},
            "case": case["id"],
            "photo": (faces_dir / "lfw" / "images" / ABSENT / f"{ABSENT}_0001.jpg").read_bytes(),
        }


def _search(app: dict[str, Any], **form: str) -> Any:
    return app["client"].post(
        "/api/v1/search",
        headers=app["inv"],
        data={"case_id": str(app["case"]), **form},
        files={"image": ("p.jpg", app["photo"], "image/jpeg")},
    )


def test_large_gallery_lists_candidates_for_investigation(app: dict[str, Any]) -> None:
    resp = _search(app)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["mode"] == "investigation" and not body["no_candidate"]
    choice = body["mode_choice"]
    assert choice["chosen_by"] == "gallery size" and choice["gallery_subjects"] == 4
    assert choice["investigation_from"] == 3 and choice["switch_source"] == "setting"
    cands = body["candidates"]
    assert [c["rank"] for c in cands] == [1, 2, 3, 4]  # the whole list, no threshold
    assert {c["subject"]["id"] for c in cands} == set(PEOPLE)
    assert all(c["score"] > 0 and c["false_match_rate"] is not None for c in cands)
    # a stranger: nobody reaches identification's threshold, kept for reference
    assert not any(c["above_threshold"] for c in cands)
    assert all(c["score"] < body["threshold"] for c in cands)


def test_identification_asked_per_search_says_no_candidate(app: dict[str, Any]) -> None:
    body = _search(app, mode="identification").json()
    assert body["mode"] == "identification" and body["no_candidate"]
    assert body["mode_choice"]["chosen_by"] == "request"
    assert not any(c["above_threshold"] for c in body["candidates"])  # look-alikes only
    # a stored probe's face, searched again in the other mode
    client: TestClient = app["client"]
    again = client.post(
        f"/api/v1/probes/{body['probe_id']}/search",
        headers=app["inv"],
        json={"face": 0, "mode": "investigation"},
    )
    assert again.status_code == 201, again.text
    assert again.json()["mode"] == "investigation" and len(again.json()["candidates"]) == 4


def test_a_bad_mode_is_refused_and_nothing_stored(app: dict[str, Any]) -> None:
    client: TestClient = app["client"]
    before = client.get(f"/api/v1/cases/{app['case']}", headers=app["inv"]).json()["searches"]
    resp = _search(app, mode="guess")
    assert resp.status_code == 422 and "mode" in resp.text
    after = client.get(f"/api/v1/cases/{app['case']}", headers=app["inv"]).json()["searches"]
    assert len(after) == len(before)


def test_listing_audit_and_pages_say_the_mode(app: dict[str, Any]) -> None:
    client: TestClient = app["client"]
    investigated = _search(app).json()
    identified = _search(app, mode="identification").json()
    listed = client.get(f"/api/v1/cases/{app['case']}", headers=app["inv"]).json()["searches"]
    modes = {s["id"]: s["mode"] for s in listed}
    assert modes[investigated["id"]] == "investigation"
    assert modes[identified["id"]] == "identification"
    log = client.get("/api/v1/audit", headers=app["aud"]).json()
    searched = {
        json.loads(e["detail"])["search"]: json.loads(e["detail"])["mode"]
        for e in log
        if e["action"] == "search"
    }
    assert searched[investigated["id"]] == "investigation"
    assert searched[identified["id"]] == "identification"
    login(client, "inv")  # the same account on the web (password set by add_user)
    page = client.get(f"/searches/{investigated['id']}").text
    assert "Investigation mode" in page and "whatever their score" in page
    assert "Why this list has no threshold" in page and "(below the threshold)" not in page
    assert "4 people, at or above the 3" in page
    other = client.get(f"/searches/{identified['id']}").text
    assert "Identification mode" in other and 'id="no-candidate"' in other
    case_page = client.get(f"/cases/{app['case']}").text
    assert "people listed for review (investigation" in case_page
    assert 'name="mode"' in case_page  # the per-search choice on the search forms

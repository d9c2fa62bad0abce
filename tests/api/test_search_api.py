"""The API with the real engine on real faces: import a small gallery, search with a
case, and the clear errors for searches without a case, bad files and group photos."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facetrace.service.accounts import Role
from tests.api.conftest import add_user, index_stacks, login, make_client

PEOPLE = ["Hugo_Chavez", "Jacques_Chirac", "Laura_Bush", "Lleyton_Hewitt"]


@pytest.fixture(scope="module")
def gallery(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app with a four-person gallery imported through the API."""
    with make_client(tmp_path_factory.mktemp("data")) as client:
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
                for i in (1, 2):
                    src = faces_dir / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"
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
        assert state["summary"]["photos_added"] == 8
        h_inv = {"Authorization": f"Bearer {inv}"}
        case = client.post(
            "/api/v1/cases",
            headers=h_inv,
            json={"number": "A-1", "purpose": "trace_missing", "legal_basis": "Order 3"},
        ).json()
        yield {
            "client": client,
            "admin": h_admin,
            "inv": h_inv,
            "aud": {"Authorization": f"Bearer {aud}"},
            "case": case["id"],
            "coll": coll["id"],
            "faces": faces_dir,
        }


def _photo(faces: Path, name: str, i: int) -> bytes:
    return (faces / "lfw" / "images" / name / f"{name}_{i:04d}.jpg").read_bytes()


def test_search_returns_candidates_with_provenance(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"])},
        files={"image": ("p.jpg", _photo(gallery["faces"], "Laura_Bush", 3), "image/jpeg")},
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert not body["no_candidate"]
    top = body["candidates"][0]
    assert top["subject"]["id"] == "Laura_Bush" and top["above_threshold"]
    assert top["provenance"]["legal_basis"] == "Act 12"
    assert top["provenance"]["collection"] == "register"
    assert "not identifications" in body["notice"]
    again = client.get(f"/api/v1/searches/{body['id']}", headers=gallery["inv"])
    assert again.json()["candidates"][0]["id"] == top["id"]


def test_search_without_a_case_is_refused(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        files={"image": ("p.jpg", _photo(gallery["faces"], "Laura_Bush", 3), "image/jpeg")},
    )
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert "belongs to a case" in resp.json()["detail"]


def test_bad_file_gets_a_clear_problem(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"])},
        files={"image": ("notes.jpg", b"this is not a photo", "image/jpeg")},
    )
    assert resp.status_code == 422
    problem = resp.json()
    assert problem["title"] == "Unusable photo" and "notes.jpg" in problem["detail"]
    assert "Traceback" not in resp.text


def test_group_photo_needs_a_face_number(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    group = (gallery["faces"] / "webphotos13" / "multi_face" / "couple.jpg").read_bytes()
    files = {"image": ("couple.jpg", group, "image/jpeg")}
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"])},
        files=files,
    )
    assert resp.status_code == 422 and "pass face=N" in resp.json()["detail"]
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"]), "face": "1", "force": "true"},
        files=files,
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["face_index"] == 1


def test_delete_subject_and_audit(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    subjects = client.get(
        f"/api/v1/collections/{gallery['coll']}/subjects", headers=gallery["admin"]
    ).json()
    hewitt = next(s for s in subjects if s["external_id"] == "Lleyton_Hewitt")
    detail = client.get(f"/api/v1/subjects/{hewitt['id']}", headers=gallery["admin"]).json()
    assert len(detail["photos"]) == 2
    assert detail["photos"][0]["provenance"]["legal_basis"] == "Act 12"
    resp = client.delete(f"/api/v1/subjects/{hewitt['id']}", headers=gallery["admin"])
    assert resp.status_code == 200 and resp.json()["faces_removed"] >= 2
    log = client.get("/api/v1/audit", headers=gallery["aud"]).json()
    actions = {e["action"] for e in log}
    assert {"import", "search", "view_results", "delete", "case_create"} <= actions
    assert client.get("/api/v1/audit/verify", headers=gallery["aud"]).json()["ok"]


def test_web_group_photo_lets_the_investigator_pick(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    from facetrace.service import accounts

    with state.sessions.begin() as s:
        user = accounts.get_user(s, username="inv")
        user.password_hash = accounts.hash_password("password-123")
    csrf = login(client, "inv")
    group = (gallery["faces"] / "webphotos13" / "multi_face" / "couple.jpg").read_bytes()
    resp = client.post(
        f"/cases/{gallery['case']}/probes",
        data={"csrf_token": csrf},
        files={"image": ("couple.jpg", group, "image/jpeg")},
    )
    assert resp.status_code == 303 and "pick" in resp.headers["location"]
    page = client.get(resp.headers["location"]).text
    assert page.count('class="face-pick"') >= 2
    probe_id = int(page.split('action="/probes/')[-1].split("/")[0])  # the newest probe
    face = client.get(f"/probes/{probe_id}/faces/1.jpg")
    assert face.status_code == 200 and face.headers["content-type"] == "image/jpeg"
    resp = client.post(
        f"/probes/{probe_id}/search", data={"csrf_token": csrf, "face": "1", "force": "true"}
    )
    assert resp.status_code == 303 and "/searches/" in resp.headers["location"]
    results = client.get(resp.headers["location"]).text
    assert "candidate" in results.lower() and "match" not in results.lower()


def test_web_bad_file_shows_a_clear_error(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    csrf = login(client, "inv")
    resp = client.post(
        f"/cases/{gallery['case']}/probes",
        data={"csrf_token": csrf},
        files={"image": ("scan.pdf", b"%PDF-1.4 not an image", "image/jpeg")},
    )
    assert resp.status_code == 422
    assert "Unusable photo" in resp.text and "scan.pdf" in resp.text
    assert "Traceback" not in resp.text
    client.cookies.clear()


def _import(client: TestClient, headers: dict[str, str], coll: int, zip_bytes: bytes) -> dict:
    job = client.post(
        f"/api/v1/collections/{coll}/imports",
        headers=headers,
        files={"file": ("m.zip", zip_bytes, "application/zip")},
    )
    assert job.status_code == 202, job.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/imports/{job.json()['id']}", headers=headers).json()
        if state["state"] in ("done", "failed"):
            return dict(state)
        time.sleep(0.3)
    raise AssertionError("import did not finish")


def test_manifest_import_keeps_provenance_and_stays_in_its_folder(
    gallery: dict[str, Any],
) -> None:
    client: TestClient = gallery["client"]
    photo = gallery["faces"] / "lfw" / "images" / "Tony_Blair" / "Tony_Blair_0001.jpg"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.write(photo, "photos/blair.jpg")
        zf.writestr(
            "manifest.csv",
            "subject_id,subject_name,path,source_url,collection\n"
            "rec-77,Tony Blair,photos/blair.jpg,https://records.example/77,other\n",
        )
    state = _import(client, gallery["admin"], gallery["coll"], buf.getvalue())
    assert state["state"] == "done" and state["summary"]["photos_added"] == 1
    subjects = client.get(
        f"/api/v1/collections/{gallery['coll']}/subjects", headers=gallery["admin"]
    ).json()
    rec = next(s for s in subjects if s["external_id"] == "rec-77")
    photos = client.get(f"/api/v1/subjects/{rec['id']}", headers=gallery["admin"]).json()
    provenance = photos["photos"][0]["provenance"]
    assert provenance["source_url"] == "https://records.example/77"
    assert provenance["collection"] == "register"  # not "other"

    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.csv", f"subject_id,path\nx,{photo}\n")
    state = _import(client, gallery["admin"], gallery["coll"], evil.getvalue())
    assert state["state"] == "failed" and "outside" in state["error"]


def test_department_collections_are_searched_only_by_that_department(
    gallery: dict[str, Any],
) -> None:
    client: TestClient = gallery["client"]
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    from facetrace.service import accounts
    from facetrace.store.models import Collection

    with state.sessions.begin() as s:
        other = accounts.find_department(s, name="Dept B")
        s.get(Collection, gallery["coll"]).department_id = other.id
    try:
        resp = client.post(
            "/api/v1/search",
            headers=gallery["inv"],
            data={"case_id": str(gallery["case"])},
            files={"image": ("p.jpg", _photo(gallery["faces"], "Laura_Bush", 3), "image/jpeg")},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["no_candidate"] and not resp.json()["candidates"]
    finally:
        with state.sessions.begin() as s:
            s.get(Collection, gallery["coll"]).department_id = None


def test_group_photo_uploaded_once_and_each_face_searched(
    gallery: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client: TestClient = gallery["client"]
    analyser: Any = client.app.state.service.analyser  # type: ignore[attr-defined]
    runs: list[str] = []
    for name in ("analyse", "analyse_box"):
        real = getattr(analyser, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kw: Any) -> Any:
            runs.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(analyser, name, counted)
    group = (gallery["faces"] / "webphotos13" / "multi_face" / "couple.jpg").read_bytes()
    resp = client.post(
        f"/api/v1/cases/{gallery['case']}/probes",
        headers=gallery["inv"],
        files={"image": ("couple.jpg", group, "image/jpeg")},
    )
    assert resp.status_code == 201, resp.text
    probe = resp.json()
    assert len(probe["faces"]) >= 2 and runs == ["analyse"]
    assert [f["index"] for f in probe["faces"]] == list(range(len(probe["faces"])))
    assert all(f["origin"] == "detected" for f in probe["faces"])
    found = []
    for face in (0, 1, 0):
        resp = client.post(
            f"/api/v1/probes/{probe['id']}/search",
            headers=gallery["inv"],
            json={"face": face, "force": True},
        )
        assert resp.status_code == 201, resp.text
        assert resp.json()["face_index"] == face
        found.append(resp.json())
    assert runs == ["analyse"]  # three searches, no model run
    assert [c["score"] for c in found[0]["candidates"]] == [
        c["score"] for c in found[2]["candidates"]
    ]
    # the same photo searched in one call gives the same candidates for the same face
    once = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"]), "face": "1", "force": "true"},
        files={"image": ("couple.jpg", group, "image/jpeg")},
    ).json()
    assert [c["subject"]["id"] for c in once["candidates"]] == [
        c["subject"]["id"] for c in found[1]["candidates"]
    ]
    # refused: a face the probe does not have, before any model runs
    resp = client.post(
        f"/api/v1/probes/{probe['id']}/search", headers=gallery["inv"], json={"face": 9}
    )
    assert resp.status_code == 422 and "face 9" in resp.json()["detail"]
    # a box drawn exactly around a found face gives that face's vector again
    box = probe["faces"][1]["box"]
    resp = client.post(
        f"/api/v1/probes/{probe['id']}/faces", headers=gallery["inv"], json={"box": box}
    )
    assert resp.status_code == 201, resp.text
    drawn = resp.json()
    assert drawn["origin"] == "manual" and drawn["index"] == len(probe["faces"])
    assert runs == ["analyse", "analyse", "analyse_box"]  # the upload, the one-call search, the box
    resp = client.post(
        f"/api/v1/probes/{probe['id']}/search",
        headers=gallery["inv"],
        json={"face": drawn["index"], "force": True},
    )
    assert resp.status_code == 201, resp.text
    again = resp.json()
    assert [round(c["score"], 4) for c in again["candidates"]] == [
        round(c["score"], 4) for c in found[1]["candidates"]
    ]
    listed = client.get(f"/api/v1/probes/{probe['id']}", headers=gallery["inv"]).json()
    assert len(listed["faces"]) == len(probe["faces"]) + 1


def test_refused_upload_search_keeps_no_probe(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    case = client.get(f"/api/v1/cases/{gallery['case']}", headers=gallery["inv"]).json()
    group = (gallery["faces"] / "webphotos13" / "multi_face" / "couple.jpg").read_bytes()
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    from sqlalchemy import func, select

    from facetrace.store.service_models import Probe

    def probes() -> int:
        with state.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Probe)) or 0)

    before = probes()
    for data in ({}, {"face": "12"}):
        resp = client.post(
            "/api/v1/search",
            headers=gallery["inv"],
            data={"case_id": str(gallery["case"]), **data},
            files={"image": ("couple.jpg", group, "image/jpeg")},
        )
        assert resp.status_code == 422, resp.text
    assert probes() == before
    after = client.get(f"/api/v1/cases/{gallery['case']}", headers=gallery["inv"]).json()
    assert len(after["searches"]) == len(case["searches"])


def _entries_since(client: TestClient, seq: int, actor: str) -> list[tuple[str, dict[str, Any]]]:
    import json

    from sqlalchemy import select

    from facetrace.store.service_models import AuditEntry

    state: Any = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        rows = s.execute(
            select(AuditEntry).where(AuditEntry.seq > seq, AuditEntry.actor == actor)
        ).scalars()
        return [(e.action, json.loads(e.detail)) for e in rows]


def _last_seq(client: TestClient) -> int:
    from sqlalchemy import func, select

    from facetrace.store.service_models import AuditEntry

    state: Any = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        return int(s.execute(select(func.max(AuditEntry.seq))).scalar_one())


def test_a_results_page_is_one_entry_covering_its_images(gallery: dict[str, Any]) -> None:
    """Issue 11 item 11: viewing results, then the crops the page shows, writes one
    entry listing the probe and the reference photos, not one per crop; a probe photo
    shown outside such a page is audited on its own."""
    client: TestClient = gallery["client"]
    made = []
    for name in ("Laura_Bush", "Hugo_Chavez"):
        resp = client.post(
            "/api/v1/search",
            headers=gallery["inv"],
            data={"case_id": str(gallery["case"])},
            files={"image": ("p.jpg", _photo(gallery["faces"], name, 3), "image/jpeg")},
        )
        assert resp.status_code == 201, resp.text
        made.append(resp.json())
    first, second = made
    before = _last_seq(client)
    page = client.get(f"/searches/{first['id']}", headers=gallery["inv"])
    assert page.status_code == 200
    shown = {int(p) for p in re.findall(r"/photos/(\d+)/face\.jpg", page.text)}
    assert shown == {c["photo_id"] for c in first["candidates"]} and len(shown) >= 4
    for p in sorted(shown):
        assert client.get(f"/photos/{p}/face.jpg", headers=gallery["inv"]).status_code == 200
    probe_face = f"/probes/{first['probe_id']}/faces/{first['face_index']}.jpg"
    assert client.get(probe_face, headers=gallery["inv"]).status_code == 200
    entries = _entries_since(client, before, "inv")
    assert [a for a, _ in entries] == ["view_results"], entries
    assert set(entries[0][1]["photos"]) == shown
    assert entries[0][1]["probes"] == [first["probe_id"]]
    # the other search's probe photo, not on that page: audited by itself
    before = _last_seq(client)
    other = f"/probes/{second['probe_id']}/photo.jpg"
    assert client.get(other, headers=gallery["inv"]).status_code == 200
    entries = _entries_since(client, before, "inv")
    assert [(a, d["probes"], d["view"]) for a, d in entries] == [
        ("view_probe", [second["probe_id"]], "photo")
    ]
    # a reference crop by someone who saw no page: one entry of its own
    before = _last_seq(client)
    crop = f"/photos/{min(shown)}/face.jpg"
    assert client.get(crop, headers=gallery["admin"]).status_code == 200
    assert [a for a, _ in _entries_since(client, before, "admin")] == ["view_photo"]
    # the probe page: one entry, its images covered
    before = _last_seq(client)
    assert client.get(f"/probes/{second['probe_id']}", headers=gallery["inv"]).status_code == 200
    assert client.get(other, headers=gallery["inv"]).status_code == 200
    entries = _entries_since(client, before, "inv")
    assert [(a, d["view"]) for a, d in entries] == [("view_probe", "probe page")]
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    from facetrace.service.audit import verify

    with state.sessions() as s:
        assert verify(s).ok


def test_probe_upload_takes_a_detector(gallery: dict[str, Any]) -> None:
    client: TestClient = gallery["client"]
    selfie = gallery["faces"] / "webphotos13" / "multi_face" / "selfie-many-people.jpg"
    files = {"image": ("selfie.jpg", selfie.read_bytes(), "image/jpeg")}
    url = f"/api/v1/cases/{gallery['case']}/probes"
    counts = {}
    for detector in ("hog", "cnn"):
        resp = client.post(url, headers=gallery["inv"], data={"detector": detector}, files=files)
        assert resp.status_code == 201, resp.text
        counts[detector] = len(resp.json()["faces"])
    assert counts["cnn"] > counts["hog"] >= 2
    bad = client.post(url, headers=gallery["inv"], data={"detector": "mtcnn"}, files=files)
    assert bad.status_code == 422 and "detector" in bad.text
    resp = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"]), "face": "0", "detector": "hog"},
        files=files,
    )
    assert resp.status_code == 201, resp.text


def test_reviews_through_the_api_are_blind_versioned_and_not_the_searchers(
    gallery: dict[str, Any],
) -> None:
    """Issue 11 item 13 through the API: a second reviewer sees no other conclusion until
    recording theirs; a change is a new version with its history; the searcher may not
    review their own search."""
    client: TestClient = gallery["client"]
    keys = {
        n: add_user(client, n, roles, "Dept A")
        for n, roles in (
            ("api-rev1", {Role.REVIEWER}),
            ("api-rev2", {Role.REVIEWER}),
            ("api-both", {Role.INVESTIGATOR, Role.REVIEWER}),
        )
    }
    h = {n: {"Authorization": f"Bearer {k}"} for n, k in keys.items()}
    case = client.post(
        "/api/v1/cases",
        headers=h["api-both"],
        json={"number": "R-1", "purpose": "trace_missing", "legal_basis": "Order 4"},
    ).json()
    found = client.post(
        "/api/v1/search",
        headers=h["api-both"],
        data={"case_id": str(case["id"])},
        files={"image": ("p.jpg", _photo(gallery["faces"], "Laura_Bush", 3), "image/jpeg")},
    ).json()
    top = found["candidates"][0]["id"]
    url = f"/api/v1/searches/{found['id']}/reviews"
    body = {"conclusion": "potential_candidate", "candidate_id": top, "note": ""}
    own = client.post(url, headers=h["api-both"], json=body)
    assert own.status_code == 409 and "you ran this search" in own.json()["detail"]
    first = client.post(url, headers=h["api-rev1"], json={"conclusion": "inconclusive"})
    assert first.status_code == 201 and first.json()["version"] == 1
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=h["api-rev2"]).json()
    assert seen["reviews"] == [] and seen["hidden_reviews"] == 1, "blind until recorded"
    assert client.post(url, headers=h["api-rev2"], json=body).status_code == 201
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=h["api-rev2"]).json()
    assert seen["hidden_reviews"] == 0 and len(seen["reviews"]) == 2
    changed = client.post(url, headers=h["api-rev1"], json=body)
    assert changed.status_code == 201 and changed.json()["version"] == 2
    seen = client.get(f"/api/v1/cases/{case['id']}", headers=h["api-rev2"]).json()
    mine = [r for r in seen["reviews"] if r["reviewer"] == "api-rev1"]
    assert len(mine) == 1 and mine[0]["version"] == 2
    assert [v["conclusion"] for v in mine[0]["history"]] == ["inconclusive"]


def test_a_search_reaches_the_index_through_the_service_and_the_gallery_only(
    gallery: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """DEVELOPERS.md's four files: the route hands the request to ``service/searches.py``,
    which calls ``gallery/directory.py``, which calls the index; no module of ours sits
    between them (there was a port, ``service/gallery_port.py``)."""
    client: TestClient = gallery["client"]
    stacks = index_stacks(client, monkeypatch)
    one = client.post(
        "/api/v1/search",
        headers=gallery["inv"],
        data={"case_id": str(gallery["case"]), "force": "true"},
        files={"image": ("p.jpg", _photo(gallery["faces"], "Laura_Bush", 2), "image/jpeg")},
    )
    assert one.status_code == 201, one.text
    again = client.post(
        f"/api/v1/probes/{one.json()['probe_id']}/search",
        headers=gallery["inv"],
        json={"face": 0, "force": True},
    )
    assert again.status_code == 201, again.text
    # the one-call route is async and hands over to a worker thread, so the stack starts
    # at the service; the stored-probe route runs on the worker thread itself
    assert stacks == [
        ["gallery/directory.py", "service/searches.py"],
        ["api/routes/probes.py", "gallery/directory.py", "service/searches.py"],
    ]

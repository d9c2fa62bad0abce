"""Department isolation of the gallery (issue 11, items 1-3): the authorization walk with
two departments over every gallery read of the API and the web pages, subjects that
belong to one collection, case numbers per department, and the audit of views and
refusals.

The gallery is a copy of the small LFW gallery ("lfw", shared with every department)
plus a collection "registry-b" that Dept B holds, imported from a folder whose subject
folder has the same name as a subject of "lfw" (``Al_Pacino``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.service.accounts import Role, find_department
from facetrace.store.models import Collection, Photo, Subject
from facetrace.store.service_models import AuditEntry
from tests.api.conftest import add_user, make_client

SHARED_NAME = "Al_Pacino"  # a subject folder of both collections


@dataclass
class World:
    client: TestClient
    keys: dict[str, str]
    ids: dict[str, int]  # the objects' ids, by name


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def world(
    built_gallery: Path, probe_of: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    data = tmp_path_factory.mktemp("iso") / "data"
    shutil.copytree(built_gallery, data)
    folder = tmp_path_factory.mktemp("registry")
    (folder / SHARED_NAME).mkdir()
    shutil.copy(probe_of[SHARED_NAME], folder / SHARED_NAME / "registry.jpg")
    with Gallery.open(data) as g:
        summary = ingest(g, scan_folder(folder, collection="registry-b", legal_basis="court order"))
        assert summary.photos_added == 1, summary.skipped
    with make_client(data) as client:
        users = {
            "inv-a": ({Role.INVESTIGATOR}, "Dept A"),
            "rev-a": ({Role.REVIEWER}, "Dept A"),
            "admin-a": ({Role.ADMIN}, "Dept A"),
            "inv-b": ({Role.INVESTIGATOR}, "Dept B"),
            "rev-b": ({Role.REVIEWER}, "Dept B"),
            "admin-b": ({Role.ADMIN}, "Dept B"),
            "root": ({Role.ADMIN}, None),
        }
        keys = {n: add_user(client, n, roles, dept) for n, (roles, dept) in users.items()}
        state: Any = client.app.state.service  # type: ignore[attr-defined]
        with state.sessions.begin() as s:
            dept_b = find_department(s, name="Dept B", create=False).id
            s.execute(
                update(Collection)
                .where(Collection.name == "registry-b")
                .values(department_id=dept_b)
            )
            ids = {}
            for coll in ("lfw", "registry-b"):
                c = s.execute(select(Collection).where(Collection.name == coll)).scalar_one()
                photo = s.execute(
                    select(Photo)
                    .join(Subject, Subject.id == Photo.subject_id)
                    .where(Photo.collection_id == c.id, Subject.external_id == SHARED_NAME)
                    .order_by(Photo.id)
                ).scalars()
                first = next(iter(photo))
                ids[f"{coll}:collection"] = c.id
                ids[f"{coll}:subject"] = int(first.subject_id or 0)
                ids[f"{coll}:photo"] = first.id
        yield World(client, keys, ids)


def _reads(ids: dict[str, int], coll: str) -> list[str]:
    """Every gallery read of the API and the web pages, on one collection's objects."""
    c, s, p = ids[f"{coll}:collection"], ids[f"{coll}:subject"], ids[f"{coll}:photo"]
    return [
        f"/api/v1/collections/{c}/subjects",
        f"/api/v1/subjects/{s}",
        f"/collections/{c}",
        f"/subjects/{s}",
        f"/photos/{p}/face.jpg",
        f"/photos/{p}/photo.jpg",
        f"/photos/{p}/aligned.jpg",
        f"/photos/{p}/view",
        f"/photos/{p}/subject",
    ]


BROWSERS = ["inv-a", "rev-a", "admin-a", "inv-b", "rev-b", "admin-b", "root"]
READS_B = {"inv-b", "rev-b", "admin-b", "root"}  # who may read Dept B's registry


@pytest.mark.parametrize("user", BROWSERS)
def test_gallery_reads_are_scoped_to_the_department(world: World, user: str) -> None:
    """The walk: each user, each read, on the shared collection and on Dept B's."""
    h = _headers(world.keys[user])
    for path in _reads(world.ids, "lfw"):
        resp = world.client.get(path, headers=h)
        assert resp.status_code in (200, 303), (user, path, resp.status_code)
    for path in _reads(world.ids, "registry-b"):
        resp = world.client.get(path, headers=h)
        if user in READS_B:
            assert resp.status_code in (200, 303), (user, path, resp.status_code)
        else:  # another department's: as if it did not exist
            assert resp.status_code == 404, (user, path, resp.status_code)
            assert "court order" not in resp.text and "registry" not in resp.text
    listed = {c["name"] for c in world.client.get("/api/v1/collections", headers=h).json()}
    assert listed == ({"lfw", "registry-b"} if user in READS_B else {"lfw"})
    page = world.client.get("/collections", headers=h)
    assert page.status_code == 200
    assert ("registry-b" in page.text) == (user in READS_B)


def test_an_admin_of_another_department_cannot_delete(world: World) -> None:
    h = _headers(world.keys["admin-a"])
    c, s, p = (world.ids[f"registry-b:{k}"] for k in ("collection", "subject", "photo"))
    for path in (f"/api/v1/collections/{c}", f"/api/v1/subjects/{s}", f"/api/v1/photos/{p}"):
        assert world.client.delete(path, headers=h).status_code == 404, path
    resp = world.client.get(f"/api/v1/subjects/{s}", headers=_headers(world.keys["inv-b"]))
    assert resp.status_code == 200 and len(resp.json()["photos"]) == 1


def test_the_same_external_id_in_two_collections_is_two_subjects(world: World) -> None:
    """Importing folder ``Al_Pacino/`` into Dept B's registry made a subject of the
    registry's own; the shared subject of that name keeps only its own photos."""
    assert world.ids["lfw:subject"] != world.ids["registry-b:subject"]
    shared = world.client.get(
        f"/api/v1/subjects/{world.ids['lfw:subject']}", headers=_headers(world.keys["inv-b"])
    ).json()
    assert {p["provenance"]["collection"] for p in shared["photos"]} == {"lfw"}
    assert len(shared["photos"]) == 2


def test_deleting_a_collection_leaves_the_others_subjects(
    built_gallery: Path, probe_of: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(built_gallery, data)
    folder = tmp_path / "registry"
    (folder / SHARED_NAME).mkdir(parents=True)
    shutil.copy(probe_of[SHARED_NAME], folder / SHARED_NAME / "registry.jpg")
    with Gallery.open(data) as g:
        ingest(g, scan_folder(folder, collection="registry", legal_basis="court order"))
        before = g.status()["subjects"]
        with pytest.raises(Exception, match="several collections"):
            g.delete_subject(SHARED_NAME)  # ambiguous: which collection's?
        assert g.delete_collection("registry") == 1
        assert g.status()["subjects"] == before - 1
        assert len(g.subject_vectors(SHARED_NAME)) == 2  # the shared subject is whole
        assert g.delete_subject(SHARED_NAME, "lfw") == 2


def _entries(world: World, actor: str, action: str) -> list[AuditEntry]:
    state: Any = world.client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        return list(
            s.execute(
                select(AuditEntry).where(AuditEntry.actor == actor, AuditEntry.action == action)
            ).scalars()
        )


def test_views_and_refusals_are_audited(world: World) -> None:
    p = world.ids["registry-b:photo"]
    s = world.ids["registry-b:subject"]
    c = world.ids["registry-b:collection"]
    a, b = _headers(world.keys["rev-a"]), _headers(world.keys["rev-b"])
    assert world.client.get(f"/photos/{p}/face.jpg", headers=a).status_code == 404
    assert world.client.get(f"/api/v1/subjects/{s}", headers=a).status_code == 404
    refused = {
        (e.target, json.loads(e.detail)["status"]) for e in _entries(world, "rev-a", "refused")
    }
    assert {(f"photo:{p}", 404), (f"subject:{s}", 404)} <= refused
    assert world.client.get(f"/photos/{p}/face.jpg", headers=b).status_code == 200
    assert world.client.get(f"/subjects/{s}", headers=b).status_code == 200
    assert world.client.get(f"/api/v1/collections/{c}/subjects", headers=b).status_code == 200
    assert f"photo:{p}" in {e.target for e in _entries(world, "rev-b", "view_photo")}
    assert f"subject:{s}" in {e.target for e in _entries(world, "rev-b", "view_subject")}
    assert f"collection:{c}" in {e.target for e in _entries(world, "rev-b", "view_collection")}
    # a 403 (a reviewer may not create a collection) and a 422 are audited too
    body = {"name": "x", "legal_basis": "lb", "retention": "r"}
    assert world.client.post("/api/v1/collections", json=body, headers=b).status_code == 403
    bad = world.client.post("/api/v1/collections", json={"name": 5}, headers=b)
    assert bad.status_code == 422
    statuses = [json.loads(e.detail).get("status") for e in _entries(world, "rev-b", "refused")]
    assert 403 in statuses and 422 in statuses
    with world.client.app.state.service.sessions() as sess:  # type: ignore[attr-defined]
        from facetrace.service.audit import verify

        assert verify(sess).ok


def test_case_numbers_are_per_department_and_never_revealed(world: World) -> None:
    body = {"number": "2026/0042", "purpose": "trace_missing", "legal_basis": "lb"}
    a, b = _headers(world.keys["inv-a"]), _headers(world.keys["inv-b"])
    assert world.client.post("/api/v1/cases", json=body, headers=a).status_code == 201
    resp = world.client.post("/api/v1/cases", json=body, headers=b)
    assert resp.status_code == 201, resp.text  # Dept B's own case of that number
    again = world.client.post("/api/v1/cases", json=body, headers=b)
    assert again.status_code == 409 and "your department" in again.json()["detail"]
    theirs = world.client.get(f"/api/v1/cases/{resp.json()['id']}", headers=a)
    assert theirs.status_code == 404

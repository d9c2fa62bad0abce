"""Import jobs through the API, on a real app, gallery and SQLite: a job is a row in SQL
with its progress and an audit entry per committed batch; its upload folder is deleted
when it ends (whatever the outcome, refused uploads included) while the stored photos
are kept in the photo store; quotas per job and per department answer 413; a job the
service stopped is interrupted, resumes to the faces of a clean run, and can be
cancelled; a running job can be cancelled after a batch."""

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
from sqlalchemy import func, select

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from facetrace.store.models import FaceRow, Photo
from facetrace.store.service_models import AuditEntry, ImportJobRow
from tests.api.conftest import add_user

PEOPLE = ("Tom_Ridge", "Gray_Davis", "Hugo_Chavez")


def _client(data: Path, **service: Any) -> TestClient:
    cfg = ServiceConfig(data=data, workers=1)
    cfg.service.import_batch = 8
    for k, v in service.items():
        setattr(cfg.service, k, v)
    return TestClient(create_app(cfg), follow_redirects=False)


def _zip(faces_dir: Path, people: tuple[str, ...], per_person: int, extra: int = 0) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in people:
            folder = faces_dir / "lfw" / "images" / name
            for src in sorted(folder.iterdir())[:per_person]:
                zf.write(src, f"{name}/{src.name}")
        for i in range(extra):
            zf.writestr(f"Nobody/junk{i}.jpg", b"not a photo")
    return buf.getvalue()


def _lfw_zip(faces_dir: Path, n_photos: int) -> bytes:
    """A zip of the first ``n_photos`` LFW photos, in their per-person folders."""
    buf = io.BytesIO()
    images = faces_dir / "lfw" / "images"
    files = [src for person in sorted(images.iterdir()) for src in sorted(person.iterdir())]
    with zipfile.ZipFile(buf, "w") as zf:
        for src in files[:n_photos]:
            zf.write(src, f"{src.parent.name}/{src.name}")
    return buf.getvalue()


def _state(client: TestClient) -> Any:
    return client.app.state.service  # type: ignore[attr-defined]


def _admin(client: TestClient) -> dict[str, str]:
    key = add_user(client, f"admin{time.monotonic_ns()}", {Role.ADMIN}, None)
    return {"Authorization": f"Bearer {key}"}


def _collection(client: TestClient, h: dict[str, str], name: str = "register") -> int:
    resp = client.post(
        "/api/v1/collections",
        headers=h,
        json={"name": name, "legal_basis": "Act 12", "retention": "10 years"},
    )
    assert resp.status_code in (200, 201), resp.text
    return int(resp.json()["id"])


def _upload(
    client: TestClient, h: dict[str, str], coll: int, data: bytes, name: str = "g.zip"
) -> Any:
    return client.post(
        f"/api/v1/collections/{coll}/imports",
        headers=h,
        files={"file": ("g.zip", data, "application/zip")},
    )


def _wait(client: TestClient, h: dict[str, str], job: str, until: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while True:
        body: dict[str, Any] = client.get(f"/api/v1/imports/{job}", headers=h).json()
        if until(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _ended(body: dict[str, Any]) -> bool:
    return body["state"] in ("done", "failed", "cancelled", "interrupted")


def _audit(client: TestClient, job: str) -> list[tuple[str, dict[str, Any]]]:
    with _state(client).sessions() as s:
        rows = s.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        out = [(r.action, json.loads(r.detail)) for r in rows]
    return [(a, d) for a, d in out if d.get("job") == job]


def _counts(client: TestClient) -> tuple[int, int]:
    with _state(client).sessions() as s:
        photos = s.scalar(select(func.count(Photo.id)))
        faces = s.scalar(select(func.count(FaceRow.id)))
    return int(photos or 0), int(faces or 0)


def _upload_dirs(data: Path) -> list[Path]:
    root = data / "imports"
    return sorted(p for p in root.iterdir()) if root.is_dir() else []


@pytest.fixture()
def data(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_a_job_is_kept_in_sql_audited_per_batch_and_its_upload_deleted(
    data: Path, faces_dir: Path
) -> None:
    with _client(data) as client:
        h = _admin(client)
        coll = _collection(client, h)
        resp = _upload(client, h, coll, _zip(faces_dir, PEOPLE, 2, extra=1))
        assert resp.status_code == 202, resp.text
        job = resp.json()["id"]
        body = _wait(client, h, job, _ended)
        assert body["state"] == "done", body
        assert body["summary"]["photos_added"] == 6 and body["summary"]["skipped"] == 1
        assert body["summary"]["skipped_files"][0][0] == "Nobody/junk0.jpg"
        assert body["done"] == body["total"] == 7 and body["batches"] == 1  # 7 photos, 8 a batch
        with _state(client).sessions() as s:
            row = s.get(ImportJobRow, job)
            assert row is not None and row.state == "done" and row.photos_added == 6
            paths = [Path(p) for p in s.scalars(select(Photo.path)).all()]
        # the upload is gone; the stored photos live on in the photo store
        assert _upload_dirs(data) == []
        assert len(paths) == 6 and all(
            p.is_file() and (data / "photos") in p.parents for p in paths
        )
        entries = _audit(client, job)
        assert [a for a, _ in entries] == ["import_queued", "import_batch", "import"]
        batch = entries[1][1]
        assert batch["photos_added"] == 6 and batch["skipped"] == 1 and batch["batch"] == 1
        assert entries[2][1]["state"] == "done"
        listed = client.get(f"/api/v1/collections/{coll}/imports", headers=h).json()
        assert [j["id"] for j in listed] == [job]
        # an ended job cannot be cancelled or resumed
        assert client.post(f"/api/v1/imports/{job}/cancel", headers=h).status_code == 409
        assert client.post(f"/api/v1/imports/{job}/resume", headers=h).status_code == 409


def _bomb(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("A/zeros.jpg", b"\0" * size)
    return buf.getvalue()


def test_refused_uploads_leave_nothing_and_quotas_answer_413(data: Path, faces_dir: Path) -> None:
    with _client(data, max_import_mb=2.0, max_import_files=5, department_import_mb=0.02) as client:
        h = _admin(client)
        coll = _collection(client, h)
        cases = [
            (_bomb(3 * 1024 * 1024), 413, "unpacks to"),  # a zip of zeros past the job's bytes
            (_zip(faces_dir, PEOPLE, 2), 413, "holds 6 files"),  # past the job's files
            (b"PK not a zip at all", 422, "not a valid zip"),
            (_zip(faces_dir, (), 0), 422, "holds no files"),
            (_zip(faces_dir, PEOPLE, 1), 413, "department"),  # past the department's
        ]
        for payload, status, words in cases:
            resp = _upload(client, h, coll, payload)
            assert resp.status_code == status, resp.text
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert words in resp.json()["detail"], resp.json()
            assert _upload_dirs(data) == [], words
        with _state(client).sessions() as s:
            assert s.scalar(select(func.count(ImportJobRow.id))) == 0
        assert _counts(client) == (0, 0)


@pytest.mark.slow
def test_a_stopped_service_leaves_the_job_interrupted_and_it_resumes(
    data: Path, faces_dir: Path, tmp_path: Path
) -> None:
    payload = _lfw_zip(faces_dir, 40)
    with _client(tmp_path / "clean") as client:  # the reference: one clean run
        h = _admin(client)
        job = _upload(client, h, _collection(client, h), payload).json()["id"]
        assert _wait(client, h, job, _ended)["state"] == "done"
        clean = _counts(client)
    with _client(data) as client:
        h = _admin(client)
        coll = _collection(client, h)
        job = _upload(client, h, coll, payload).json()["id"]
        _wait(client, h, job, lambda b: b["batches"] >= 1 or _ended(b))
    # the app stopped with the job running: it stopped after a batch, resumable
    with _client(data) as client:
        h = _admin(client)
        body = client.get(f"/api/v1/imports/{job}", headers=h).json()
        assert body["state"] == "interrupted", body
        assert 0 < body["summary"]["photos_added"] < 40
        assert _upload_dirs(data) == [data / "imports" / job]  # kept for the resume
        resp = client.post(f"/api/v1/imports/{job}/resume", headers=h)
        assert resp.status_code == 202, resp.text
        body = _wait(client, h, job, lambda b: b["state"] in ("done", "failed"))
        assert body["state"] == "done", body
        assert _counts(client) == clean
        assert body["summary"]["photos_added"] == clean[0]
        entries = _audit(client, job)
        batches = [d for a, d in entries if a == "import_batch"]
        assert sum(d["photos_added"] for d in batches) == clean[0]
        assert {d["run"] for d in batches} == {1, 2}
        assert "import_resume" in [a for a, _ in entries]
        assert _upload_dirs(data) == []


def test_cancel_a_running_job_after_a_batch_and_a_queued_one_at_once(
    data: Path, faces_dir: Path
) -> None:
    with _client(data) as client:
        h = _admin(client)
        coll = _collection(client, h)
        first = _upload(client, h, coll, _lfw_zip(faces_dir, 40)).json()["id"]
        second = _upload(client, h, coll, _zip(faces_dir, PEOPLE, 1)).json()["id"]
        _wait(client, h, first, lambda b: b["batches"] >= 1 or _ended(b))
        # the second waits behind the first: cancelled at once, its upload deleted
        resp = client.post(f"/api/v1/imports/{second}/cancel", headers=h)
        assert resp.status_code == 202 and resp.json()["state"] == "cancelled", resp.text
        assert data / "imports" / second not in _upload_dirs(data)
        resp = client.post(f"/api/v1/imports/{first}/cancel", headers=h)
        assert resp.status_code == 202 and resp.json()["cancel_requested"], resp.text
        body = _wait(client, h, first, _ended)
        assert body["state"] == "cancelled", body
        added = body["summary"]["photos_added"]
        assert 0 < added < 40 and _counts(client)[0] == added
        assert _upload_dirs(data) == []
        assert "import_cancel" in [a for a, _ in _audit(client, first)]
        second_body = client.get(f"/api/v1/imports/{second}", headers=h).json()
        assert second_body["state"] == "cancelled" and second_body["summary"]["photos_added"] == 0

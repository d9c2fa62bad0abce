"""``kill -9`` of a real ``facetrace serve`` during an import through the API (issue 10,
"what I will check"): after a restart the job is shown as interrupted, its resume ends
with exactly the faces of a clean run, and every batch committed before the kill (and
after) is in the audit log, whose chain still verifies."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from facetrace.service.accounts import Role
from facetrace.store.db import Database, sqlite_url
from facetrace.store.models import FaceRow, Photo
from facetrace.store.service_models import AuditEntry, ImportJobRow
from tests.live import facetrace_env, make_user, serve_process

pytestmark = pytest.mark.slow  # two server starts and two imports: about a minute

N_PHOTOS = 48
ENV = {"FACETRACE_WORKERS": "1", "FACETRACE_SERVICE__IMPORT_BATCH": "8"}


def _lfw_zip(faces_dir: Path, n_photos: int) -> bytes:
    buf = io.BytesIO()
    images = faces_dir / "lfw" / "images"
    files = [src for person in sorted(images.iterdir()) for src in sorted(person.iterdir())]
    with zipfile.ZipFile(buf, "w") as zf:
        for src in files[:n_photos]:
            zf.write(src, f"{src.parent.name}/{src.name}")
    return buf.getvalue()


def _faces(data: Path) -> set[tuple[Any, ...]]:
    """Every stored face: its photo, number, box and whether it is the subject's."""
    database = Database.open(sqlite_url(data))
    try:
        with database.reads() as s:
            rows = s.execute(
                select(Photo.sha256, FaceRow.face_index, FaceRow.x1, FaceRow.y1, FaceRow.x2,
                       FaceRow.y2, FaceRow.is_subject).join(Photo, FaceRow.photo_id == Photo.id)
            ).all()  # fmt: skip
        return {tuple(r) for r in rows}
    finally:
        database.dispose()


def _job_and_batches(data: Path, job: str) -> tuple[ImportJobRow, list[dict[str, Any]]]:
    """The job's row and the details of its ``import_batch`` audit entries, in order."""
    database = Database.open(sqlite_url(data))
    try:
        with database.reads() as s:
            row = s.get(ImportJobRow, job)
            assert row is not None
            s.expunge(row)
            entries = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "import_batch")
                .order_by(AuditEntry.seq)
            ).all()
            details = [json.loads(e.detail) for e in entries]
        return row, [d for d in details if d.get("job") == job]
    finally:
        database.dispose()


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )

    def start_import(self, payload: bytes) -> str:
        resp = self.client.post(
            "/api/v1/collections",
            json={"name": "register", "legal_basis": "Act 12", "retention": "10 years"},
        )
        assert resp.status_code in (200, 201), resp.text
        resp = self.client.post(
            f"/api/v1/collections/{resp.json()['id']}/imports",
            files={"file": ("g.zip", payload, "application/zip")},
        )
        assert resp.status_code == 202, resp.text
        return str(resp.json()["id"])

    def job(self, job: str) -> dict[str, Any]:
        resp = self.client.get(f"/api/v1/imports/{job}")
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        return body

    def wait(self, job: str, until: Any, poll: float = 0.2) -> dict[str, Any]:
        deadline = time.monotonic() + 600
        while True:
            body = self.job(job)
            if until(body) or time.monotonic() > deadline:
                return body
            time.sleep(poll)


def _ended(body: dict[str, Any]) -> bool:
    return body["state"] in ("done", "failed", "cancelled", "interrupted")


def test_kill_9_during_an_api_import(tmp_path: Path, faces_dir: Path) -> None:
    payload = _lfw_zip(faces_dir, N_PHOTOS)
    env = facetrace_env(**ENV)

    clean_dir = tmp_path / "clean"
    key = make_user(clean_dir, "ada", {Role.ADMIN}, None)
    with serve_process(clean_dir, env=env) as server:
        api = Api(server.base, key)
        job = api.start_import(payload)
        assert api.wait(job, _ended)["state"] == "done"
    clean = _faces(clean_dir)
    assert clean

    data = tmp_path / "data"
    key = make_user(data, "ada", {Role.ADMIN}, None)
    with serve_process(data, env=env) as server:
        api = Api(server.base, key)
        job = api.start_import(payload)
        running = api.wait(job, lambda b: b["batches"] >= 1 or _ended(b), poll=0.05)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=60)
    assert running["state"] == "running", running  # killed mid-import, not after it

    row, batches = _job_and_batches(data, job)
    committed = _faces(data)
    assert 0 < len(committed) < len(clean)
    assert committed <= clean
    # every committed batch has its audit entry: they commit in one transaction
    assert len(batches) == row.batches >= 1
    assert sum(b["photos_added"] for b in batches) == row.photos_added
    assert {b["run"] for b in batches} == {1}

    with serve_process(data, env=env) as server:
        api = Api(server.base, key)
        body = api.job(job)
        assert body["state"] == "interrupted", body
        resp = api.client.post(f"/api/v1/imports/{job}/resume")
        assert resp.status_code == 202, resp.text
        body = api.wait(job, lambda b: b["state"] in ("done", "failed"))
        assert body["state"] == "done", body
    assert _faces(data) == clean

    row, after = _job_and_batches(data, job)
    assert after[: len(batches)] == batches  # the first run's entries are all kept
    assert {b["run"] for b in after} == {1, 2}
    clean_photos = len({f[0] for f in clean})
    assert sum(b["photos_added"] for b in after) == clean_photos == row.photos_added
    assert not (data / "imports" / job).exists()  # the upload folder went with the job
    verify = subprocess.run(
        [sys.executable, "-m", "facetrace.cli", "--data", str(data), "audit", "verify"],
        env=facetrace_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    status = subprocess.run(
        [sys.executable, "-m", "facetrace.cli", "--data", str(data), "status", "--json"],
        env=facetrace_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    info = json.loads(status.stdout)
    assert info["indexed_faces"] == sum(1 for f in clean if f[-1])

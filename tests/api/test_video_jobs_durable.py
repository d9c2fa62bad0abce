"""Video jobs outlive the process that ran them (issue 13): on ``facetrace serve`` in a
process of its own, a finished job still answers with its probe after a restart, and a
job running when the server is killed (``kill -9``) answers as interrupted after the
restart, its upload deleted and nothing of the video stored."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx

from facetrace.service.accounts import Role
from tests.live import make_user, serve_process
from tests.video.synthetic import GREY, Actor, Shot, lfw_photo, two_people_cut_return, write_video


def _get(base: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    resp = httpx.get(base + path, headers=headers, timeout=30)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def _until(base: str, path: str, headers: dict[str, str], done: Any) -> dict[str, Any]:
    """Poll a job until ``done(body)`` (the deadline only keeps a broken run from hanging)."""
    deadline = time.monotonic() + 600
    while True:
        body = _get(base, path, headers)
        if done(body) or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def _upload(base: str, case: int, headers: dict[str, str], path: Path) -> dict[str, Any]:
    resp = httpx.post(
        f"{base}/api/v1/cases/{case}/videos",
        headers=headers,
        files={"video": (path.name, path.read_bytes(), "video/mp4")},
        timeout=120,
    )
    assert resp.status_code == 202, resp.text
    body: dict[str, Any] = resp.json()
    return body


def test_jobs_survive_a_restart_and_a_kill_interrupts(tmp_path: Path, faces_dir: Path) -> None:
    data = tmp_path / "data"
    h = {"Authorization": f"Bearer {make_user(data, 'inv', {Role.INVESTIGATOR}, 'Dept A')}"}
    short, long = tmp_path / "short.mp4", tmp_path / "long.mp4"
    write_video(short, two_people_cut_return(faces_dir), width=320, height=180)
    walker = Actor(
        "Tony_Blair", lfw_photo(faces_dir, "Tony_Blair", 1), 0, 120, (0.3, 0.5), (0.7, 0.5)
    )
    write_video(long, [Shot(120.0, GREY, (walker,))], width=320, height=180)
    uploads = data / "video-uploads"

    with serve_process(data) as server:
        case = httpx.post(
            server.base + "/api/v1/cases",
            headers=h,
            json={"number": "K-9", "purpose": "trace_missing", "legal_basis": "Order 9"},
            timeout=30,
        ).json()["id"]
        first = _upload(server.base, case, h, short)
        ended = lambda b: b["state"] not in ("queued", "running")  # noqa: E731
        finished = _until(server.base, f"/api/v1/video-jobs/{first['id']}", h, ended)
        assert finished["state"] == "done" and finished["persons"] == 2, finished
        second = _upload(server.base, case, h, long)
        url = f"/api/v1/video-jobs/{second['id']}"
        running = _until(server.base, url, h, lambda b: b["video_s"] > 0)
        assert running["state"] == "running", running
        assert [p.name for p in uploads.iterdir()], "the upload waits in the work folder"
        server.proc.kill()  # SIGKILL: no shutdown code runs
        server.proc.wait()

    with serve_process(data) as server:
        after = _get(server.base, url, h)
        assert after["state"] == "interrupted", after
        assert "service stopped" in after["error"] and after["probe"] is None
        assert 0 < after["video_s"] < after["duration_s"]  # the progress it had written
        again = _get(server.base, f"/api/v1/video-jobs/{first['id']}", h)
        assert again["state"] == "done" and again["probe"]["kind"] == "video"
        assert len(again["probe"]["faces"]) == 2
        assert list(uploads.iterdir()) == []  # the interrupted upload is deleted
        # an interrupted job cannot be cancelled into anything else
        resp = httpx.delete(server.base + url, headers=h, timeout=30)
        assert resp.status_code == 200 and resp.json()["state"] == "interrupted"
    # only the finished video is a probe of the case
    with sqlite3.connect(data / "facetrace.db") as db:
        assert db.execute("SELECT count(*) FROM probe WHERE case_id = ?", (case,)).fetchone() == (
            1,
        )
        states = dict(db.execute("SELECT id, state FROM video_job").fetchall())
    assert states == {first["id"]: "done", second["id"]: "interrupted"}

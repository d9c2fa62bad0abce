"""One owner per data directory (issue 10 item 4): while a real ``facetrace serve`` holds a
data directory, CLI commands that write to it are refused (exit 3, one line saying what
to do) and change nothing; commands that read open the gallery read-only and never save
the index; CLI ingest, delete and search are in the audit log with the OS user, and a
search of a service's gallery needs a case, a purpose and a legal basis. A lock left by
a killed process does not block."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery.owner import OWNER_FILE, OwnerLock, current_owner
from facetrace.service.accounts import Role
from facetrace.store.db import Database, sqlite_url
from facetrace.store.models import Photo, Subject
from facetrace.store.service_models import AuditEntry
from tests.galleries import DISTRACTORS, ENROLLED
from tests.live import facetrace_env, free_port, make_user, serve_command, serve_process

USER = getpass.getuser()
CASE = ["--case", "C-17", "--purpose", "trace_missing", "--legal-basis", "court order 4/26"]


def cli(data: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``facetrace --data DATA ARGS`` in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "facetrace.cli", "--data", str(data), *args],
        env=facetrace_env(COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def audit_rows(data: Path, *actions: str) -> list[dict[str, Any]]:
    database = Database.open(sqlite_url(data))
    try:
        with database.reads() as s:
            rows = s.scalars(
                select(AuditEntry).where(AuditEntry.action.in_(actions)).order_by(AuditEntry.seq)
            ).all()
            return [
                {
                    "actor": r.actor,
                    "action": r.action,
                    "target": r.target,
                    "detail": json.loads(r.detail),
                }
                for r in rows
            ]
    finally:
        database.dispose()


def counts(data: Path) -> tuple[int, int]:
    """(subjects, photos) in SQL."""
    database = Database.open(sqlite_url(data))
    try:
        with database.reads() as s:
            return (
                int(s.scalar(select(func.count(Subject.id))) or 0),
                int(s.scalar(select(func.count(Photo.id))) or 0),
            )
    finally:
        database.dispose()


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def new_photos(faces_dir: Path, root: Path) -> Path:
    """A folder of one subject not in the gallery."""
    name = "Aaron_Sorkin"
    (root / name).mkdir(parents=True)
    for p in sorted((faces_dir / "lfw" / "images" / name).glob("*.jpg"))[:2]:
        shutil.copy(p, root / name / p.name)
    return root


def test_the_service_owns_its_data_directory(
    gallery_dir: Path, probe_of: dict[str, Path], faces_dir: Path, tmp_path: Path
) -> None:
    photos = new_photos(faces_dir, tmp_path / "new")
    before = counts(gallery_dir)
    name = ENROLLED[0]
    with serve_process(gallery_dir) as server:
        owner = current_owner(gallery_dir)
        assert owner is not None and owner.is_service and owner.pid == server.proc.pid
        index = gallery_dir / "index.faiss"
        stamp = index.stat().st_mtime_ns, index.stat().st_size

        refused = cli(gallery_dir, "ingest", str(photos))
        assert refused.returncode == 3, refused.stderr
        line = one_line(refused.stderr)
        assert "owned by the running service" in line
        assert f"pid {server.proc.pid}" in line and f"port {server.port}" in line
        assert "through the service" in line and "stop the service" in line
        for args in (
            ["delete", "subject", name, "--yes"],
            ["index", "rebuild", "--kind", "flat"],
            ["duplicates", "different", "1", "2"],
        ):
            proc = cli(gallery_dir, *args)
            assert proc.returncode == 3, (args, proc.stderr)
            assert "owned by the running service" in one_line(proc.stderr)
        second = subprocess.run(
            serve_command(gallery_dir, free_port()),
            env=facetrace_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert second.returncode == 3, second.stderr
        assert "stop it before starting another service" in one_line(second.stderr)

        # reads work beside the service
        status = cli(gallery_dir, "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["subjects"] == len(ENROLLED) + len(DISTRACTORS)
        # a search of the service's gallery is made for a case, as on the web
        bare = cli(gallery_dir, "search", str(probe_of[name]), "--force")
        assert bare.returncode == 1
        assert "--case, --purpose, --legal-basis" in one_line(bare.stderr)
        found = cli(gallery_dir, "search", str(probe_of[name]), "--force", "--json", *CASE)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["faces"][0]["candidates"][0]["subject"]["id"] == name

        # nothing changed: SQL, and the index file the service saved
        assert counts(gallery_dir) == before
        assert (index.stat().st_mtime_ns, index.stat().st_size) == stamp
        with urllib.request.urlopen(f"{server.base}/healthz", timeout=30) as resp:
            assert resp.status == 200
    assert current_owner(gallery_dir) is None

    searches = [r for r in audit_rows(gallery_dir, "search") if r["detail"].get("via") == "cli"]
    assert len(searches) == 1  # the refused one ran nothing and recorded nothing
    assert searches[0]["actor"] == "system" and searches[0]["detail"]["os_user"] == USER
    assert searches[0]["target"].startswith("probe:")
    assert searches[0]["detail"]["case_number"] == "C-17"
    assert searches[0]["detail"]["purpose"] == "trace_missing"
    assert searches[0]["detail"]["legal_basis"] == "court order 4/26"
    assert searches[0]["detail"]["candidates"] >= 1
    assert audit_rows(gallery_dir, "import", "import_batch", "delete") == []

    # once the service has stopped, the same commands run, audited under the OS user
    done = cli(gallery_dir, "ingest", str(photos))
    assert done.returncode == 0, done.stderr
    assert counts(gallery_dir) == (before[0] + 1, before[1] + 2)
    gone = cli(gallery_dir, "delete", "subject", name, "--yes")
    assert gone.returncode == 0, gone.stderr
    ingests = audit_rows(gallery_dir, "import_batch", "import")
    assert [r["action"] for r in ingests][-1] == "import"
    assert {r["detail"]["os_user"] for r in ingests} == {USER}
    assert ingests[-1]["detail"]["photos_added"] == 2
    deletes = audit_rows(gallery_dir, "delete")
    assert len(deletes) == 1 and deletes[0]["detail"]["os_user"] == USER
    assert deletes[0]["target"] == f"subject:{name}"
    assert deletes[0]["detail"]["faces_removed"] >= 2


def test_a_killed_service_does_not_block(
    gallery_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    photos = new_photos(faces_dir, tmp_path / "new")
    with serve_process(gallery_dir) as server:
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=60)
    lock = gallery_dir / OWNER_FILE
    assert str(server.proc.pid) in lock.read_text()  # the file stays, its lock does not
    assert current_owner(gallery_dir) is None
    proc = cli(gallery_dir, "ingest", str(photos))
    assert proc.returncode == 0, proc.stderr


def test_the_service_will_not_start_beside_a_writing_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with OwnerLock(data, command="ingest"):
        proc = subprocess.run(
            serve_command(data, free_port()),
            env=facetrace_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert proc.returncode == 3, proc.stderr
    line = one_line(proc.stderr)
    assert "being changed by facetrace ingest" in line and f"pid {os.getpid()}" in line


runner = CliRunner()


def test_read_only_commands_never_save_the_index(
    gallery_dir: Path, probe_of: dict[str, Path]
) -> None:
    index = gallery_dir / "index.faiss"
    index.unlink()  # a reader rebuilds it in memory from SQL, and keeps it there
    res = runner.invoke(app, ["--data", str(gallery_dir), "status", "--json"])
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["indexed_faces"] > 0
    res = runner.invoke(
        app, ["--data", str(gallery_dir), "search", str(probe_of[ENROLLED[1]]), "--force"]
    )
    assert res.exit_code == 0, res.stderr
    assert ENROLLED[1] in res.stdout
    res = runner.invoke(app, ["--data", str(gallery_dir), "index", "status"])
    assert res.exit_code == 0, res.stderr
    assert not index.exists()


def test_writers_exclude_each_other_in_one_process(gallery_dir: Path) -> None:
    # flock belongs to an open file: a service and a command in one process (as in
    # tests) are two owners as well
    with OwnerLock(gallery_dir, command="serve", port=8123):
        res = runner.invoke(
            app, ["--data", str(gallery_dir), "delete", "subject", ENROLLED[0], "--yes"]
        )
        assert res.exit_code == 3
        assert "port 8123" in res.stderr
    res = runner.invoke(
        app, ["--data", str(gallery_dir), "delete", "subject", ENROLLED[0], "--yes"]
    )
    assert res.exit_code == 0, res.stderr


def test_a_stale_lock_file_does_not_block(gallery_dir: Path) -> None:
    (gallery_dir / OWNER_FILE).write_text(
        json.dumps({"pid": 999_999, "host": "elsewhere", "command": "serve", "port": 8000})
    )
    assert current_owner(gallery_dir) is None
    res = runner.invoke(app, ["--data", str(gallery_dir), "delete", "photo", "1", "--yes"])
    assert res.exit_code == 0, res.stderr


def test_search_grounds(gallery_dir: Path, probe_of: dict[str, Path]) -> None:
    probe = str(probe_of[ENROLLED[2]])
    # a gallery without accounts (CLI only): no case needed, the search is audited
    res = runner.invoke(app, ["--data", str(gallery_dir), "search", probe, "--force"])
    assert res.exit_code == 0, res.stderr
    (entry,) = audit_rows(gallery_dir, "search")
    assert entry["detail"]["via"] == "cli" and entry["detail"]["os_user"] == USER
    assert "case_number" not in entry["detail"]
    # once the service has accounts there, it needs the case, checked like the web's
    make_user(gallery_dir, "ines", {Role.INVESTIGATOR}, "Forensics")
    bad = [
        (["--case", "C-1"], "--purpose, --legal-basis"),
        (["--case", "C-1", "--purpose", "curiosity", "--legal-basis", "x"], "--purpose must be"),
        (["--case", "x" * 65, "--purpose", "trace_missing", "--legal-basis", "x"], "case number"),
    ]
    for extra, message in bad:
        res = runner.invoke(app, ["--data", str(gallery_dir), "search", probe, "--force", *extra])
        assert res.exit_code == 1 and message in res.stderr, (extra, res.stderr)
    assert len(audit_rows(gallery_dir, "search")) == 1
    res = runner.invoke(app, ["--data", str(gallery_dir), "search", probe, "--force", *CASE])
    assert res.exit_code == 0, res.stderr
    assert audit_rows(gallery_dir, "search")[-1]["detail"]["case_number"] == "C-17"

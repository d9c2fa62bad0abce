"""The shell commands: users add/list/disable, audit verify on a tampered log, purge."""

from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app


def _run(data: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["--data", str(data), *args])
    return result.exit_code, result.stdout


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with two users (so the log has a few entries)."""
    code, out = _run(
        tmp_path,
        "users",
        "add",
        "ines",
        "-r",
        "investigator",
        "-r",
        "reviewer",
        "--department",
        "Forensics",
    )
    assert code == 0 and out.startswith("ines\t")
    assert _run(tmp_path, "users", "add", "aude", "-r", "auditor")[0] == 0
    assert _run(tmp_path, "users", "disable", "aude")[0] == 0
    return tmp_path


def test_users_commands(data: Path) -> None:
    code, out = _run(data, "users", "list", "--json")
    users = {u["username"]: u for u in json.loads(out)}
    assert users["ines"]["roles"] == ["investigator", "reviewer"]
    assert users["ines"]["department"] == "Forensics"
    assert users["aude"]["active"] is False
    code, _ = _run(data, "users", "add", "bad name", "-r", "auditor")
    assert code == 1
    code, _ = _run(data, "users", "add", "rex", "-r", "reviewer")  # no department
    assert code == 1


def test_audit_verify_reports_tampering(data: Path) -> None:
    code, out = _run(data, "audit", "verify")
    # the department made by 'users add --department', two users, one disabled
    assert code == 0 and out.startswith("ok: 4 entries")
    db = sqlite3.connect(data / "facetrace.db")
    db.execute("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 2")
    db.commit()
    code, out = _run(data, "audit", "verify", "--json")
    report = json.loads(out)
    assert code == 1 and report["problem"]["kind"] == "altered" and report["problem"]["seq"] == 2
    db.execute("UPDATE audit_entry SET actor = 'system' WHERE seq = 2")
    db.execute("DELETE FROM audit_entry WHERE seq = 2")
    db.commit()
    code, out = _run(data, "audit", "verify")
    assert code == 1 and "deleted" in out


def test_cases_purge_runs(data: Path) -> None:
    code, out = _run(data, "cases", "purge")
    assert code == 0 and "purged 0" in out


def test_audit_verify_uses_the_key_file_and_needs_it(data: Path, tmp_path_factory: Any) -> None:
    """The key is created 0600 in the data directory on first use and read back by
    ``audit verify``; a log re-hashed without the key, and a missing key file, fail."""
    key_file = data / "audit.key"
    assert key_file.exists() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    moved = tmp_path_factory.mktemp("keys") / "audit.key"
    key_file.rename(moved)
    runner = CliRunner()
    missing = runner.invoke(app, ["--data", str(data), "audit", "verify"])
    assert missing.exit_code == 1 and "no audit key file" in missing.stderr
    env = {"FACETRACE_AUDIT_KEY_FILE": str(moved)}
    ok = runner.invoke(app, ["--data", str(data), "audit", "verify"], env=env)
    assert ok.exit_code == 0 and ok.stdout.startswith("ok: 4 entries, keyed from entry 1")
    assert not key_file.exists(), "verify creates no key"
    db = sqlite3.connect(data / "facetrace.db")
    db.execute("DELETE FROM audit_entry")
    db.execute("DELETE FROM audit_head")
    db.commit()
    emptied = runner.invoke(app, ["--data", str(data), "audit", "verify", "--json"], env=env)
    report = json.loads(emptied.stdout)
    assert emptied.exit_code == 1 and report["problem"]["kind"] == "deleted"

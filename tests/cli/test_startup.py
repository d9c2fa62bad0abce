"""``facetrace --help`` and a command's start-up load no heavy library: web framework,
SQL, numerics, models and password hashing come in only with the commands that use them.
(How long start-up takes is measured in benchmarks/bench_cli.py, not here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "alembic",
    "argon2",
    "faiss",
    "fastapi",
    "matplotlib",
    "numpy",
    "onnx",
    "onnxruntime",
    "PIL",
    "pydantic_settings",
    "sqlalchemy",
    "starlette",
    "uvicorn",
)

PROBE = """
import json, sys
from facetrace.cli.main import app
try:
    app(sys.argv[1:], prog_name="facetrace")
except SystemExit:
    pass
heavy = [m for m in sys.modules if m.split(".")[0] in {heavy}]
json.dump(sorted(heavy + [m for m in sys.modules if m == "facetrace.config"]), sys.stderr)
"""


def _loaded(*args: str) -> list[str]:
    code = PROBE.format(heavy=set(HEAVY))
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    return list(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_help_loads_nothing_heavy() -> None:
    assert _loaded("--help") == []


def test_a_command_help_loads_nothing_heavy() -> None:
    # the callback runs before the command's --help; the settings are read only when a
    # command needs them
    assert _loaded("status", "--help") == []
    assert _loaded("--data", "/nonexistent", "--model", "x.onnx", "ingest", "--help") == []
    assert _loaded("users", "list", "--help") == []


def test_bad_settings_still_fail_the_command(tmp_path: object) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "facetrace.cli", "--data", str(tmp_path), "status"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "FACETRACE_DETECT__MIN_FACE_PX": "5"},
    )
    assert proc.returncode == 1
    assert "FACETRACE_DETECT__MIN_FACE_PX" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_command_loads_what_it_needs(tmp_path: object) -> None:
    loaded = _loaded("--data", str(tmp_path), "users", "list")
    assert "sqlalchemy" in loaded and "pydantic_settings" in loaded
    assert "fastapi" not in loaded and "onnxruntime" not in loaded and "faiss" not in loaded


def _loaded_with(env: dict[str, str], *args: str) -> list[str]:
    old = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        return _loaded(*args)
    finally:
        for name, value in old.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


QUICK_FREE = {"sqlalchemy", "numpy", "faiss", "alembic", "pydantic", "pydantic_settings"}


def test_status_of_a_sqlite_gallery_loads_no_sql_numerics_or_pydantic(gallery_dir: Path) -> None:
    # the counts come from the stdlib's sqlite3, the index from its manifest
    # (facetrace.gallery.peek); tests/cli/test_status_quick.py checks the output. The
    # data directory and model are read without pydantic (facetrace.config_quick), and
    # the options are coerced without typer's pydantic adapters (cli.common.plain_coercion)
    for args in (["status"], ["status", "--json"], ["-v", "status"]):
        loaded = _loaded("--data", str(gallery_dir), *args)
        assert not QUICK_FREE & {m.split(".")[0] for m in loaded}, args
    model = {"FACETRACE_PIPELINE__MODEL": "dlib-resnet-v1", "FACETRACE_SERVICE__PORT": "x"}
    loaded = _loaded_with({"FACETRACE_DATA": str(gallery_dir), **model}, "status")
    assert not QUICK_FREE & {m.split(".")[0] for m in loaded}


def test_status_validates_every_setting_it_does_not_read_itself(gallery_dir: Path) -> None:
    # any other setting (here valid) sends status through Settings, which validates it
    for env in ({"FACETRACE_SEARCH__K": "20"}, {"facetrace_detect__min_face_px": "60"}):
        assert "pydantic_settings" in _loaded_with(env, "--data", str(gallery_dir), "status")


def _status(data: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facetrace.cli", "--data", str(data), *args, "status"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_bad_settings_fail_status_on_a_gallery_it_can_peek(gallery_dir: Path) -> None:
    for name, value in [
        ("FACETRACE_DETECT__MIN_FACE_PX", "5"),
        ("facetrace_search__k", "0"),  # names match in any case, as pydantic-settings does
        ("FACETRACE_PIPELINE__MODEL", ""),
        ("FACETRACE_WORKERS", "many"),
    ]:
        proc = _status(gallery_dir, env={name: value})
        assert proc.returncode == 1, (name, proc.stdout)
        assert name.upper() in proc.stderr and "Traceback" not in proc.stderr
    proc = _status(gallery_dir, "--model", "", env={})
    assert proc.returncode == 1 and "FACETRACE_PIPELINE__MODEL" in proc.stderr


def test_status_opens_the_gallery_when_it_cannot_peek(gallery_dir: Path) -> None:
    (gallery_dir / "index.faiss").unlink()  # the gallery rebuilds it: only it can say
    assert "sqlalchemy" in _loaded("--data", str(gallery_dir), "status", "--json")

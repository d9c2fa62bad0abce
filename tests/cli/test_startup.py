"""``facetrace --help`` and a command's start-up load no heavy library: web framework,
SQL, numerics, models and password hashing come in only with the commands that use them.
(How long start-up takes is measured in benchmarks/bench_cli.py, not here.)"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "alembic",
    "argon2",
    "faiss",
    "fastapi",
    "numpy",
    "onnx",
    "onnxruntime",
    "PIL",
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
json.dump(sorted(m for m in sys.modules if m.split(".")[0] in {heavy}), sys.stderr)
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
    # the callback runs (settings are read) before the command's --help
    assert _loaded("status", "--help") == []
    assert _loaded("users", "list", "--help") == []


def test_the_command_loads_what_it_needs(tmp_path: object) -> None:
    loaded = _loaded("--data", str(tmp_path), "users", "list")
    assert "sqlalchemy" in loaded
    assert "fastapi" not in loaded and "onnxruntime" not in loaded and "faiss" not in loaded

"""Shared fixtures. Real face photos come from ``$FACETRACE_FACES``, never from the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# the small real gallery shared by the gallery and CLI tests
pytest_plugins = ["tests.galleries"]

_REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """The shared faces folder (see its README.md): ``$FACETRACE_FACES``, else
    ``../shared/faces`` next to the repository. Skips when missing, except under CI."""
    configured = os.environ.get("FACETRACE_FACES")
    path = Path(configured) if configured else _REPO_ROOT.parent / "shared" / "faces"
    if not path.is_dir():
        reason = f"face photos not found at {path} (set FACETRACE_FACES)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path

"""A live server (uvicorn in a thread) and headless Chromium driven by Playwright.

Chromium is Debian's package (``make browser`` installs it); Playwright's own browser
download is not used. Without Chromium the browser tests skip, except under CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from facetrace.config import ServiceConfig
from tests.live import serve_thread

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        reason = "Debian's chromium is not installed (run `make browser`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@contextmanager
def serve(data: Path) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of the service running on ``data`` in a thread, on a free port."""
    cfg = ServiceConfig(data=data)
    with serve_thread(cfg) as running:
        yield running


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of a running service on a fresh data directory."""
    with serve(tmp_path_factory.mktemp("live")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium."""
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def desk(
    live_server: tuple[str, Any], faces_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """The live server seeded with a team and a collection (see tests/web/desk.py)."""
    from tests.web.desk import Desk, seed

    base, app = live_server
    coll = seed(app, faces_dir, tmp_path_factory.mktemp("manifest"))
    return Desk(base=base, app=app, faces=faces_dir, collection_id=coll)

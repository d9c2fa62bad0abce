"""A live server (uvicorn in a thread) and headless Chromium driven by Playwright.

Chromium is Debian's package (``make browser`` installs it); Playwright's own browser
download is not used. Without Chromium the browser tests skip, except under CI.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of a running service on a fresh data directory."""
    data = tmp_path_factory.mktemp("live")
    cfg = ServiceConfig(data=data)
    app = create_app(cfg)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(timeout=30)


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

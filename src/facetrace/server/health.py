"""Liveness and readiness, for a load balancer or an orchestrator.

``/healthz`` says the process answers. ``/readyz`` says it can serve: the database
answers a query, the face index is open and the data directory takes a write. Every call
checks afresh, so a 503 names what is down now and clears once it is back. Neither needs
a login (a probe has none), so neither reveals more than which dependency failed: the
driver's message (the database host and port), the data directory's path and the
index's error go to the log, never to the caller.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from facetrace.errors import StoreUnavailable
from facetrace.server.deps import State

log = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


def check_data_dir(path: Path) -> str | None:
    """None when a file can be created, written and removed in ``path``, else why not."""
    probe = path / f".write-check-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
        probe.unlink()
    except OSError as error:
        return f"the data directory {path} is not writable ({error.strerror or error})"
    return None


def require_data_dir(path: Path) -> None:
    """Create ``path`` if needed and check that it takes writes; raises StoreUnavailable
    (one line for the operator) when it does not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailable(
            f"cannot create the data directory {path} ({error.strerror or error})"
        ) from error
    reason = check_data_dir(path)
    if reason is not None:
        raise StoreUnavailable(reason)


class IndexWarmup:
    """Opens the gallery (its vector index) in a background thread at start-up, so the
    first search does not wait for it and readiness can say whether it is open. A failed
    opening (a Milvus server that is down) is retried at the next readiness check."""

    def __init__(self, open_gallery: Callable[[], object]) -> None:
        self._open = open_gallery
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = False
        self._error: str | None = None

    def start(self) -> None:
        """Begin opening, unless it is open or already opening."""
        with self._lock:
            if self._ready or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="index-warmup", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._open()
        except Exception as error:  # reported by readiness, retried at its next check
            log.warning("could not open the face index: %s", error)
            self._error = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
            return
        self._ready, self._error = True, None

    def reason(self) -> str | None:
        """None when the index is open, else why not (loading, or the last failure)."""
        if self._ready:
            return None
        error = self._error
        self.start()
        if error is not None:
            return f"the face index could not be opened: {error}"
        return "the face index is still loading"


def _public_index_reason(reason: str) -> str:
    # "still loading" is harmless; a failure's text may name a server (Milvus's URI)
    return reason if reason.endswith("still loading") else "the face index could not be opened"


class Health(BaseModel):
    """The process answers."""

    status: str


class IndexRebuild(BaseModel):
    """A lost index rebuilt in the background while exact search serves: how far it is.
    Counts and times only (a failure's message, which may name a server, goes to the log)."""

    state: str  # building, done or failed
    kind: str
    done: int
    total: int
    started_at: float  # seconds since the epoch


class Readiness(BaseModel):
    """Each dependency: null when it is fine, else why it is not; and a background index
    rebuild's progress (null when none ran). A rebuild does not make the service unready:
    searches are answered meanwhile, by exact search."""

    status: str
    checks: dict[str, str | None]
    index_rebuild: IndexRebuild | None = None


def _rebuild(progress: dict[str, Any] | None) -> IndexRebuild | None:
    if progress is None:
        return None
    return IndexRebuild(
        state=str(progress.get("state", "unknown")),
        kind=str(progress.get("kind", "unknown")),
        done=int(progress.get("done", 0)),
        total=int(progress.get("total", 0)),
        started_at=float(progress.get("started_at", 0.0)),
    )


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Liveness: the process answers (restart it if this fails)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(request: Request, state: State) -> JSONResponse:
    """Readiness: 200 when the database answers, the face index is open and the data
    directory takes writes; else 503 naming each failing dependency. ``index_rebuild``
    reports a lost index being rebuilt behind exact search (faces done of total)."""
    warmup: IndexWarmup = request.app.state.index_warmup
    database = await run_in_threadpool(state.database.ping)
    data = await run_in_threadpool(check_data_dir, state.data_dir)
    index = warmup.reason()
    details = {"database": database, "index": index, "data_directory": data}
    checks = {
        "database": None if database is None else "the database does not answer",
        "index": None if index is None else _public_index_reason(index),
        "data_directory": None if data is None else "the data directory is not writable",
    }
    failing = [reason for reason in checks.values() if reason is not None]
    if failing:
        log.warning("not ready: %s", {k: v for k, v in details.items() if v is not None})
    body = Readiness(
        status="not ready" if failing else "ready",
        checks=checks,
        index_rebuild=_rebuild(state.gallery.rebuild_progress()),
    )
    headers = {"Retry-After": "5"} if failing else {}
    return JSONResponse(body.model_dump(), status_code=503 if failing else 200, headers=headers)

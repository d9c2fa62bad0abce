"""Real servers for tests that need a socket: uvicorn in a thread (fast, shares the
test's objects) or ``facetrace serve`` in a process of its own (start-up and exit codes),
and a user with an API key made directly in a data directory's database."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_thread(cfg: ServiceConfig) -> Iterator[tuple[str, Any]]:
    """(base URL, app) of the service for ``cfg`` under uvicorn in a thread."""
    app = create_app(cfg)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", proxy_headers=False
    )  # as `facetrace serve` runs it
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(timeout=30)


# PR_SET_PDEATHSIG (a SIGKILLed pytest leaves no server behind), set by the child itself
# before it becomes the server (execv keeps the pid and the setting). Not a preexec_fn:
# that forces a fork() whose atfork handlers abort the child when gRPC (pymilvus, from an
# earlier test) has threads running; without one the child is started with vfork.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys; "
    "ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def die_with_parent(command: list[str]) -> list[str]:
    """``command`` run so that it gets SIGTERM when the test process dies."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, *command]


def serve_command(data: Path, port: int) -> list[str]:
    """The command line of ``facetrace serve`` on ``data`` and ``port``."""
    return [
        sys.executable,
        "-m",
        "facetrace.cli",
        "--data",
        str(data),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def facetrace_env(**extra: str) -> dict[str, str]:
    """The test's environment without FACETRACE_ settings it may carry, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACE_")}
    env.update(extra)
    return env


@dataclass
class ServerProcess:
    """A running ``facetrace serve``."""

    proc: subprocess.Popen[str]
    base: str
    port: int


@contextmanager
def serve_process(
    data: Path, *, env: dict[str, str] | None = None, timeout: float = 90
) -> Iterator[ServerProcess]:
    """``facetrace serve`` on ``data`` in a process of its own, once it accepts
    connections; stopped (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    proc = subprocess.Popen(
        die_with_parent(serve_command(data, port)),
        env=env or facetrace_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise RuntimeError(f"the server exited with {proc.returncode}: {err[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.1)
        yield ServerProcess(proc, f"http://127.0.0.1:{port}", port)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def make_user(data: Path, name: str, roles: set[Any], department: str | None) -> str:
    """Create a user in the data directory's database (migrating it); its API key."""
    from facetrace.service import accounts, audit
    from facetrace.service.audit_key import key_path, load_key
    from facetrace.store.db import Database, sqlite_url

    data.mkdir(parents=True, exist_ok=True)
    database = Database.open(sqlite_url(data))
    audit.bind(database, load_key(key_path(data, None)))
    try:
        with database.sessions.begin() as s:
            user = accounts.create_user(
                s,
                actor=accounts.SYSTEM,
                username=name,
                password="password-123",
                roles=frozenset(roles),
                department=department,
            )
            _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="test")
    finally:
        database.dispose()
    return key


class Relay:
    """A TCP relay on a loopback port to ``upstream``: a real network path to a
    dependency (PostgreSQL) that a test can cut (:meth:`cut`: every connection closed,
    new ones refused) and mend (:meth:`mend`: the same port accepts again)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._listener: socket.socket | None = None

    def mend(self) -> None:
        """Listen (again) and relay every accepted connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and close every relayed connection (both ends)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, []
        for s in [listener, *sockets]:
            if s is None:
                continue
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """``path`` read-only for this process, root included: a read-only bind mount when
    root (as a read-only volume would be), else the write bits taken off. Files opened
    before keep working through their descriptors, as on a remounted volume."""
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"cannot mount {path} read-only: {done.stderr.decode()}")
        try:
            yield
        finally:
            subprocess.run(["umount", str(path)], check=True)
        return
    modes = {p: p.stat().st_mode for p in [path, *path.rglob("*")]}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(mode)

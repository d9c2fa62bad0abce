"""A real Milvus standalone server for tests and benchmarks, on free loopback ports.

The PyPI package ``milvus`` (the one behind the ``milvus-server`` command) ships the
Milvus standalone binary with its embedded etcd and local storage: the same gRPC
server, query path and index code as a cluster's. :func:`milvus_server` starts it on
ports the OS hands out (every one of its ten listeners, not only the proxy), in a
temporary data directory, waits for its health check, and always stops it.

``FACETRACE_TEST_MILVUS`` (a URI such as ``http://127.0.0.1:19530``) points the tests
at a server someone else runs instead; nothing is started then.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV = "FACETRACE_TEST_MILVUS"
#: the listeners of the standalone binary (keys of the milvus package's config template)
_PORT_KEYS = (
    "etcd_port",
    "root_coord_port",
    "proxy_port",
    "proxy_internal_port",
    "query_coord_port",
    "query_node_port",
    "index_coord_port",
    "index_node_port",
    "data_coord_port",
    "data_node_port",
)


#: the tests' server ticks every 50 ms (Milvus's default is 200): a Strong-consistency
#: read waits for the next tick, so this takes ~0.15 s off every search and count.
#: The benchmarks keep the default.
TEST_SERVER_CONFIG: dict[str, Any] = {"proxy.timeTickInterval": 50}

_COMPONENTS = (
    "rootCoord",
    "proxy",
    "queryCoord",
    "queryNode",
    "indexNode",
    "dataCoord",
    "dataNode",
)


def _loopback_config() -> type:
    """The milvus package's config class, made to keep embedded etcd on our ports.

    Its template sets where Milvus *finds* etcd, but the embedded etcd itself would
    listen on 2379/2380 whatever the port setting (two servers on one machine would
    clash): an etcd config file with loopback client and peer URLs fixes both.
    """
    from milvus import MilvusServerConfig

    class LoopbackConfig(MilvusServerConfig):  # type: ignore[misc]
        def __init__(self, *, etcd_peer_port: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.etcd_peer_port = etcd_peer_port

        def try_bind_port(self, port: int) -> socket.socket | None:
            """The package's free-port check, with SO_REUSEADDR as the Go server binds:
            without it a restart on the same ports fails while old connections linger
            in TIME_WAIT."""
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(("127.0.0.1", port))
                sock.listen()
                return sock
            except OSError:
                sock.close()
                return None

        def write_config(self) -> None:
            super().write_config()
            client = f"http://127.0.0.1:{self.get('etcd_port')}"
            peer = f"http://127.0.0.1:{self.etcd_peer_port}"
            configs = Path(self.base_data_dir) / "configs"
            embed = configs / "embedEtcd.yaml"
            embed.write_text(
                f"name: default\nlisten-client-urls: {client}\nadvertise-client-urls: {client}\n"
                f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
                f"initial-cluster: default={peer}\n"
            )
            main = configs / "milvus.yaml"
            text = main.read_text()
            main.write_text(text.replace("etcd:\n", f"etcd:\n  config:\n    path: {embed}\n", 1))

    return LoopbackConfig


#: what the server is started through: PR_SET_PDEATHSIG (SIGKILL when the process that
#: started it dies, however it dies, even with its watchdog killed alongside), set before
#: it execs the real binary (same pid). Exits at once if that process is already gone.
_DIE_WITH_PARENT = """#!{python}
import ctypes, os, signal, sys
ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
if os.getppid() != {parent}:
    sys.exit(1)
os.execv({binary!r}, [{binary!r}, *sys.argv[1:]])
"""


def _dying_server() -> type:
    """The milvus package's server class, started so that it dies with this process.

    The package runs ``bin/milvus`` itself (no preexec hook; a preexec_fn would fork
    while gRPC threads run anyway): its executable becomes a small wrapper beside the
    binary (same directory, so the package's LD_LIBRARY_PATH still finds the libraries).
    """
    from milvus import MilvusServer

    class DyingServer(MilvusServer):  # type: ignore[misc]
        def get_milvus_executable_path(self) -> str:
            binary = Path(super().get_milvus_executable_path())
            binary.parent.mkdir(parents=True, exist_ok=True)
            wrapper = binary.with_name("milvus-die-with-parent")
            wrapper.write_text(
                _DIE_WITH_PARENT.format(
                    python=sys.executable, parent=os.getpid(), binary=str(binary)
                )
            )
            wrapper.chmod(0o755)
            return str(wrapper)

    return DyingServer


@dataclass(frozen=True, slots=True)
class RunningMilvus:
    """A server the tests may use: its URI, and (when we started it) the process handle."""

    uri: str
    health_url: str | None
    server: Any = None  # milvus.MilvusServer when started here
    data_dir: Path | None = None

    @property
    def pid(self) -> int | None:
        proc = getattr(self.server, "server_proc", None)
        return None if proc is None else int(proc.pid)


#: the watchdog of each server we started, by ``id(server)``
_WATCHDOGS: dict[int, subprocess.Popen[bytes]] = {}

#: polls every second; when the test process is gone (SIGKILL, a CI timeout) it kills
#: the server and removes its data directory, which pytest's own teardown never reaches
_WATCHDOG = """
import os, shutil, signal, sys, time
owner, server, data = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while alive(owner) and os.getppid() == owner and alive(server):
    time.sleep(1.0)
if not alive(owner) or os.getppid() != owner:
    try:
        os.kill(server, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if data:
        time.sleep(1.0)
        shutil.rmtree(data, ignore_errors=True)
"""


def _watch(running: RunningMilvus, *, remove_data: bool) -> None:
    """Start a watchdog that kills the server (and removes its data) if this process dies.

    The ``milvus`` package spawns the binary itself, so it cannot be given a parent-death
    signal; a killed pytest used to leave ~640 MB servers and ~520 MB directories behind.
    """
    pid = running.pid
    if pid is None:
        return
    _unwatch(running)
    data = running.data_dir if remove_data else None
    _WATCHDOGS[id(running.server)] = spawn_watchdog(pid, data)


def spawn_watchdog(server_pid: int, data_dir: Path | None) -> subprocess.Popen[bytes]:
    """A child process that SIGKILLs ``server_pid`` and removes ``data_dir`` once this
    process is gone (it notices being re-parented), and exits when the server does."""
    return subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(server_pid), str(data_dir or "")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a kill of pytest's process group leaves it to clean up
    )


def _unwatch(running: RunningMilvus) -> None:
    """Stop the watchdog of a server we stop ourselves (before its pid can be reused)."""
    dog = _WATCHDOGS.pop(id(running.server), None)
    if dog is not None:
        dog.kill()
        dog.wait(timeout=30)


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports the OS considers free on 127.0.0.1 (bound together, then freed)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # loopback only
            return b"OK" in resp.read()
    except (urllib.error.URLError, OSError):
        return False


def start_milvus(
    data_dir: Path,
    *,
    start_timeout: float = 180.0,
    attempts: int = 3,
    extra_config: dict[str, Any] | None = None,
) -> RunningMilvus:
    """Start the standalone server in ``data_dir`` and wait until it answers.

    A start that fails (a port taken between our choice and the server's bind, or the
    health check not answering within ``start_timeout`` seconds on a loaded machine) is
    stopped and tried again with new ports, up to ``attempts`` times. ``extra_config``
    sets keys of the server's ``milvus.yaml`` that its template has (``"proxy.timeTickInterval"``).
    """
    server_class = _dying_server()
    _LoopbackConfig = _loopback_config()
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        ports = free_ports(len(_PORT_KEYS) + 2)
        config = _LoopbackConfig(
            etcd_peer_port=ports[-2],
            data_dir=str(data_dir),
            **dict(zip(_PORT_KEYS, ports, strict=False)),
        )
        for component in _COMPONENTS:  # advertise loopback, not the first network address
            config.set(f"{component}.ip", "127.0.0.1")
        for key, value in (extra_config or {}).items():
            config.set(key, value)
        server = server_class(config, wait_for_started=False)
        server.webservice_port = ports[-1]  # the health/metrics listener
        running = RunningMilvus(
            uri=f"http://127.0.0.1:{ports[_PORT_KEYS.index('proxy_port')]}",
            health_url=f"http://127.0.0.1:{ports[-1]}/healthz",
            server=server,
            data_dir=data_dir,
        )
        try:
            server.start()
            _watch(running, remove_data=True)
            wait_healthy(running, timeout=start_timeout)
            log.info("Milvus standalone at %s (pid %s)", running.uri, running.pid)
            return running
        except Exception as exc:  # start-up failures of an external binary vary
            last = exc
            stop_milvus(running)
            log.warning("Milvus start %d/%d failed: %s", attempt, attempts, exc)
    raise RuntimeError(f"Milvus standalone did not start after {attempts} attempts: {last}")


def wait_healthy(running: RunningMilvus, *, timeout: float) -> None:
    """Poll the server's ``/healthz`` until it says OK; raise TimeoutError after ``timeout``."""
    if running.health_url is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = getattr(running.server, "server_proc", None)
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"Milvus exited with code {proc.returncode}")
        if _healthy(running.health_url):
            return
        time.sleep(0.5)
    raise TimeoutError(f"Milvus at {running.uri} not healthy after {timeout:.0f} s")


def stop_milvus(running: RunningMilvus, *, grace: float = 3.0) -> None:
    """Stop a server we started (SIGTERM, SIGKILL after ``grace`` seconds); a no-op for an
    external one. Its data directory is thrown away, so a graceful flush is not needed."""
    server = running.server
    if server is None:
        return
    _unwatch(running)
    proc = getattr(server, "server_proc", None)
    if proc is not None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except Exception:  # subprocess.TimeoutExpired: it did not stop in time
            proc.kill()
            proc.wait(timeout=30)
        server.server_proc = None
    with suppress(Exception):
        server.stop()  # closes its log files


def restart_milvus(running: RunningMilvus, *, start_timeout: float = 180.0) -> None:
    """Start a server we stopped again, on the same ports and data directory."""
    server = running.server
    if server is None:
        raise RuntimeError("an external server cannot be restarted here")
    server.start()
    _watch(running, remove_data=True)
    wait_healthy(running, timeout=start_timeout)


def kill_milvus(running: RunningMilvus) -> None:
    """SIGKILL a server we started (a crash, or an outage), keeping its data directory."""
    _unwatch(running)
    proc = getattr(running.server, "server_proc", None)
    if proc is not None:
        proc.kill()
        proc.wait(timeout=30)
        running.server.server_proc = None
    for fd in getattr(running.server, "proc_fds", {}).values():
        fd.close()


@contextmanager
def milvus_server(
    *, start_timeout: float = 180.0, extra_config: dict[str, Any] | None = None
) -> Iterator[RunningMilvus]:
    """A running server for the duration of the block: ``$FACETRACE_TEST_MILVUS`` if set,
    else one started here (in a temporary directory, removed afterwards)."""
    external = os.environ.get(ENV)
    if external:
        yield RunningMilvus(uri=external, health_url=None)
        return
    data_dir = Path(tempfile.mkdtemp(prefix="facetrace-milvus-"))
    running = None
    try:
        running = start_milvus(data_dir, start_timeout=start_timeout, extra_config=extra_config)
        yield running
    finally:
        if running is not None:
            stop_milvus(running)
        shutil.rmtree(data_dir, ignore_errors=True)


class CollectionPool:
    """Collections on a shared server handed to tests and emptied for reuse.

    Creating and loading a collection takes about 3 s on the standalone server; an
    emptied one is reopened in milliseconds, so a suite of many small tests reuses
    them. Every collection has the schema :class:`~facetrace.index.milvus.MilvusIndex`
    creates with its defaults; one pool per vector dimension.
    """

    def __init__(self, uri: str, prefix: str) -> None:
        self.uri = uri
        self.prefix = prefix
        self._free: dict[int, list[str]] = {}
        self._made = 0

    def take(self, dim: int) -> str:
        """The name of an empty collection of ``dim``-d vectors (or of one to be created)."""
        free = self._free.setdefault(dim, [])
        if free:
            return free.pop()
        self._made += 1
        return f"{self.prefix}{dim}_{self._made}"

    def give_back(self, name: str, dim: int) -> None:
        """Empty ``name`` (if it was created) and keep it for the next test."""
        from pymilvus import MilvusClient

        client = MilvusClient(uri=self.uri, timeout=30)
        try:
            if client.has_collection(name):
                client.delete(name, filter="id >= 0")
                self._free.setdefault(dim, []).append(name)
        finally:
            client.close()

    def drop_all(self) -> None:
        """Drop every pooled collection (the end of a session on an external server)."""
        from pymilvus import MilvusClient

        client = MilvusClient(uri=self.uri, timeout=30)
        try:
            for names in self._free.values():
                for name in names:
                    client.drop_collection(name)
            self._free.clear()
        finally:
            client.close()

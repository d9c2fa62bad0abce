"""A killed test run must not leave its Milvus server (and data directory) behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

_OWNER = """
import subprocess, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.milvus_server import spawn_watchdog
server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
spawn_watchdog(server.pid, Path(sys.argv[2]))
print(server.pid, flush=True)
time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie (killed, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split(")")[-1].split()[0] == "Z"


def _wait(pred: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def test_server_and_data_go_when_the_test_process_is_killed(tmp_path: Path) -> None:
    data = tmp_path / "milvus-data"
    data.mkdir()
    (data / "segment").write_bytes(b"x" * 1024)
    owner = subprocess.Popen(
        [sys.executable, "-c", _OWNER, str(ROOT), str(data)], stdout=subprocess.PIPE, text=True
    )
    assert owner.stdout is not None
    server_pid = int(owner.stdout.readline())
    try:
        time.sleep(1.5)  # the watchdog is polling
        assert not _gone(server_pid), "the server must run while its owner lives"
        assert data.exists()
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert _wait(lambda: _gone(server_pid)), "the orphaned server was not killed"
        assert _wait(lambda: not data.exists()), "the orphan's data directory was left"
    finally:
        if not _gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def test_the_watchdog_leaves_when_the_server_stops_normally(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from tests.milvus_server import spawn_watchdog

    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    dog = spawn_watchdog(server.pid, tmp_path)
    server.terminate()
    server.wait(timeout=10)
    assert dog.wait(timeout=20) == 0
    assert tmp_path.exists(), "a normal stop keeps the data for the fixture to remove"


_REAL_OWNER = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from tests.milvus_server import _unwatch, start_milvus
running = start_milvus(Path(sys.argv[2]), attempts=1)
_unwatch(running)  # the watchdog is gone too (a process-group kill takes it along)
print(running.pid, flush=True)
time.sleep(600)
"""


def test_a_real_server_dies_with_its_owner_even_without_the_watchdog(tmp_path: Path) -> None:
    """The standalone binary itself gets PR_SET_PDEATHSIG: a SIGKILLed pytest whose
    watchdog died alongside (seen: a server left with parent pid 1) leaves no server."""
    pytest.importorskip("milvus")
    owner = subprocess.Popen(
        [sys.executable, "-c", _REAL_OWNER, str(ROOT), str(tmp_path / "milvus")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    line = owner.stdout.readline()
    server_pid = int(line) if line.strip() else None
    try:
        assert server_pid is not None, "the owner did not start the server"
        assert not _gone(server_pid), "the server must run while its owner lives"
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
        assert _wait(lambda: _gone(server_pid)), "the orphaned server was not killed"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=10)
        if server_pid is not None and not _gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)

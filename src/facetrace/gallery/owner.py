"""One owner per data directory: whoever writes to a gallery holds its owner lock.

The running service holds it for its whole life, a writing CLI command (ingest, delete,
calibrate, index rebuild, duplicates merge...) for its run. Two writers on one data
directory would diverge silently: each keeps its own copy of the vector index in memory
and its next save overwrites the other's, and the service never sees faces the CLI
added. So a second writer is refused with a message saying who holds the directory and
what to do instead.

The lock is ``fcntl.flock`` on ``<data>/owner.lock``: the kernel releases it when its
process dies, however it dies, so a lock left by a killed process never blocks (the
file stays, the lock does not). The file's text (pid, host, command, port, user, since)
is only there for the message. ``flock`` locks belong to an open file, not a process,
so two owners in one process (a test running the service and a CLI command) exclude
each other too; spawned pool workers do not inherit it (the descriptor is close-on-exec
and the pools start with ``spawn``).
"""

from __future__ import annotations

import fcntl
import getpass
import json
import logging
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from facetrace.errors import DataDirInUse, StoreUnavailable

log = logging.getLogger(__name__)

OWNER_FILE = "owner.lock"
SERVICE = "serve"


def os_user() -> str:
    """The operating-system user running this process (its uid when it has no name)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no LOGNAME/USER (some containers)
        return f"uid {os.getuid()}"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a data directory: a process on a host, running ``command``."""

    pid: int
    host: str
    command: str
    user: str = ""
    since: str = ""
    port: int | None = None

    @property
    def is_service(self) -> bool:
        return self.command == SERVICE

    def describe(self) -> str:
        """``facetrace serve (pid 41, host h, port 8000, user ines, since ...)``."""
        parts = [f"pid {self.pid}" if self.pid else "pid unknown"]
        if self.host:
            parts.append(f"on {self.host}")
        if self.port:
            parts.append(f"port {self.port}")
        if self.user:
            parts.append(f"user {self.user}")
        if self.since:
            parts.append(f"since {self.since}")
        return f"facetrace {self.command or '(unknown command)'} ({', '.join(parts)})"


def _lock_path(data_dir: Path) -> Path:
    return Path(data_dir) / OWNER_FILE


def _read(fd: int) -> Owner:
    """The owner written in the lock file (fields it lacks are left empty)."""
    try:
        raw = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        raw = {}
    if not isinstance(raw, dict):
        raw = {}
    port = raw.get("port")
    return Owner(
        pid=int(raw.get("pid") or 0),
        host=str(raw.get("host") or ""),
        command=str(raw.get("command") or ""),
        user=str(raw.get("user") or ""),
        since=str(raw.get("since") or ""),
        port=int(port) if isinstance(port, int) else None,
    )


def current_owner(data_dir: Path) -> Owner | None:
    """The live owner of ``data_dir``, or None when nobody holds it (no lock file, or
    one left by a process that has died)."""
    try:
        fd = os.open(_lock_path(data_dir), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refusal(data_dir: Path, owner: Owner, command: str) -> str:
    """The one line that tells the user of ``command`` who holds ``data_dir`` and what
    to do instead."""
    if owner.is_service:
        if command == SERVICE:
            todo = "stop it before starting another service on this directory"
        else:
            todo = (
                "make this change through the service (API or web: Imports, Collections, "
                "Possible duplicates) or stop the service, then run the command again"
            )
        return f"{data_dir} is owned by the running service, {owner.describe()}: {todo}"
    return (
        f"{data_dir} is being changed by {owner.describe()}: wait for it to finish "
        f"(or stop it), then run facetrace {command} again"
    )


class OwnerLock:
    """The owner lock of a data directory, held from :meth:`acquire` to :meth:`release`
    (or as a context manager). Refused with :class:`~facetrace.errors.DataDirInUse`
    while another process, or another holder in this one, has it."""

    def __init__(self, data_dir: Path, *, command: str, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.command = command
        self.port = port
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OwnerLock:
        if self._fd is not None:
            return self
        path = _lock_path(self.data_dir)
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreUnavailable(
                f"{path}: cannot open the data directory's owner lock ({exc.strerror})"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read(fd)
            os.close(fd)
            raise DataDirInUse(refusal(self.data_dir, owner, self.command)) from None
        me = Owner(
            pid=os.getpid(),
            host=socket.gethostname(),
            command=self.command,
            user=os_user(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
            port=self.port,
        )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8"), 0)
        self._fd = fd
        log.info("holding %s as %s", path, me.describe())
        return self

    def release(self) -> None:
        """Give the directory up (the file stays, emptied: its lock is what counts)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:  # pragma: no cover - a read-only remount meanwhile
            pass
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def __enter__(self) -> OwnerLock:
        return self.acquire()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

"""A writer-preferring readers-writer lock for the in-memory vector index.

Searches only read the index and may run side by side; an import batch or a delete
changes it and needs it alone, but only for the step that touches it. Writer preference
(a waiting writer holds back readers that arrive after it) keeps a steady stream of
searches from starving an import; the price is that a search waits for at most the
readers already inside plus one write step.

Both sides are reentrant for the thread that holds them: a writer may read or write
again (the gallery saves the index inside a rebuild's switch), a reader may read again
even while a writer waits. A reader asking for the write side would wait for itself,
so that raises instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LockState:
    """A snapshot of the lock, for tests and diagnostics."""

    readers: int  # threads inside the read side
    writer: bool  # a thread holds the write side
    readers_waiting: int
    writers_waiting: int


class RWLock:
    """Many readers or one writer; a waiting writer goes before readers that come later."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0  # threads holding the read side (each counted once)
        self._writer: int | None = None  # ident of the thread holding the write side
        self._write_depth = 0
        self._readers_waiting = 0
        self._writers_waiting = 0
        self._mine = threading.local()  # this thread's read depth, and if it is counted

    def _read_depth(self) -> int:
        return int(getattr(self._mine, "depth", 0))

    def acquire_read(self) -> None:
        """Enter the read side; waits while a writer holds or waits for the lock."""
        depth = self._read_depth()
        if depth:  # already inside: never wait (behind a waiting writer, it would be forever)
            self._mine.depth = depth + 1
            return
        if self._writer == threading.get_ident():  # a read inside this thread's write
            self._mine.depth, self._mine.counted = 1, False
            return
        with self._cond:
            self._readers_waiting += 1
            try:
                while self._writer is not None or self._writers_waiting:
                    self._cond.wait()
            finally:
                self._readers_waiting -= 1
            self._readers += 1
        self._mine.depth, self._mine.counted = 1, True

    def release_read(self) -> None:
        """Leave the read side."""
        depth = self._read_depth()
        if depth <= 0:
            raise RuntimeError("release_read without acquire_read in this thread")
        self._mine.depth = depth - 1
        if depth > 1 or not self._mine.counted:
            return
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        """Enter the write side alone; waits for the readers inside to leave."""
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:
                self._write_depth += 1
                return
            if self._read_depth():
                raise RuntimeError(
                    "a thread holding the read side asked for the write side: it would wait "
                    "for itself"
                )
            self._writers_waiting += 1
            try:
                while self._writer is not None or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writer = me
            self._write_depth = 1

    def release_write(self) -> None:
        """Leave the write side."""
        with self._cond:
            if self._writer != threading.get_ident():
                raise RuntimeError("release_write by a thread that does not hold the write side")
            self._write_depth -= 1
            if self._write_depth == 0:
                self._writer = None
                if self._read_depth() and not self._mine.counted:
                    self._readers += 1  # a read begun inside the write outlives it
                    self._mine.counted = True
                self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        """``with lock.read():`` the shared side."""
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        """``with lock.write():`` the exclusive side."""
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()

    def state(self) -> LockState:
        """Who is inside and who waits, now."""
        with self._cond:
            return LockState(
                readers=self._readers,
                writer=self._writer is not None,
                readers_waiting=self._readers_waiting,
                writers_waiting=self._writers_waiting,
            )

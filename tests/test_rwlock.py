"""The readers-writer lock with real threads. Each test orders its threads with barriers,
events and the lock's own state (who is inside, who waits), never with sleeps; the
timeouts only turn a deadlock into a failure instead of a hung run."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from facetrace.rwlock import LockState, RWLock

HANG = 30.0  # seconds before a wait counts as a deadlock


def _until(lock: RWLock, ok: Callable[[LockState], bool]) -> None:
    """Wait until the lock's state satisfies ``ok`` (threads reach it on their own)."""
    done = threading.Event()
    for _ in range(int(HANG * 1000)):
        if ok(lock.state()):
            return
        done.wait(0.001)
    raise AssertionError(f"the lock never reached the state; it is {lock.state()}")


def _start(target: Callable[[], None]) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t


def test_readers_are_inside_together() -> None:
    lock = RWLock()
    n = 6
    together = threading.Barrier(n, timeout=HANG)  # passes only if all n are inside at once
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with lock.read():
                together.wait()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [_start(reader) for _ in range(n)]
    for t in threads:
        t.join(HANG)
    assert errors == []
    assert lock.state() == LockState(readers=0, writer=False, readers_waiting=0, writers_waiting=0)


def test_a_writer_waits_for_readers_and_excludes_them() -> None:
    lock = RWLock()
    release_reader = threading.Event()
    wrote = threading.Event()
    read_after = threading.Event()

    def reader() -> None:
        with lock.read():
            release_reader.wait(HANG)

    def writer() -> None:
        with lock.write():
            wrote.set()

    r = _start(reader)
    _until(lock, lambda s: s.readers == 1)
    w = _start(writer)
    _until(lock, lambda s: s.writers_waiting == 1)
    assert not wrote.is_set()  # counted as waiting: it is not inside
    release_reader.set()
    r.join(HANG)
    w.join(HANG)
    assert wrote.is_set()

    lock.acquire_write()
    late = _start(lambda: (lock.acquire_read(), read_after.set(), lock.release_read()))
    _until(lock, lambda s: s.readers_waiting == 1)
    assert not read_after.is_set()
    lock.release_write()
    late.join(HANG)
    assert read_after.is_set()


def test_a_waiting_writer_goes_before_readers_that_came_after_it() -> None:
    lock = RWLock()
    order: list[str] = []
    first_reader_may_leave = threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_reader_may_leave.wait(HANG)
            order.append("first reader leaves")

    def writer() -> None:
        with lock.write():
            order.append("writer")

    def late_reader() -> None:
        with lock.read():
            order.append("late reader")

    a = _start(first_reader)
    _until(lock, lambda s: s.readers == 1)
    w = _start(writer)
    _until(lock, lambda s: s.writers_waiting == 1)
    b = _start(late_reader)
    _until(lock, lambda s: s.readers_waiting == 1)  # held back although only a reader is in
    first_reader_may_leave.set()
    for t in (a, w, b):
        t.join(HANG)
    assert order == ["first reader leaves", "writer", "late reader"]


def test_a_reader_may_read_again_while_a_writer_waits() -> None:
    lock = RWLock()
    inner_done = threading.Event()
    go = threading.Event()

    def reader() -> None:
        with lock.read():
            go.wait(HANG)
            with lock.read():  # writer-preferring, yet no deadlock with itself
                inner_done.set()

    r = _start(reader)
    _until(lock, lambda s: s.readers == 1)
    wrote = threading.Event()

    def writer() -> None:
        with lock.write():
            wrote.set()

    w = _start(writer)
    _until(lock, lambda s: s.writers_waiting == 1)
    go.set()
    r.join(HANG)
    w.join(HANG)
    assert inner_done.is_set() and wrote.is_set()


def test_the_writer_may_nest_and_read() -> None:
    lock = RWLock()
    with lock.write():
        with lock.write(), lock.read():
            assert lock.state().writer
        assert lock.state().writer
    assert lock.state() == LockState(readers=0, writer=False, readers_waiting=0, writers_waiting=0)


def test_asking_to_write_while_reading_raises_instead_of_hanging() -> None:
    lock = RWLock()
    with lock.read(), pytest.raises(RuntimeError, match="wait for itself"):
        lock.acquire_write()
    with pytest.raises(RuntimeError):
        lock.release_read()
    with pytest.raises(RuntimeError):
        lock.release_write()


def test_readers_never_see_a_write_half_done() -> None:
    lock = RWLock()
    pair = [0, 0]  # a writer changes both; a reader must always see them equal
    seen_torn: list[tuple[int, int]] = []
    start = threading.Barrier(6, timeout=HANG)

    def writer() -> None:
        start.wait()
        for _ in range(2_000):
            with lock.write():
                pair[0] += 1
                for _ in range(50):  # give the interpreter a chance to switch threads
                    pass
                pair[1] += 1

    def reader() -> None:
        start.wait()
        for _ in range(2_000):
            with lock.read():
                a, b = pair[0], pair[1]
            if a != b:
                seen_torn.append((a, b))

    threads = [_start(writer) for _ in range(2)] + [_start(reader) for _ in range(4)]
    for t in threads:
        t.join(HANG * 4)
    assert not any(t.is_alive() for t in threads)
    assert seen_torn == []
    assert pair == [4_000, 4_000]

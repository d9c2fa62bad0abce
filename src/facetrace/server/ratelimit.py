"""Rate limits kept on ``app.state``: a sliding window per key, and the login back-off
(one process; behind several workers each has its own, so the effective limits
multiply)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


class RateLimiter:
    """At most ``limit`` events per ``window`` seconds for each key."""

    def __init__(self, *, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Count one event for ``key``. Returns None when allowed, else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            q = self._events.setdefault(key, deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return q[0] + self.window - now
            q.append(now)
            if len(self._events) > 10_000:  # forget idle keys so memory stays bounded
                for k in [k for k, v in self._events.items() if not v]:
                    del self._events[k]
            return None

    def refund(self, key: str) -> None:
        """Take back ``key``'s newest event: a login that succeeded gives its slot back,
        so a team logging in from one office address is never held back by its own
        successes, only by failures and token-less posts."""
        with self._lock:
            q = self._events.get(key)
            if q:
                q.pop()


@dataclass(frozen=True)
class ClientLimits:
    """The work limits of one request (see :class:`facetrace.service.searches.Limiter`):
    one event counts against the account's window and the client address's."""

    account: RateLimiter
    address: RateLimiter
    client: str

    def hit(self, key: str) -> float | None:
        """Count one event for account ``key`` and for this client address; None when
        both allow it, else the seconds to wait (a refusal by the account's window
        leaves the address's untouched)."""
        wait = self.account.hit(key)
        if wait is not None:
            return wait
        return self.address.hit(f"ip:{self.client}")


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    """Back-off after failed passwords, which grows with the failures instead of a lock
    that anyone could set off by naming a user.

    Two counters, both of real password checks only (a POST without the login form's
    token never reaches them):

    - per account and client address: after ``free`` failures, each further attempt
      from that address waits ``2 ** (failures - free)`` seconds (1, 2, 4, ...) after the
      last failure, up to ``max_wait``. Someone guessing from one address slows only
      themselves.
    - per account, from every address the account has not logged in from (in the last
      ``remember`` seconds): after ``account_free`` failures the same doubling applies
      to all such addresses together, so guessing from many addresses gains little
      (about ``account_free`` + one guess per ``max_wait``). The account's owner, at an
      address it has logged in from before, is not held back by it.

    A successful login clears its address's counter. Counters are forgotten ``forget``
    seconds after their last failure. One process: each worker has its own.
    """

    def __init__(
        self,
        *,
        free: int = 5,
        account_free: int = 20,
        max_wait: float = 3600.0,
        forget: float = 86_400.0,
        remember: float = 30 * 86_400.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.account_free = account_free
        self.max_wait = max_wait
        self.forget = forget
        self.remember = remember
        self._clock = clock
        self._pair: dict[tuple[str, str], _Failures] = {}
        self._account: dict[str, _Failures] = {}
        self._known: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def _wait(self, f: _Failures | None, free: int, now: float) -> float:
        if f is None or f.count < free or now - f.last >= self.forget:
            return 0.0
        delay = min(self.max_wait, 2.0 ** min(f.count - free, 40))
        return max(0.0, f.last + delay - now)

    def _is_known(self, account: str, address: str, now: float) -> bool:
        seen = self._known.get(account, {}).get(address)
        return seen is not None and now - seen < self.remember

    def wait(self, account: str, address: str) -> float | None:
        """Seconds before ``account`` may try a password from ``address`` again, or None
        when it may now."""
        now = self._clock()
        with self._lock:
            wait = self._wait(self._pair.get((account, address)), self.free, now)
            if not self._is_known(account, address, now):
                wait = max(wait, self._wait(self._account.get(account), self.account_free, now))
        return wait if wait > 0 else None

    def failed(self, account: str, address: str) -> None:
        """Count a wrong password for ``account`` from ``address``."""
        now = self._clock()
        with self._lock:
            self._bump(self._pair.setdefault((account, address), _Failures()), now)
            self._bump(self._account.setdefault(account, _Failures()), now)
            self._prune(now)

    def _bump(self, f: _Failures, now: float) -> None:
        if now - f.last >= self.forget:
            f.count = 0
        f.count += 1
        f.last = now

    def succeeded(self, account: str, address: str) -> None:
        """A correct password: the address's counter is cleared and the address becomes
        one the account is known at (the account-wide counter stays: it is the
        attacker's, not the owner's)."""
        now = self._clock()
        with self._lock:
            self._pair.pop((account, address), None)
            known = self._known.setdefault(account, {})
            known[address] = now
            if len(known) > 20:  # keep the most recent addresses only
                for old in sorted(known, key=known.__getitem__)[: len(known) - 20]:
                    del known[old]

    def _prune(self, now: float) -> None:
        # memory stays bounded under a flood of names: forget stale counters
        if len(self._pair) > 10_000:
            for pair in [k for k, f in self._pair.items() if now - f.last >= self.forget]:
                del self._pair[pair]
        if len(self._account) > 10_000:
            for name in [k for k, f in self._account.items() if now - f.last >= self.forget]:
                del self._account[name]

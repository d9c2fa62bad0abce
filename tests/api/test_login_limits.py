"""Login abuse (issue 11, item 5): naming a user locks nobody out, failed passwords back
off per account and address (and per account from unknown addresses), and
X-Forwarded-For is believed only from configured proxies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import select

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app
from facetrace.service.accounts import Role
from facetrace.store.db import Database, sqlite_url
from facetrace.store.service_models import AuditEntry
from tests.api.conftest import PASSWORD, add_user, login_token
from tests.live import facetrace_env, make_user, serve_process, serve_thread


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def app_for(tmp_path: Path, **service: object) -> Iterator[TestClient]:
    """The app, its login back-off on a clock that stands still: "within a second of the
    third failure" must not depend on how fast a loaded machine hashes passwords."""
    cfg = ServiceConfig(data=tmp_path)
    cfg.service = cfg.service.model_copy(update=service)
    with TestClient(create_app(cfg), follow_redirects=False) as client:
        client.app.state.service.login_throttle._clock = Clock()  # type: ignore[attr-defined]
        add_user(client, "ines", {Role.INVESTIGATOR}, "Forensics")
        yield client


def from_address(client: TestClient, address: str) -> TestClient:
    """Another client of the same running app, connecting from ``address``."""
    return TestClient(client.app, follow_redirects=False, client=(address, 40000))


def attempt(client: TestClient, password: str, username: str = "ines") -> httpx.Response:
    form = {"username": username, "password": password, "login_token": login_token(client)}
    return client.post("/login", data=form)


def test_token_less_posts_naming_a_user_do_not_lock_them_out(tmp_path: Path) -> None:
    with app_for(tmp_path, login_per_minute=3) as client:
        stranger = from_address(client, "203.0.113.7")
        codes = [
            stranger.post("/login", data={"username": "ines", "password": "x"}).status_code
            for _ in range(10)
        ]
        assert codes[:3] == [400, 400, 400] and set(codes[3:]) == {429}
        owner = from_address(client, "198.51.100.20")
        assert attempt(owner, PASSWORD).status_code == 303


def test_failed_passwords_back_off_per_account_and_address(tmp_path: Path) -> None:
    with app_for(tmp_path, login_free_failures=3, login_per_minute=1000) as client:
        guesser = from_address(client, "203.0.113.7")
        assert [attempt(guesser, "wrong-password").status_code for _ in range(3)] == [401] * 3
        held = attempt(guesser, "wrong-password")  # within a second of the third failure
        assert held.status_code == 429 and int(held.headers["retry-after"]) >= 1
        # the owner, elsewhere, is not held back by the guesser's failures
        assert attempt(from_address(client, "198.51.100.20"), PASSWORD).status_code == 303


def test_guesses_from_many_addresses_back_off_the_account_but_not_its_owner(
    tmp_path: Path,
) -> None:
    with app_for(
        tmp_path, login_free_failures=100, login_account_failures=5, login_per_minute=1000
    ) as client:
        home = from_address(client, "198.51.100.20")
        assert attempt(home, PASSWORD).status_code == 303  # the owner's usual address
        for i in range(5):
            assert attempt(from_address(client, f"203.0.113.{i + 1}"), "wrong").status_code == 401
        held = attempt(from_address(client, "203.0.113.99"), PASSWORD)
        assert held.status_code == 429, "an unknown address waits, even with the password"
        assert attempt(home, PASSWORD).status_code == 303
        # other accounts are untouched
        add_user(client, "omar", {Role.INVESTIGATOR}, "Forensics")
        omar = from_address(client, "203.0.113.99")
        assert attempt(omar, PASSWORD, username="omar").status_code == 303


def test_the_back_off_grows_with_the_failures_and_is_capped() -> None:
    from facetrace.server.ratelimit import LoginThrottle

    clock = Clock()
    throttle = LoginThrottle(free=2, account_free=1000, max_wait=60, clock=clock)
    waits = []
    for _ in range(10):
        wait = throttle.wait("ines", "a")
        if wait:
            clock.now += wait  # the guesser waits as told, then guesses wrong again
        throttle.failed("ines", "a")
        waits.append(throttle.wait("ines", "a") or 0.0)
    assert waits[:2] == [0.0, 1.0] and waits[2:6] == [2.0, 4.0, 8.0, 16.0]
    assert max(waits) == 60.0, "capped at max_wait"
    assert throttle.wait("ines", "b") is None, "another address has its own counter"
    throttle.succeeded("ines", "a")
    assert throttle.wait("ines", "a") is None


def _failed_login_targets(data: Path) -> list[str]:
    database = Database.open(sqlite_url(data))
    try:
        with database.sessions() as s:
            rows = s.execute(select(AuditEntry).where(AuditEntry.action == "login_failed"))
            return [r.target for r in rows.scalars()]
    finally:
        database.dispose()


def _forged_posts(base: str, n: int) -> list[int]:
    """``n`` token-less logins, each claiming another address (and naming another user)."""
    return [
        httpx.post(
            base + "/login",
            data={"username": f"user{i}", "password": "x"},
            headers={"X-Forwarded-For": f"192.0.2.{i + 1}"},
            timeout=30,
        ).status_code
        for i in range(n)
    ]


def _failed_login(base: str, forged: str) -> int:
    with httpx.Client(base_url=base, timeout=30) as c:
        text = c.get("/login").text
        marker = 'name="login_token" value="'
        start = text.index(marker) + len(marker)
        token = text[start : text.index('"', start)]
        form = {"username": "ines", "password": "wrong-password", "login_token": token}
        return c.post("/login", data=form, headers={"X-Forwarded-For": forged}).status_code


def test_forwarded_for_from_an_untrusted_peer_is_ignored_by_facetrace_serve(
    tmp_path: Path,
) -> None:
    make_user(tmp_path, "ines", {Role.INVESTIGATOR}, "Forensics")
    env = facetrace_env(FACETRACE_SERVICE__LOGIN_PER_MINUTE="3")
    with serve_process(tmp_path, env=env) as server:
        assert _failed_login(server.base, "198.51.100.66") == 401
        # the forged addresses share the real one's window: limited after 3 in all
        assert _forged_posts(server.base, 4) == [400, 400, 429, 429]
    assert _failed_login_targets(tmp_path) == ["ip:127.0.0.1"], "no forged address audited"


def test_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    make_user(tmp_path, "ines", {Role.INVESTIGATOR}, "Forensics")
    cfg = ServiceConfig(data=tmp_path)
    cfg.service = cfg.service.model_copy(
        update={"login_per_minute": 3, "trusted_proxies": ["127.0.0.0/8"]}
    )
    with serve_thread(cfg) as (base, _):
        assert _failed_login(base, "198.51.100.66, 127.0.0.1") == 401
        assert _forged_posts(base, 4) == [400] * 4, "each client address has its own window"
    assert _failed_login_targets(tmp_path) == ["ip:198.51.100.66"]


def test_a_team_behind_one_address_logs_in_whatever_its_size(tmp_path: Path) -> None:
    """Successful logins give their slot back: an office behind one address is held back
    by failures only (a browser walk as a new team logged in 11 times in a minute)."""
    with app_for(tmp_path, login_per_minute=3) as client:
        office = from_address(client, "198.51.100.20")
        assert [attempt(office, PASSWORD).status_code for _ in range(8)] == [303] * 8
        assert [attempt(office, "wrong-password").status_code for _ in range(3)] == [401] * 3
        assert attempt(office, PASSWORD).status_code == 429  # failures still count

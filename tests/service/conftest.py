"""Service-layer fixtures: a migrated database (SQLite and PostgreSQL) and some users."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.service.accounts import SYSTEM, Actor, Role, actor_of, create_user
from tests.dbutil import database_url, open_database


@pytest.fixture(params=["sqlite", "pg"])
def sessions(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A session factory on a freshly migrated database of each kind."""
    with database_url(request.param, tmp_path) as url:
        database = open_database(url)
        yield database.sessions
        database.dispose()


def make_user(
    factory: sessionmaker[Session], name: str, roles: set[Role], department: str | None = "Dept A"
) -> Actor:
    """Create a user (password ``password-123``) and return its actor."""
    with factory.begin() as s:
        user = create_user(
            s,
            actor=SYSTEM,
            username=name,
            password="password-123",
            roles=frozenset(roles),
            department=department,
        )
        return actor_of(user)

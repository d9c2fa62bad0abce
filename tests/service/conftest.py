"""Service-layer fixtures: a migrated database (SQLite and PostgreSQL) and some users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from facetrace.imaging import DecodeBudget
from facetrace.inference import ProbeAnalyser
from facetrace.service.accounts import SYSTEM, Actor, Role, actor_of, create_user
from facetrace.service.gallery_port import GalleryPort
from facetrace.service.searches import Searcher
from facetrace.store.db import Database, sqlite_url
from tests.dbutil import database_url, open_database


@pytest.fixture(params=["sqlite", "pg"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A freshly migrated database of each kind (for the service and a gallery alike)."""
    with database_url(request.param, tmp_path) as url:
        db = open_database(url)
        yield db
        db.dispose()


@pytest.fixture()
def sessions(database: Database) -> sessionmaker[Session]:
    """A session factory on :func:`database`."""
    return database.sessions


@contextmanager
def sqlite_port(data: Path) -> Iterator[GalleryPort]:
    """The service's gallery port on the SQLite gallery in ``data``, analysing in this
    process (no inference workers), closed with its database afterwards."""
    database = open_database(sqlite_url(data))
    gp = GalleryPort(
        data,
        database=database,
        max_upload_bytes=1 << 24,
    )
    try:
        yield gp
    finally:
        gp.close()
        database.dispose()


def port_analyser(port: GalleryPort) -> ProbeAnalyser:
    """Probes analysed in this process with the port's gallery's pipeline (no workers)."""
    return ProbeAnalyser(
        lambda: port.gallery().pipeline,
        limits=port.limits,
        budget=DecodeBudget(max_pixels=100_000_000, max_photos=2),
        lock=port.pipeline_lock,
    )


def port_searcher(port: GalleryPort) -> Searcher:
    """A searcher on the port's gallery (opened), analysing in this process: the
    service's search settings' defaults (10 candidates, FPIR 1 %, minimum quality 0.3)."""
    return Searcher(
        gallery=port.gallery(), analyser=port_analyser(port), k=10, fpir=0.01, min_quality=0.3
    )


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

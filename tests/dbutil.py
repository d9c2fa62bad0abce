"""Databases for the service tests: a fresh SQLite file, or a fresh PostgreSQL schema.

PostgreSQL is read from ``FACETRACE_TEST_PG`` (default a local server, trust auth,
database ``test``). Each test gets its own schema, dropped afterwards, so parallel runs
do not clash. Without a server the PostgreSQL variant is skipped, except under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from facetrace.store.db import Database

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"


def pg_url() -> str:
    """The PostgreSQL URL the tests use."""
    return os.environ.get("FACETRACE_TEST_PG", DEFAULT_PG)


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def require_pg() -> str:
    """The URL, after checking that a server answers; skips (fails under CI) otherwise."""
    url = pg_url()
    try:
        engine = create_engine(_psycopg(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any connection failure means "no server here"
        reason = f"PostgreSQL not reachable at {url}: {exc.__class__.__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database of ``kind`` (``sqlite`` or ``pg``), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'facetrace.db'}"
        return
    base = require_pg()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = create_engine(_psycopg(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


TEST_AUDIT_KEY = bytes(range(32))
"""The audit key of test databases opened with :func:`open_database`."""


def open_database(url: str, key: bytes = TEST_AUDIT_KEY) -> Database:
    """``Database.open(url)`` with the audit key bound, as the app and the CLI do."""
    from facetrace.service import audit

    database = Database.open(url)
    audit.bind(database, key)
    return database

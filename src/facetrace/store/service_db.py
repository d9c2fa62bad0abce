"""The service's database engine: the gallery's engine plus write-serialising
transactions on SQLite.

SQLite lets a transaction that has only read fail at its first write when another
writer got in between; starting every service transaction with ``BEGIN IMMEDIATE``
takes the write lock up front (waiting up to the busy timeout), which keeps audit
appends and the checks that precede them consistent. PostgreSQL needs nothing here:
:mod:`facetrace.audit` locks its head row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event

from facetrace.store.db import make_engine


def _autocommit_driver(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_conn.isolation_level = None


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def service_engine(url: str) -> Engine:
    """An engine for the service tables at ``url`` (``sqlite:///...`` or ``postgresql://...``)."""
    engine = make_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _autocommit_driver)
        event.listen(engine, "begin", _begin_immediate)
    return engine

"""The SQL store's connection: one engine and its session factories per installation,
shared by the gallery and the service layer, and the migrations. SQLite in the data
directory unless a URL is given.

Transactions on SQLite. The driver is put in autocommit mode so that SQLAlchemy, not the
sqlite3 module, decides when a transaction begins, and each one begins explicitly:

- :attr:`Database.sessions` (everything that may write: the service layer, the gallery's
  writes) begin with ``BEGIN IMMEDIATE``, taking the single writer lock up front and
  waiting for it up to the busy timeout. A transaction that has only read cannot then
  fail at its first write because another writer got in between, which keeps audit
  appends and the checks that precede them consistent.
- :attr:`Database.reads` (the gallery's searches and counts) begin deferred: under WAL
  they read a snapshot and never wait for a writer.

PostgreSQL needs neither: both factories are plain sessions, and
:mod:`facetrace.service.audit` locks its head row with ``SELECT ... FOR UPDATE``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import StoreUnavailable
from facetrace.store.revisions import MIGRATIONS, head_revision, known_revisions

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

_BEGIN = "facetrace_sqlite_begin"  # execution option: how a SQLite transaction begins


def sqlite_url(data_dir: Path) -> str:
    """URL of the default SQLite database inside ``data_dir``."""
    return f"sqlite:///{(data_dir / 'facetrace.db').resolve()}"


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers work during an ingest; foreign keys are off by default in SQLite.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event starts transactions


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get(_BEGIN, "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and explicit
    transactions (``BEGIN IMMEDIATE`` unless a connection asks for ``DEFERRED``)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # an unreachable server fails a connection in seconds, not at the OS's TCP timeout
    args = {"connect_timeout": 5} if url.startswith("postgresql") else {}
    return create_engine(url, pool_pre_ping=True, connect_args=args)


UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError)
"""What SQLAlchemy raises when the database is down, unreachable, locked or read-only."""


def unavailable_reason(error: BaseException) -> str:
    """The first line of the driver's message (``connection refused``, ``attempt to
    write a readonly database``), without SQL or parameters."""
    original = getattr(error, "orig", None) or error
    lines = str(original).strip().splitlines() or [type(original).__name__]
    return lines[0][:300]


def _where(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "the configured database"


def alembic_config(url: str) -> Config:
    """Alembic configuration pointing at the packaged migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _current_revisions(engine: Engine) -> set[str]:
    with engine.execution_options(**{_BEGIN: "DEFERRED"}).connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
        return {str(v) for v in rows}


def migrate(engine: Engine, *, upgrade: bool = True) -> None:
    """Bring the schema to the newest revision (idempotent). A database already at the
    head is left alone without loading Alembic, so opening one costs a query.

    A schema written by a newer facetrace is never touched (StoreUnavailable saying so,
    not Alembic's "Can't locate revision"). With ``upgrade`` false (a read-only
    opening, which may run beside a service of another version) an older schema is
    refused instead of upgraded; an empty database still gets the schema."""
    head = head_revision()
    current = _current_revisions(engine)
    if head is not None and current == {head}:
        return
    unknown = current - known_revisions()
    if unknown:
        raise StoreUnavailable(
            f"the database's schema ({', '.join(sorted(unknown))}) was written by a newer "
            f"facetrace than this one (newest known: {head}): upgrade facetrace, or point "
            "it at another database"
        )
    if current and not upgrade:
        raise StoreUnavailable(
            f"the database's schema ({', '.join(sorted(current))}) is older than this "
            f"facetrace's ({head}); a read-only command does not upgrade it: run a command "
            "that writes (facetrace serve, facetrace ingest) once to upgrade it"
        )
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return
    # SQLite changes a table's constraints by rebuilding it (copy, drop, rename), which
    # with foreign keys on would cascade into, or repoint, every table citing it. So, as
    # SQLite's documentation prescribes, foreign keys are off while the migrations run
    # (a pragma that only works outside a transaction) and checked before the commit.
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration broke foreign keys: {broken[:5]}")
        finally:
            raw.execute("PRAGMA foreign_keys=ON")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@dataclass(frozen=True)
class Database:
    """One installation's SQL store: its engine and the session factories on it.

    ``sessions`` may write (on SQLite they take the writer lock when their transaction
    begins); ``reads`` are for work that only reads (deferred, never waiting for a
    writer under WAL). Both share the engine's connection pool.
    """

    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    reads: sessionmaker[Session]

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True) -> Database:
        """Connect to ``url`` and migrate the schema to the newest revision (with
        ``upgrade`` false an older schema is refused, see :func:`migrate`). Raises
        StoreUnavailable, naming the database (never its password), when it cannot be
        reached or written, or its schema is not this code's."""
        try:
            engine = make_engine(url)
        except exc.NoSuchModuleError as error:
            raise StoreUnavailable(f"the database URL names an unknown kind: {error}") from error
        except (exc.ArgumentError, ValueError, ImportError) as error:  # may hold a password
            raise StoreUnavailable(
                f"the database URL is not usable ({type(error).__name__}); expected e.g. "
                "postgresql://user@host:5432/name"
            ) from error
        try:
            migrate(engine, upgrade=upgrade)
        except StoreUnavailable:
            engine.dispose()
            raise
        except UNAVAILABLE as error:
            engine.dispose()
            raise StoreUnavailable(
                f"cannot open the database {_where(url)}: {unavailable_reason(error)}"
            ) from error
        reader = engine.execution_options(**{_BEGIN: "DEFERRED"})
        return cls(
            url=url,
            engine=engine,
            sessions=session_factory(engine),
            reads=session_factory(reader),
        )

    def ping(self) -> str | None:
        """None when the database answers a query, else why not (for readiness)."""
        try:
            with self.reads() as session:
                session.execute(text("SELECT 1"))
        except UNAVAILABLE as error:
            return unavailable_reason(error)
        return None

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session

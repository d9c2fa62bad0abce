"""One database per installation: the engine, its two session factories, migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

from facetrace.errors import StoreUnavailable
from facetrace.store.db import Database, alembic_config, head_revision, sqlite_url
from tests.dbutil import database_url


def test_head_revision_is_alembics(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url(tmp_path)))
    assert head_revision() == script.get_current_head()


def test_an_up_to_date_database_opens_without_alembic(tmp_path: Path) -> None:
    Database.open(sqlite_url(tmp_path)).dispose()  # creates and migrates
    code = (
        "import sys\n"
        "from facetrace.store.db import Database, sqlite_url\n"
        f"Database.open(sqlite_url(__import__('pathlib').Path({str(tmp_path)!r}))).dispose()\n"
        "print('alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_reads_see_committed_data_while_a_writer_holds_its_transaction(
    kind: str, tmp_path: Path
) -> None:
    with database_url(kind, tmp_path) as url:
        db = Database.open(url)
        try:
            with db.sessions.begin() as s:
                s.execute(text("CREATE TABLE t (x INTEGER)"))
                s.execute(text("INSERT INTO t VALUES (1)"))
            with db.sessions() as writer, writer.begin():
                # the writer holds SQLite's write lock from its first statement...
                writer.execute(text("INSERT INTO t VALUES (2)"))
                # ...and a read goes on beside it, seeing only what was committed
                with db.reads() as reader:
                    assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
            with db.reads() as reader:
                assert reader.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
        finally:
            db.dispose()


def _stamp(url: str, revision: str) -> None:
    """Record ``revision`` as the database's schema without running a migration."""
    from alembic import command

    command.stamp(alembic_config(url), revision, purge=True)


def _recorded(url: str) -> str:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
    finally:
        engine.dispose()


def test_a_schema_from_a_newer_facetrace_is_refused_and_left_alone(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    db = Database.open(url)
    with db.engine.begin() as conn:  # a revision this code does not ship
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    db.dispose()
    for upgrade in (True, False):
        with pytest.raises(StoreUnavailable, match="newer facetrace than this one"):
            Database.open(url, upgrade=upgrade)
    assert _recorded(url) == "9999_from_the_future"


def test_a_read_only_opening_refuses_an_older_schema_and_does_not_upgrade_it(
    tmp_path: Path,
) -> None:
    from facetrace.gallery.directory import Gallery

    url = sqlite_url(tmp_path)
    Database.open(url).dispose()
    script = ScriptDirectory.from_config(alembic_config(url))
    previous = script.get_revision(head_revision()).down_revision
    assert isinstance(previous, str)
    from alembic import command

    command.downgrade(alembic_config(url), previous)
    with pytest.raises(StoreUnavailable, match="older than this facetrace's"):
        Gallery.open(tmp_path, read_only=True)
    assert _recorded(url) == previous  # not upgraded behind a service's back
    with Gallery.open(tmp_path) as gallery:  # a writer upgrades it
        assert gallery.status()["faces"] == 0
    assert _recorded(url) == head_revision()


def test_status_on_an_older_schema_says_how_to_upgrade(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from facetrace.cli.main import app

    url = sqlite_url(tmp_path)
    Database.open(url).dispose()
    previous = (
        ScriptDirectory.from_config(alembic_config(url)).get_revision(head_revision()).down_revision
    )
    assert isinstance(previous, str)
    _stamp(url, previous)
    result = CliRunner().invoke(app, ["--data", str(tmp_path), "status"])
    assert result.exit_code != 0
    assert "older than this facetrace's" in result.output
    assert "Traceback" not in result.output
    assert _recorded(url) == previous

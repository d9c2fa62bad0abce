"""One database per installation: the engine, its two session factories, migrations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

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

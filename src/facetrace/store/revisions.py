"""The packaged migrations' newest revision, read from the files with the stdlib only:
:func:`~facetrace.store.db.migrate` skips Alembic when a database is at it, and
``facetrace status`` (which loads no SQLAlchemy) answers only for a database at it."""

from __future__ import annotations

import re
from pathlib import Path

MIGRATIONS = Path(__file__).parent / "migrations"


def known_revisions() -> set[str]:
    """Every packaged migration's revision id: a database at any other was written by a
    newer facetrace, whose schema this code must not touch."""
    return _read()[0]


def head_revision() -> str | None:
    """The newest packaged migration, read from the files without importing Alembic:
    the one revision no other names as its parent (None if there is not exactly one)."""
    revisions, parents = _read()
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _read() -> tuple[set[str], set[str]]:
    """The packaged revisions and the revisions named as parents."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        source = path.read_text()
        rev = re.search(r"^revision\s*=\s*['\"]([^'\"]+)['\"]", source, re.MULTILINE)
        down = re.search(r"^down_revision\s*=\s*(.+)$", source, re.MULTILINE)
        if rev:
            revisions.add(rev.group(1))
        if down:
            parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions, parents

"""One :class:`facetrace.types.Provenance` value: its fields are declared once (and as
the SQL columns that store them), and every layer passes the value on."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from facetrace.store.service_models import SearchCandidate
from facetrace.types import Provenance
from tests.test_layers import PACKAGE

# where the fields may be spelled out: the value itself, and the tables that store it
DECLARED = {"types.py", "store/models.py", "store/service_models.py"}


def test_the_fields_are_declared_once() -> None:
    # a case and a collection have a legal basis of their own, and "collection" has many
    # meanings: the source and the capture date are the photo's only
    names = {f.name for f in fields(Provenance)} - {"collection", "legal_basis"}
    assert names == {"source_url", "source_title", "captured_date"}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("store/migrations/"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if (
                        isinstance(item, ast.AnnAssign)
                        and isinstance(item.target, ast.Name)
                        and item.target.id in names
                        and rel not in DECLARED
                    ):
                        found.append(f"{rel}:{item.lineno} {node.name}.{item.target.id}")
    assert not found, "declare a provenance field once, in Provenance:\n" + "\n".join(found)


def test_a_stored_candidate_reads_and_writes_the_value_whole(tmp_path: Path) -> None:
    from sqlalchemy import select

    from tests.dbutil import open_database

    database = open_database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        p = Provenance("register", "Act 12", "https://records.example/7", "Record 7", "2021")
        row = SearchCandidate(provenance=p)
        assert (row.collection, row.legal_basis, row.source_url) == (
            "register",
            "Act 12",
            "https://records.example/7",
        )
        assert row.provenance == p
        with database.sessions() as s:
            assert s.execute(select(SearchCandidate)).first() is None  # the table exists
    finally:
        database.dispose()

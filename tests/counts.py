"""The check that SQL's kept face counts per collection equal a fresh count of the faces."""

from __future__ import annotations

from sqlalchemy.orm import Session

from facetrace.store import repo


def assert_counts_exact(session: Session) -> dict[int, int]:
    """The kept counts (migration 0021's triggers) equal the faces counted; returns them."""
    kept = repo.stored_searchable_counts(session)
    assert kept == repo.searchable_counts(session)
    return kept

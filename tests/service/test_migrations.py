"""The migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.orm import Session, sessionmaker

import facetrace.store.models
import facetrace.store.service_models  # noqa: F401
from facetrace.store.base import Base
from facetrace.store.db import migrate, session_factory
from facetrace.store.service_models import Probe
from tests.dbutil import database_url


def test_models_match_migrations(sessions: sessionmaker[Session]) -> None:
    engine = sessions.kw["bind"]
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_probe_faces_kept_as_json_become_rows(kind: str, tmp_path: Path) -> None:
    """0004 moves the faces a probe held as JSON into probe_face rows, vector empty (the
    service embeds such a face from the stored photo on its first search)."""
    from alembic import command
    from sqlalchemy import JSON, LargeBinary, column, insert, table

    from facetrace.store.db import alembic_config, make_engine

    t = datetime(2026, 1, 1, tzinfo=UTC)
    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0003")
        old_probe = table(
            "probe",
            *(column(c) for c in ("id", "case_id", "sha256", "filename", "width", "height")),
            *(column(c) for c in ("uploaded_by", "created_at")),
            column("data", LargeBinary()),
            column("faces", JSON()),
        )
        with engine.begin() as conn:
            department = table("department", column("id"), column("name"), column("created_at"))
            conn.execute(insert(department).values(id=1, name="D", created_at=t))
            conn.execute(insert(table("app_user", *(column(c) for c in (
                "id", "username", "full_name", "password_hash", "roles", "department_id",
                "active", "created_at")))).values(
                id=1, username="u", full_name="", password_hash="x", roles="investigator",
                department_id=1, active=True, created_at=t))  # fmt: skip
            conn.execute(insert(table("case_file", *(column(c) for c in (
                "id", "number", "title", "purpose", "legal_basis", "department_id",
                "created_by", "status", "retention_until", "created_at")))).values(
                id=1, number="C", title="", purpose="trace_missing", legal_basis="lb",
                department_id=1, created_by=1, status="open", retention_until=t,
                created_at=t))  # fmt: skip
            faces = [
                {"index": 0, "box": [1, 2, 50, 60], "quality": 0.8, "quality_reasons": []},
                {"index": 1, "box": [70, 2, 120, 60], "quality": 0.2,
                 "quality_reasons": ["blurred"]},
            ]  # fmt: skip
            conn.execute(insert(old_probe).values(
                id=1, case_id=1, sha256="ab", filename="p.jpg", data=b"jpeg", width=200,
                height=100, faces=faces, uploaded_by=1, created_at=t))  # fmt: skip
        migrate(engine)  # as Database.open does (on SQLite: foreign keys off meanwhile)
        with session_factory(engine)() as s:
            probe = s.get(Probe, 1)
            assert probe is not None and probe.kind == "photo"
            assert [(f.face_index, f.box, f.quality) for f in probe.faces] == [
                (0, (1, 2, 50, 60), 0.8),
                (1, (70, 2, 120, 60), 0.2),
            ]
            assert probe.faces[1].quality_reasons == ["blurred"]
            assert all(f.vector is None and f.model_id == "" for f in probe.faces)
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_subjects_and_case_numbers_become_scoped(kind: str, tmp_path: Path) -> None:
    """0008: an external id is unique per collection and a case number per department;
    the tables citing ``subject`` and ``case_file`` keep their rows and foreign keys."""
    from alembic import command
    from sqlalchemy import column, insert, table, text
    from sqlalchemy.exc import IntegrityError

    from facetrace.store.db import alembic_config, make_engine

    t = datetime(2026, 1, 1, tzinfo=UTC)

    def tab(name: str, *cols: str) -> Any:
        return table(name, *(column(c) for c in cols))

    with database_url(kind, tmp_path) as url:
        engine = make_engine(url)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0007")
        coll = tab("collection", "id", "name", "legal_basis", "retention", "description",
                   "department_id", "created_at")  # fmt: skip
        subject = tab("subject", "id", "external_id", "name", "collection_id", "created_at")
        photo = tab("photo", "id", "sha256", "subject_id", "collection_id", "path", "source_url",
                    "source_title", "captured_date", "legal_basis", "extra", "width", "height",
                    "created_at")  # fmt: skip
        case = tab("case_file", "id", "number", "title", "purpose", "legal_basis",
                   "department_id", "created_by", "status", "retention_until", "created_at",
                   "outcome_reason")  # fmt: skip
        with engine.begin() as conn:
            for i in (1, 2):
                conn.execute(insert(tab("department", "id", "name", "created_at")).values(
                    id=i, name=f"D{i}", created_at=t))  # fmt: skip
                conn.execute(insert(coll).values(id=i, name=f"c{i}", legal_basis="", retention="",
                    description="", department_id=i, created_at=t))  # fmt: skip
            conn.execute(insert(tab("app_user", "id", "username", "full_name", "password_hash",
                "roles", "department_id", "active", "created_at")).values(id=1, username="u",
                full_name="", password_hash="x", roles="investigator", department_id=1,
                active=True, created_at=t))  # fmt: skip
            conn.execute(insert(subject).values(id=1, external_id="X", name="X", collection_id=1,
                created_at=t))  # fmt: skip
            conn.execute(insert(photo).values(id=1, sha256="a", subject_id=1, collection_id=1,
                path="", source_url="", source_title="", captured_date="", legal_basis="",
                extra="{}", width=1, height=1, created_at=t))  # fmt: skip
            conn.execute(insert(case).values(id=1, number="2026/1", title="",
                purpose="trace_missing", legal_basis="lb", department_id=1, created_by=1,
                status="open", retention_until=t, created_at=t, outcome_reason=""))  # fmt: skip
        migrate(engine)  # as Database.open does (on SQLite: foreign keys off meanwhile)
        with engine.begin() as conn:  # the same external id in another collection
            conn.execute(insert(subject).values(id=2, external_id="X", name="X", collection_id=2,
                created_at=t))  # fmt: skip
            conn.execute(insert(case).values(id=2, number="2026/1", title="",
                purpose="trace_missing", legal_basis="lb", department_id=2, created_by=1,
                status="open", retention_until=t, created_at=t, outcome_reason=""))  # fmt: skip
            assert conn.execute(text("SELECT subject_id FROM photo")).scalar_one() == 1
            if kind == "sqlite":
                assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        with pytest.raises(IntegrityError), engine.begin() as conn:  # twice in one collection
            conn.execute(insert(subject).values(id=3, external_id="X", name="X", collection_id=2,
                created_at=t))  # fmt: skip
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the photo's subject stays
            conn.execute(text("DELETE FROM subject WHERE id = 1"))
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert(case).values(id=3, number="2026/1", title="",
                purpose="trace_missing", legal_basis="lb", department_id=2, created_by=1,
                status="open", retention_until=t, created_at=t, outcome_reason=""))  # fmt: skip
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_repeated_reviews_become_versions(kind: str, tmp_path: Path) -> None:
    """0014: a reviewer's repeated reviews of one search, kept before there were versions,
    become versions 1..n of one review, only the newest in force."""
    from alembic import command
    from sqlalchemy import select, text

    from facetrace.service.accounts import Role
    from facetrace.store.db import alembic_config
    from facetrace.store.service_models import Review
    from tests.dbutil import open_database
    from tests.service.conftest import make_user
    from tests.service.test_cases import _case, _search

    with database_url(kind, tmp_path) as url:
        database = open_database(url)
        try:
            inv = make_user(database.sessions, "inv", {Role.INVESTIGATOR})
            rev = make_user(database.sessions, "rev", {Role.REVIEWER})
            other = make_user(database.sessions, "other", {Role.REVIEWER})
            case_id = _case(database.sessions, inv)
            search_id, _ = _search(database.sessions, inv, case_id)
            cfg = alembic_config(database.engine.url.render_as_string(hide_password=False))
            with database.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0013")
            with database.engine.begin() as conn:
                for who, conclusion in (
                    (rev.id, "inconclusive"),
                    (other.id, "no_candidate"),
                    (rev.id, "no_candidate"),
                    (rev.id, "inconclusive"),
                ):
                    conn.execute(text(
                        "INSERT INTO review (case_id, search_id, candidate_id, reviewer_id, "
                        "conclusion, note, created_at) VALUES (:c, :s, NULL, :r, :k, '', "
                        "CURRENT_TIMESTAMP)"), {"c": case_id, "s": search_id, "r": who,
                                                "k": conclusion})  # fmt: skip
            migrate(database.engine)
            with database.sessions() as s:
                rows = s.execute(select(Review).order_by(Review.id)).scalars().all()
                assert [(r.reviewer_id, r.version, r.is_current) for r in rows] == [
                    (rev.id, 1, False),
                    (other.id, 1, True),
                    (rev.id, 2, False),
                    (rev.id, 3, True),
                ]
        finally:
            database.dispose()


@pytest.mark.parametrize("kind", ["sqlite", "pg"])
def test_an_identification_names_its_person(kind: str, tmp_path: Path) -> None:
    """0018: an identification recorded when a case held one names the person of its
    candidate's search; a case with two identifications refuses the downgrade (nothing
    is deleted to fit the old schema)."""
    from alembic import command
    from sqlalchemy import select, text

    from facetrace.service.accounts import Role
    from facetrace.store.db import alembic_config
    from facetrace.store.service_models import Identification, Search
    from tests.dbutil import open_database
    from tests.service.conftest import make_user
    from tests.service.test_cases import _case, _search

    with database_url(kind, tmp_path) as url:
        database = open_database(url)
        try:
            inv = make_user(database.sessions, "inv", {Role.INVESTIGATOR})
            case_id = _case(database.sessions, inv)
            search_id, (candidate, _) = _search(database.sessions, inv, case_id)
            other_id, (other_candidate, _) = _search(database.sessions, inv, case_id)
            cfg = alembic_config(database.engine.url.render_as_string(hide_password=False))
            with database.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0017")
            with database.engine.begin() as conn:
                conn.execute(text(
                    "INSERT INTO identification (case_id, candidate_id, primary_identifier, "
                    "evidence, recorded_by, created_at) VALUES (:c, :k, 'dna', 'lab 7', :u, "
                    "CURRENT_TIMESTAMP)"), {"c": case_id, "k": candidate, "u": inv.id})  # fmt: skip
            migrate(database.engine)
            with database.sessions.begin() as s:
                search = s.get(Search, search_id)
                other = s.get(Search, other_id)
                assert search is not None and other is not None
                (row,) = s.scalars(select(Identification)).all()
                assert (row.probe_id, row.face_index) == (search.probe_id, search.face_index)
                s.add(
                    Identification(
                        case_id=case_id,
                        candidate_id=other_candidate,
                        probe_id=other.probe_id,
                        face_index=other.face_index,
                        primary_identifier="dna",
                        evidence="lab 8",
                        recorded_by=inv.id,
                    )
                )
            with database.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                with pytest.raises(RuntimeError, match="several identifications"):
                    command.downgrade(cfg, "0017")
            with database.sessions() as s:
                assert len(s.scalars(select(Identification)).all()) == 2
        finally:
            database.dispose()

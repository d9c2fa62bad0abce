"""Duplicates for gallery administrators: department scope, reviewed merges and undo,
"different people" decisions, every action audited."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from facetrace.service import audit, duplicates
from facetrace.service.accounts import SYSTEM, Actor, Role, actor_of, create_user
from facetrace.service.gallery_port import GalleryPort
from facetrace.store.models import Collection
from facetrace.store.service_models import AuditEntry
from tests.galleries import COPIED, OTHER_PHOTO, subject_id
from tests.service.conftest import sqlite_port

FMR = 1e-4


@pytest.fixture()
def port(planted_dir: Path) -> Iterator[GalleryPort]:
    with sqlite_port(planted_dir) as gp:
        yield gp


@pytest.fixture()
def sessions(port: GalleryPort) -> sessionmaker[Session]:
    factory: sessionmaker[Session] = port.gallery().sessions
    with factory.begin() as s:  # the registry belongs to Dept B; "lfw" is shared
        dept_b = create_user(
            s,
            actor=SYSTEM,
            username="admin-b",
            password="password-123",
            roles=frozenset({Role.ADMIN}),
            department="Dept B",
        ).department_id
        s.execute(
            update(Collection).where(Collection.name == "registry").values(department_id=dept_b)
        )
    return factory


def _actor(sessions: sessionmaker[Session], name: str, roles: set[Role], dept: str) -> Actor:
    with sessions.begin() as s:
        if name == "admin-b":
            from facetrace.service.accounts import get_user

            return actor_of(get_user(s, username=name))
        user = create_user(
            s,
            actor=SYSTEM,
            username=name,
            password="password-123",
            roles=frozenset(roles),
            department=dept,
        )
        return actor_of(user)


def _pairs(sessions: sessionmaker[Session], actor: Actor, port: GalleryPort) -> set[frozenset[str]]:
    with sessions() as s:
        found = duplicates.list_proposals(s, actor=actor, finder=port, fmr=FMR)
        s.commit()
    return {frozenset((p.a.external_id, p.b.external_id)) for p in found}


def test_nobody_sees_a_pair_with_a_collection_they_cannot_read(
    sessions: sessionmaker[Session], port: GalleryPort
) -> None:
    admin_a = _actor(sessions, "admin-a", {Role.ADMIN}, "Dept A")
    admin_b = _actor(sessions, "admin-b", {Role.ADMIN}, "Dept B")
    planted = frozenset((COPIED, f"R-{COPIED}"))
    assert planted in _pairs(sessions, admin_b, port)
    assert _pairs(sessions, admin_a, port) == set()  # the registry is Dept B's
    with sessions() as s:
        source = subject_id(s, f"R-{COPIED}")
        target = subject_id(s, COPIED)
        with pytest.raises(NotFound):  # not even its existence is told
            duplicates.merge(s, actor=admin_a, source_id=source, target_id=target, note="x")
        with pytest.raises(NotFound):
            duplicates.mark_different(
                s, actor=admin_a, subject_a=source, subject_b=target, note="x"
            )
    investigator = _actor(sessions, "ines", {Role.INVESTIGATOR}, "Dept B")
    with sessions() as s, pytest.raises(PermissionDenied):
        duplicates.list_proposals(s, actor=investigator, finder=port, fmr=FMR)


def test_merge_and_undo_are_reviewed_and_audited(
    sessions: sessionmaker[Session], port: GalleryPort
) -> None:
    admin = _actor(sessions, "admin-b", {Role.ADMIN}, "Dept B")
    with sessions() as s:
        source, target = subject_id(s, f"R-{OTHER_PHOTO}"), subject_id(s, OTHER_PHOTO)
        with pytest.raises(InvalidRequest):  # a merge says why
            duplicates.merge(s, actor=admin, source_id=source, target_id=target, note=" ")
        row = duplicates.merge(
            s,
            actor=admin,
            source_id=source,
            target_id=target,
            note="same man, same registry photo",
            score=0.95,
        )
        s.commit()
        merge_id = row.id
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) not in _pairs(sessions, admin, port)
    with sessions() as s:
        with pytest.raises(Conflict):  # merged already
            duplicates.merge(s, actor=admin, source_id=source, target_id=target, note="again")
        duplicates.undo(s, actor=admin, merge_id=merge_id, note="the registry photo is not him")
        s.commit()
        views = duplicates.recent_merges(s, actor=admin)
        assert views[0].id == merge_id and views[0].undone_by == "admin-b"
        entries = {
            e.action: e for e in s.scalars(select(AuditEntry).where(AuditEntry.actor == "admin-b"))
        }
        assert audit.verify(s).ok
    assert {"merge", "merge_undo", "duplicates_view"} <= set(entries)
    assert "same man" in entries["merge"].detail and "photos" in entries["merge"].detail
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) in _pairs(sessions, admin, port)


def test_different_people_holds_across_passes_and_blocks_a_merge(
    sessions: sessionmaker[Session], port: GalleryPort
) -> None:
    admin = _actor(sessions, "admin-b", {Role.ADMIN}, "Dept B")
    with sessions() as s:
        a, b = subject_id(s, COPIED), subject_id(s, f"R-{COPIED}")
        duplicates.mark_different(s, actor=admin, subject_a=a, subject_b=b, note="twin sister")
        s.commit()
    for _ in range(2):  # two passes, the decision holds in both
        assert frozenset((COPIED, f"R-{COPIED}")) not in _pairs(sessions, admin, port)
    with sessions() as s, pytest.raises(Conflict):
        duplicates.merge(s, actor=admin, source_id=b, target_id=a, note="merge anyway")


def test_a_merge_and_its_undo_move_the_template_and_filters_hold(
    sessions: sessionmaker[Session], port: GalleryPort
) -> None:
    """Al Pacino's two lfw faces are merged into the registry's record of him: their
    template follows them to that subject, keeps the lfw collection's group (a reader of
    the registry alone never meets it), and goes back with the undo."""
    from facetrace.index.base import Selector
    from facetrace.store.models import SubjectTemplate

    gallery = port.gallery()
    admin = _actor(sessions, "admin-b", {Role.ADMIN}, "Dept B")

    def held() -> dict[int, tuple[int, list[int]]]:
        with sessions() as s:
            return {
                t.subject_id: (t.collection_id, t.face_ids)
                for t in s.scalars(select(SubjectTemplate))
            }

    with sessions() as s:
        lfw_id, registry_id = subject_id(s, OTHER_PHOTO), subject_id(s, f"R-{OTHER_PHOTO}")
        lfw, registry = (
            s.scalars(select(Collection.id).where(Collection.name == n)).one()
            for n in ("lfw", "registry")
        )
    before = held()
    assert lfw_id in before and registry_id not in before
    with sessions() as s:
        row = duplicates.merge(s, actor=admin, source_id=lfw_id, target_id=registry_id, note="him")
        s.commit()
        merge_id = row.id
    after = held()
    assert lfw_id not in after and after[registry_id] == before[lfw_id]
    # the gallery's template index catches up from SQL (the merge ran in the service's
    # session, not through the gallery)
    gallery.sync_templates()
    with sessions() as s:
        vecs = np.stack(
            [
                np.frombuffer(v, np.float32)
                for v in s.scalars(
                    select(SubjectTemplate.vector).where(SubjectTemplate.subject_id == registry_id)
                )
            ]
        )
    assert gallery.templates.search(vecs, 1, None)[0][0].subject_id == registry_id
    assert not any(gallery.templates.search(vecs, 5, frozenset({registry})))
    # searched with the registry only, the subject's lfw template stays out
    (_, above, below), *_ = gallery.search_vectors(
        vecs[:1], selector=Selector(groups=frozenset({registry})), include_below=True
    )
    assert all(
        c.template is None and c.info.provenance.collection == "registry" for c in above + below
    )
    with sessions() as s:
        duplicates.undo(s, actor=admin, merge_id=merge_id, note="not him")
        s.commit()
    assert held() == before
    gallery.sync_templates()
    assert {h.subject_id for h in gallery.templates.search(vecs, 1, frozenset({lfw}))[0]} == {
        lfw_id
    }

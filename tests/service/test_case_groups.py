"""Unknown persons of a case, grouped from its probes' real faces; a group's template
becomes one searchable face of the case."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from facetrace.errors import Conflict, InvalidRequest, NotFound, RuleViolation
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.server.ratelimit import RateLimiter
from facetrace.service import case_groups, cases, reviews, searches
from facetrace.service.accounts import SYSTEM, Actor, Role, actor_of, create_user
from facetrace.service.gallery_port import GalleryPort
from facetrace.store.service_models import AuditEntry, Probe, User
from tests.service.conftest import port_analyser, port_searcher, sqlite_port

JOLIE = ["id01/img1.jpg", "id01/img2.jpg", "id01/img4.jpg"]
ANISTON = ["id04/img3.jpg", "id04/img53.jpg"]


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GalleryPort]:
    data = tmp_path_factory.mktemp("case") / "data"
    data.mkdir()
    with sqlite_port(data) as gp:
        yield gp


Setup = tuple[sessionmaker[Session], Actor, int]


@pytest.fixture(scope="module")
def mci(port: GalleryPort, faces_dir: Path) -> Setup:
    """A case holding six probe photos: three of one woman, two of another, and a couple
    photo with the first; embedded once with the real engine for the module."""
    sessions: sessionmaker[Session] = port.gallery().sessions
    ids = faces_dir / "webphotos13" / "identities"
    with sessions.begin() as s:
        inv = actor_of(
            create_user(
                s,
                actor=SYSTEM,
                username="ines",
                password="password-123",
                roles=frozenset({Role.INVESTIGATOR}),
                department="Dept A",
            )
        )
        case = cases.create_case(
            s,
            actor=inv,
            number="MCI-7",
            purpose="identify_deceased",
            legal_basis="Art. 6",
            retention_days=30,
        )
        for name in JOLIE + ANISTON + ["../multi_face/couple.jpg"]:
            data = (ids / name).read_bytes()
            found = searches.photo_faces(port_analyser(port).analyse(data, source=name))
            searches.add_probe(s, actor=inv, case_id=case.id, data=data, filename=name, found=found)
        return sessions, inv, case.id


def test_a_case_groups_into_its_unknown_persons(mci: Setup) -> None:
    sessions, inv, case_id = mci
    with sessions() as s:
        persons = case_groups.group_case(s, actor=inv, case_id=case_id)
        probes = {p.id: p.filename for p in s.scalars(select(Probe))}
    by_person = [{probes[f.probe_id] for f in p.faces} for p in persons]
    jolie = next(g for g in by_person if JOLIE[0] in g)
    assert set(JOLIE) <= jolie and not set(ANISTON) & jolie
    assert "../multi_face/couple.jpg" in jolie  # she is in the couple photo too
    assert any(set(ANISTON) <= g for g in by_person)
    # the largest person first, best face first
    assert len(persons[0].faces) >= len(persons[-1].faces)
    assert persons[0].faces[0].quality >= persons[0].faces[-1].quality


def test_a_person_becomes_one_searchable_template(port: GalleryPort, mci: Setup) -> None:
    sessions, inv, case_id = mci
    with sessions() as s:
        person = case_groups.group_case(s, actor=inv, case_id=case_id)[0]
        members = [(f.probe_id, f.face_index) for f in person.faces]
        row = case_groups.adopt_person(s, actor=inv, case_id=case_id, faces=members)
        s.commit()
        assert row.origin == "person" and len(row.extra["person"]) == len(members)
        template = np.frombuffer(row.vector or b"", dtype=np.float32)
        assert abs(float(np.linalg.norm(template)) - 1) < 1e-5
        # the template is searched like any probe face: a vector search, recorded
        search = searches.search_probe(
            s,
            actor=inv,
            probe_id=row.probe_id,
            face=row.face_index,
            force=True,
            searcher=port_searcher(port),
            sessions=sessions,
            limiter=RateLimiter(limit=100),
        )
        s.commit()
        assert (search.probe_id, search.face_index) == (row.probe_id, row.face_index)
        # templates are not grouped again
        again = case_groups.group_case(s, actor=inv, case_id=case_id)
        assert sum(len(p.faces) for p in again) == sum(
            len(p.faces) for p in case_groups.group_case(s, actor=inv, case_id=case_id)
        )
        assert all(
            (f.probe_id, f.face_index) != (row.probe_id, row.face_index)
            for p in again
            for f in p.faces
        )
        with pytest.raises(InvalidRequest):
            case_groups.adopt_person(s, actor=inv, case_id=case_id, faces=[])
        with pytest.raises(NotFound):
            case_groups.adopt_person(s, actor=inv, case_id=case_id, faces=[(9999, 0)])
    other = _other_department(sessions)
    with sessions() as s, pytest.raises(NotFound):
        case_groups.group_case(s, actor=other, case_id=case_id)


def _other_department(sessions: sessionmaker[Session]) -> Actor:
    with sessions.begin() as s:
        return actor_of(
            create_user(
                s,
                actor=SYSTEM,
                username="olga",
                password="password-123",
                roles=frozenset({Role.INVESTIGATOR}),
                department="Dept B",
            )
        )


def _person_of(persons: list[case_groups.UnknownPerson], ref: tuple[int, int]) -> int:
    return next(p.number for p in persons if ref in p.refs)


def test_decisions_bind_every_later_grouping(mci: Setup) -> None:
    """'Different people' splits a group and 'same person' joins two, in every grouping
    after (a re-run included) until revoked; contradictions are refused, all audited."""
    sessions, inv, case_id = mci
    with sessions() as s:
        probes = {p.filename: p.id for p in s.scalars(select(Probe))}
        before = case_groups.group_case(s, actor=inv, case_id=case_id)
    jolie = [(probes[n], 0) for n in JOLIE]
    aniston = (probes[ANISTON[0]], 0)
    assert _person_of(before, jolie[0]) == _person_of(before, jolie[1])
    assert _person_of(before, jolie[0]) != _person_of(before, aniston)
    with sessions.begin() as s:
        (split,) = case_groups.decide(
            s, actor=inv, case_id=case_id, decision="different", faces=jolie[:2], note="ears"
        )
        joined = case_groups.decide(
            s, actor=inv, case_id=case_id, decision="same", faces=[jolie[2], aniston]
        )
        # the same decision again records nothing
        assert (
            case_groups.decide(
                s, actor=inv, case_id=case_id, decision="same", faces=[aniston, jolie[2]]
            )
            == []
        )
    for _ in range(2):  # a re-run finds the same: decisions are kept, not re-guessed
        with sessions() as s:
            after = case_groups.group_case(s, actor=inv, case_id=case_id)
        assert _person_of(after, jolie[0]) != _person_of(after, jolie[1])
        assert _person_of(after, jolie[2]) == _person_of(after, aniston)
        assert next(p for p in after if aniston in p.refs).confirmed
    with sessions() as s:
        # a contradiction is refused and changes nothing
        with pytest.raises(Conflict):
            case_groups.decide(
                s, actor=inv, case_id=case_id, decision="different", faces=[aniston, jolie[2]]
            )
        s.rollback()
        with pytest.raises(InvalidRequest):
            case_groups.decide(s, actor=inv, case_id=case_id, decision="maybe", faces=jolie)
        with pytest.raises(InvalidRequest):
            case_groups.decide(s, actor=inv, case_id=case_id, decision="same", faces=jolie[:1])
        with pytest.raises(NotFound):
            case_groups.decide(
                s, actor=inv, case_id=case_id, decision="same", faces=[jolie[0], (9999, 0)]
            )
        s.rollback()
        assert len(case_groups.case_decisions(s, actor=inv, case_id=case_id)) == 2
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
        assert actions.count("person_decision") == 2
    with sessions.begin() as s:
        with pytest.raises(InvalidRequest):  # a revoke says why
            case_groups.revoke(s, actor=inv, case_id=case_id, decision_id=split.id, note=" ")
        for d in [split, *joined]:
            case_groups.revoke(s, actor=inv, case_id=case_id, decision_id=d.id, note="wrong")
    with sessions() as s:
        again = case_groups.group_case(s, actor=inv, case_id=case_id)
        assert case_groups.case_decisions(s, actor=inv, case_id=case_id) == []
        assert [p.refs for p in again] == [p.refs for p in before]
        actions = [e.action for e in s.scalars(select(AuditEntry))]
        assert actions.count("person_decision_revoke") == 2
    other = actor_of_other(sessions)
    with sessions() as s, pytest.raises(NotFound):
        case_groups.decide(s, actor=other, case_id=case_id, decision="same", faces=jolie)


def actor_of_other(sessions: sessionmaker[Session]) -> Actor:
    with sessions() as s:
        user = s.scalars(select(User).where(User.username == "olga")).first()
    return actor_of(user) if user is not None else _other_department(sessions)


def _reviewer(sessions: sessionmaker[Session], name: str) -> Actor:
    with sessions.begin() as s:
        return actor_of(
            create_user(
                s,
                actor=SYSTEM,
                username=name,
                password="password-123",
                roles=frozenset({Role.REVIEWER}),
                department="Dept A",
            )
        )


def test_two_persons_of_one_case_are_identified_each(
    port: GalleryPort, mci: Setup, faces_dir: Path, tmp_path: Path
) -> None:
    """Each unknown person is searched as its template, reviewed and identified on its
    own; the identification covers the person's faces, so a search of one of them alone
    takes no review afterwards."""
    sessions, inv, case_id = mci
    r1, r2 = _reviewer(sessions, "rafael"), _reviewer(sessions, "rita")
    # a few records for the searches to name (strangers to both: candidates are leads)
    records = tmp_path / "records"
    for person in ("Abdoulaye_Wade", "Al_Pacino", "Colin_Powell"):
        (records / person).mkdir(parents=True)
        shutil.copy(faces_dir / "lfw" / "images" / person / f"{person}_0001.jpg", records / person)
    ingest(port.gallery(), scan_folder(records, collection="registry", legal_basis="test"))
    with sessions() as s:
        probes = {p.filename: p.id for p in s.scalars(select(Probe))}
        persons = case_groups.group_case(s, actor=inv, case_id=case_id)
    wanted = {name: (probes[name], 0) for name in (JOLIE[0], ANISTON[0])}
    found: dict[str, tuple[int, int]] = {}
    for name, ref in wanted.items():
        person = next(p for p in persons if ref in p.refs)
        with sessions.begin() as s:
            row = case_groups.adopt_person(s, actor=inv, case_id=case_id, faces=person.refs)
            template = (row.probe_id, row.face_index)
        with sessions() as s:
            search = searches.search_probe(
                s,
                actor=inv,
                probe_id=template[0],
                face=template[1],
                force=True,
                searcher=port_searcher(port),
                sessions=sessions,
                limiter=RateLimiter(limit=100),
            )
            # a subject not named for the other person (one subject, one person)
            taken = {sid for sid, _ in found.values()}
            candidate = next(c for c in search.candidates if c.subject_external_id not in taken)
            for who in (r1, r2):
                reviews.record_review(
                    s,
                    actor=who,
                    search_id=search.id,
                    conclusion="potential_candidate",
                    candidate_id=candidate.id,
                )
            ident = reviews.record_identification(
                s,
                actor=inv,
                case_id=case_id,
                candidate_id=candidate.id,
                primary_identifier="dental_records",
                evidence=f"odontogram for {name}",
            )
            assert (ident.probe_id, ident.face_index) == template
            found[name] = (candidate.subject_external_id, search.id)
            s.commit()
    with sessions() as s:
        case = cases.get_case(s, actor=inv, case_id=case_id)
        assert case.status == "identified"
        assert len(reviews.identifications(s, case=case)) == 2
        # a member face of an identified person searched alone: no review any more
        alone = searches.search_probe(
            s,
            actor=inv,
            probe_id=probes[ANISTON[1]],
            face=0,
            force=True,
            searcher=port_searcher(port),
            sessions=sessions,
            limiter=RateLimiter(limit=100),
        )
        s.commit()
    with sessions.begin() as s, pytest.raises(RuleViolation, match="identified already"):
        reviews.record_review(s, actor=r1, search_id=alone.id, conclusion="no_candidate")

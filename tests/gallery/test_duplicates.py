"""Possible duplicate subjects on a real gallery: planted duplicates in a second
collection are proposed, decisions and merges hold on the next pass, merges undo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.errors import Conflict
from facetrace.gallery.directory import Gallery
from facetrace.gallery.duplicates import DuplicatePair, find_duplicates
from facetrace.imaging import load_image
from facetrace.store import duplicates as links
from facetrace.store import repo
from tests.galleries import COPIED, OTHER_PHOTO, subject_id


@pytest.fixture()
def planted(planted_dir: Path) -> Iterator[Gallery]:
    with Gallery.open(planted_dir) as g:
        yield g


def _names(pairs: list[DuplicatePair]) -> set[frozenset[str]]:
    return {frozenset((p.a.external_id, p.b.external_id)) for p in pairs}


def _subject_id(gallery: Gallery, external_id: str) -> int:
    with gallery.session() as s:
        return subject_id(s, external_id)


def test_planted_duplicates_are_proposed_and_only_they(planted: Gallery) -> None:
    pairs = find_duplicates(planted)
    found = _names(pairs)
    assert frozenset((COPIED, f"R-{COPIED}")) in found
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) in found
    # no two different people of the gallery are proposed
    assert all(any(n.startswith("R-") for n in pair) for pair in found)
    best = next(p for p in pairs if COPIED in (p.a.external_id, p.b.external_id))
    assert best.across_collections and best.best_score > 0.98
    assert best.false_match_rate is not None and best.false_match_rate < 1e-4
    assert {best.a.collection, best.b.collection} == {"lfw", "registry"}
    assert best.pairs == 2 and best.face_pairs >= 1  # two photos against the scan


def test_a_pass_over_some_collections_never_pairs_others(planted: Gallery) -> None:
    with planted.session() as s:
        lfw_only = frozenset(repo.collection_ids(s, ["lfw"]))
    assert find_duplicates(planted, collections=lfw_only) == []


def test_a_different_people_decision_survives_the_next_pass(planted: Gallery) -> None:
    a, b = _subject_id(planted, COPIED), _subject_id(planted, f"R-{COPIED}")
    with planted.sessions.begin() as s:
        links.record_different(s, subject_a=b, subject_b=a, note="twins", decided_by="ines")
    found = _names(find_duplicates(planted))
    assert frozenset((COPIED, f"R-{COPIED}")) not in found
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) in found
    with planted.sessions.begin() as s, pytest.raises(Conflict):
        links.merge_subjects(s, source_id=b, target_id=a, note="x", merged_by="ines")


def test_a_merge_moves_photos_with_provenance_and_undoes(
    planted: Gallery, probe_of: dict[str, Path]
) -> None:
    source, target = _subject_id(planted, f"R-{OTHER_PHOTO}"), _subject_id(planted, OTHER_PHOTO)
    with planted.session() as s:
        before = repo.subject_face_ids(s, OTHER_PHOTO)
    with planted.sessions.begin() as s:
        merge = links.merge_subjects(
            s, source_id=source, target_id=target, note="same man", merged_by="ines"
        )
    with planted.session() as s:
        moved = repo.subject_face_ids(s, OTHER_PHOTO)
        info = repo.face_info(s, moved)
    assert len(moved) == len(before) + 1
    planted_face = next(i for fid, i in info.items() if fid not in before)
    # provenance and collection unchanged
    assert (planted_face.provenance.collection, planted_face.provenance.legal_basis) == (
        "registry",
        "test",
    )
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) not in _names(find_duplicates(planted))
    # a search now names one subject for both records
    hits = planted.search(load_image(probe_of[OTHER_PHOTO]).pixels, k=5, force=True)
    top = [c.info.subject_external_id for c in hits[0].candidates]
    assert top[0] == OTHER_PHOTO and f"R-{OTHER_PHOTO}" not in top
    with planted.sessions.begin() as s:
        links.undo_merge(s, merge_id=merge.id, note="wrong", undone_by="ana")
    with planted.session() as s:
        assert sorted(repo.subject_face_ids(s, OTHER_PHOTO)) == sorted(before)
        assert len(repo.subject_face_ids(s, f"R-{OTHER_PHOTO}")) == 1
    assert frozenset((OTHER_PHOTO, f"R-{OTHER_PHOTO}")) in _names(find_duplicates(planted))
    with planted.sessions.begin() as s, pytest.raises(Conflict):
        links.undo_merge(s, merge_id=merge.id, note="again", undone_by="ana")


def test_a_merged_subject_is_deleted_only_once_its_merge_is_undone(planted: Gallery) -> None:
    """A delete must neither fail on the merge history's foreign keys nor take the photos
    a live merge moved from another record with it."""
    from facetrace.errors import RuleViolation

    source, target = _subject_id(planted, f"R-{OTHER_PHOTO}"), _subject_id(planted, OTHER_PHOTO)
    with planted.session() as s:
        faces_before = len(repo.subject_face_ids(s, OTHER_PHOTO))
    with planted.sessions.begin() as s:
        merge = links.merge_subjects(s, source_id=source, target_id=target, note="", merged_by="i")
    for external_id in (OTHER_PHOTO, f"R-{OTHER_PHOTO}"):  # either side, refused
        with pytest.raises(RuleViolation, match="undo the merge first"):
            planted.delete_subject(external_id)
    with planted.session() as s:  # nothing changed
        assert len(repo.subject_face_ids(s, OTHER_PHOTO)) == faces_before + 1
    with planted.sessions.begin() as s:
        links.undo_merge(s, merge_id=merge.id, note="wrong", undone_by="ana")
        links.record_different(s, subject_a=source, subject_b=target, note="", decided_by="i")
    # an undone merge and a decision are history: the delete goes through
    assert planted.delete_subject(OTHER_PHOTO) == faces_before
    with planted.session() as s:
        assert len(repo.subject_face_ids(s, f"R-{OTHER_PHOTO}")) == 1  # the other record stays
        with pytest.raises(Exception, match="no subject"):
            repo.find_subject(s, OTHER_PHOTO, None)

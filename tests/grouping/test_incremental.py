from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import InvalidRequest
from facetrace.grouping.incremental import PENDING, assign
from facetrace.index.flat import FlatIndex
from tests.grouping.conftest import clustered

Grouped = tuple[FlatIndex, dict[int, int], npt.NDArray[np.float32]]


@pytest.fixture()
def grouped() -> Grouped:
    """Groups 0 (6 faces) and 1 (4 faces) in an index under ids 100.., plus newcomers."""
    vectors, labels = clustered([7, 5, 1], seed=2)
    old = np.r_[0:6, 7:11]
    index = FlatIndex(vectors.shape[1])
    index.add(100 + old, vectors[old])
    group_of = {100 + int(i): int(labels[i]) for i in old}
    return index, group_of, vectors


def test_a_face_whose_neighbours_agree_joins_their_group(grouped: Grouped) -> None:
    index, group_of, vectors = grouped
    got = assign(index, vectors[[6, 11]], group_of=group_of, threshold=0.9)
    assert got.groups.tolist() == [0, 1]
    assert got.agreeing.tolist() == [6, 4]


def test_a_stranger_or_a_forbidden_group_waits(grouped: Grouped) -> None:
    index, group_of, vectors = grouped
    got = assign(index, vectors[[12, 6]], group_of=group_of, threshold=0.9, forbidden={1: {0}})
    assert got.groups.tolist() == [PENDING, PENDING]


def test_one_agreeing_neighbour_of_a_larger_group_is_not_enough(grouped: Grouped) -> None:
    index, group_of, vectors = grouped
    lonely = {k: v for k, v in group_of.items() if v == 1 or k == 100}
    got = assign(index, vectors[[6]], group_of=lonely, threshold=0.9, k=10)
    # of its neighbours only face 100 is grouped (group 0, of size 1 here): joins
    assert got.groups.tolist() == [0]
    got = assign(index, vectors[[6]], group_of=group_of, threshold=0.9, k=1)
    assert got.groups.tolist() == [PENDING]  # one vote for a group of six


def test_a_split_vote_waits(grouped: Grouped) -> None:
    index, group_of, vectors = grouped
    mixed = dict(group_of)
    for face in (100, 101, 102):
        mixed[face] = 1  # half of group 0 now says "group 1"
    got = assign(index, vectors[[6]], group_of=mixed, threshold=0.9)
    assert got.groups.tolist() == [PENDING]


def test_bad_settings_are_refused(grouped: Grouped) -> None:
    index, group_of, vectors = grouped
    with pytest.raises(InvalidRequest):
        assign(index, vectors[:1], group_of=group_of, threshold=0.9, min_share=0)

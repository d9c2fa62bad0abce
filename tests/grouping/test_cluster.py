from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from facetrace.calibration import packaged_calibration
from facetrace.errors import Conflict, InvalidRequest
from facetrace.grouping.cluster import Algorithm, by_size, cluster, cluster_for_precision
from facetrace.grouping.constraints import Constraints
from facetrace.grouping.graph import build_index, knn_graph
from facetrace.grouping.metrics import score
from tests.grouping.conftest import People, clustered

T = 0.93


def _bridged() -> npt.NDArray[np.float32]:
    """Two tight groups of five (rows 0-4, 5-9) whose centres score ~0.8, and one face
    (row 10) half-way, scoring ~0.95 with both: a bridge a single link crosses."""
    rng = np.random.default_rng(1)
    ca = rng.standard_normal(64)
    ca /= np.linalg.norm(ca)
    other = rng.standard_normal(64)
    other -= other @ ca * ca
    other /= np.linalg.norm(other)
    cb = 0.8 * ca + 0.6 * other
    faces = [c + 0.01 * rng.standard_normal(64) for c in [ca] * 5 + [cb] * 5]
    faces.append(ca + cb)
    v = np.stack(faces)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _groups(labels: npt.NDArray[np.int64]) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(labels == g).tolist()) for g in np.unique(labels)}


@pytest.mark.parametrize("method", list(Algorithm))
def test_every_algorithm_finds_clear_groups(method: Algorithm, three_people: People) -> None:
    vectors, truth = three_people
    graph = knn_graph(build_index(vectors), vectors, min_score=0.9, k=8)
    labels = cluster(graph, method, threshold=0.9, vectors=vectors)
    assert score(labels, truth).pairwise_f1 == 1.0
    assert labels[0] == 0 and labels[13] == 3  # numbered by size: the six first


def test_a_single_bridge_merges_linkage_by_one_edge_but_not_by_group_score() -> None:
    v = _bridged()
    graph = knn_graph(build_index(v), v, min_score=T, k=10)
    a, b = frozenset(range(5)), frozenset(range(5, 10))
    for method in (Algorithm.COMPONENTS, Algorithm.DENSITY):
        assert len(_groups(cluster(graph, method, threshold=T, vectors=v))) == 1, method
    for method in (Algorithm.AVERAGE, Algorithm.WHISPERS, Algorithm.LEIDEN):
        found = _groups(cluster(graph, method, threshold=T, vectors=v))
        assert not any(a <= g and b <= g for g in found), method
        assert any(a <= g for g in found) and any(b <= g for g in found), method


@pytest.mark.parametrize("method", list(Algorithm))
def test_cannot_link_is_never_broken(method: Algorithm) -> None:
    v = _bridged()
    graph = knn_graph(build_index(v), v, min_score=T, k=10)
    no = Constraints.of(cannot_link=[(0, 5), (10, 0)])
    labels = cluster(graph, method, threshold=T, vectors=v, constraints=no)
    assert labels[0] != labels[5] and labels[10] != labels[0]
    assert len({labels[i] for i in range(5)}) == 1  # the group itself stays whole


@pytest.mark.parametrize("method", list(Algorithm))
def test_must_link_joins_faces_no_edge_joins(method: Algorithm, three_people: People) -> None:
    vectors, _ = three_people
    graph = knn_graph(build_index(vectors), vectors, min_score=0.9, k=8)
    yes = Constraints.of(must_link=[(13, 6)])
    labels = cluster(graph, method, threshold=0.9, vectors=vectors, constraints=yes)
    assert labels[13] == labels[6]
    assert len(set(labels[:6].tolist())) == 1


def test_contradicting_decisions_are_refused(three_people: People) -> None:
    vectors, _ = three_people
    graph = knn_graph(build_index(vectors), vectors, min_score=0.9)
    both = Constraints.of(must_link=[(0, 13), (13, 7)], cannot_link=[(7, 0)])
    with pytest.raises(Conflict):
        cluster(graph, threshold=0.9, vectors=vectors, constraints=both)
    with pytest.raises(InvalidRequest):
        cluster(graph, threshold=0.9, vectors=vectors, constraints=Constraints.of([(0, 99)]))
    with pytest.raises(InvalidRequest):
        Constraints.of(must_link=[(1, 2, 3)])
    with pytest.raises(InvalidRequest):
        cluster(graph, "kmeans", threshold=0.9, vectors=vectors)
    with pytest.raises(InvalidRequest):
        cluster(graph, Algorithm.AVERAGE, threshold=0.9)  # average linkage needs vectors


def test_average_linkage_on_the_graph_matches_full_average_linkage() -> None:
    """The reference: scipy's UPGMA over every pair, cut at the same score."""
    vectors, _ = clustered([4, 3, 3, 2, 2, 1, 1, 1] * 6, dim=16, spread=0.6, seed=5)
    t = 0.8
    graph = knn_graph(build_index(vectors), vectors, min_score=t, k=len(vectors) - 1)
    ours = cluster(graph, Algorithm.AVERAGE, threshold=t, vectors=vectors)
    tree = linkage(vectors.astype(np.float64), "average", metric="cosine")
    reference = fcluster(tree, 1 - t, "distance")
    assert _groups(ours) == _groups(reference.astype(np.int64))
    assert len(_groups(ours)) < len(vectors)  # the cut is not trivial


def test_groups_are_numbered_by_size() -> None:
    assert by_size(np.array([7, 3, 3, 9, 9, 9])).tolist() == [2, 1, 1, 0, 0, 0]


def _planted(
    n: int, pairs: list[float], groups: int = 0, size: int = 10, seed: int = 3
) -> npt.NDArray[np.float32]:
    """``n`` random 128-d unit vectors (strangers score ~0 with each other); then faces
    0-1, 2-3, ... are made pairs scoring ``pairs[i]``; then ``groups`` people of ``size``
    faces whose members score ~0.955 with each other take the next rows."""
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, 128))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for i, s in enumerate(pairs):
        a, b = v[2 * i], v[2 * i + 1]
        u = b - (b @ a) * a
        v[2 * i + 1] = s * a + np.sqrt(1 - s * s) * u / np.linalg.norm(u)
    start = 2 * len(pairs)
    for g in range(groups):
        rows = slice(start + g * size, start + (g + 1) * size)
        centre = v[rows][0]
        v[rows] = np.sqrt(0.955) * centre + np.sqrt(0.045) * v[rows]
        v[rows] /= np.linalg.norm(v[rows], axis=1, keepdims=True)
    return v.astype(np.float32)


def test_a_set_of_few_true_pairs_groups_at_a_stricter_threshold() -> None:
    """2,000 faces at FMR 5e-5 expect ~100 strangers' pairs above the floor: beside 20
    grouped pairs that would be most of them, so the threshold rises until the table
    expects at most 2 % of the grouped pairs to be strangers; the 0.99 pairs stay, the
    0.95 ones (as likely look-alikes as mates here) are left apart."""
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None
    floor = cal.threshold_for_fmr(5e-5)
    v = _planted(2000, [0.99] * 10 + [0.95] * 10)
    graph = knn_graph(build_index(v), v, min_score=floor, k=5)
    at_floor = _groups(cluster(graph, threshold=floor, vectors=v))
    assert sum(len(g) == 2 for g in at_floor) == 20
    labels, t = cluster_for_precision(graph, floor=floor, calibration=cal, vectors=v)
    found = _groups(labels)
    assert {frozenset({2 * i, 2 * i + 1}) for i in range(10)} <= found
    assert not any(len(g) > 1 and min(g) >= 20 for g in found)
    assert all(len(g) == 1 for g in found if min(g) >= 20)
    held = sum(len(g) * (len(g) - 1) / 2 for g in found)
    assert cal.false_match_rate(t) * 2000 * 1999 / 2 <= 0.02 * held
    # a decision still holds: a 'same person' pair of 0.95 stays one group
    yes = Constraints.of([(20, 21)])
    labels, _ = cluster_for_precision(
        graph, floor=floor, calibration=cal, vectors=v, constraints=yes
    )
    assert labels[20] == labels[21]
    # without a table the floor, an uncalibrated number, is all there is
    labels, t = cluster_for_precision(graph, floor=floor, calibration=None, vectors=v)
    assert t == floor and _groups(labels) == at_floor
    for bad in (0.0, 1.0):
        with pytest.raises(InvalidRequest):
            cluster_for_precision(graph, floor=floor, calibration=cal, vectors=v, share=bad)


def test_a_set_of_many_true_pairs_keeps_the_floor() -> None:
    """The same strangers beside 150 people of ten faces each (6,750 true pairs): the
    expected ~100 strangers' pairs are under 2 %, so the target rate's threshold stands."""
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None
    floor = cal.threshold_for_fmr(5e-5)
    v = _planted(2000, [0.95] * 10, groups=150)
    graph = knn_graph(build_index(v), v, min_score=floor, k=12)
    labels, t = cluster_for_precision(graph, floor=floor, calibration=cal, vectors=v)
    assert t == floor
    assert _groups(labels) == _groups(cluster(graph, threshold=floor, vectors=v))
    assert sum(len(g) == 10 for g in _groups(labels)) == 150

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.cluster.hierarchy import fcluster, linkage

from facetrace.errors import Conflict, InvalidRequest
from facetrace.grouping.cluster import Algorithm, by_size, cluster
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

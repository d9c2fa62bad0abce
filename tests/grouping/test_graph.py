from __future__ import annotations

import numpy as np
import pytest

from facetrace.calibration import packaged_calibration
from facetrace.errors import InvalidRequest
from facetrace.grouping.graph import (
    REFERENCE_FACES,
    NeighbourGraph,
    build_index,
    edge_threshold,
    fmr_for_size,
    from_pairs,
    knn_graph,
    neighbour_graph,
    two_hop,
)
from facetrace.index.base import Selector
from facetrace.index.flat import FlatIndex
from tests.grouping.conftest import People, clustered


def _pairs(graph: NeighbourGraph) -> set[tuple[int, int]]:
    return set(zip(graph.src.tolist(), graph.dst.tolist(), strict=True))


def test_edges_join_faces_of_one_group_only(three_people: People) -> None:
    vectors, labels = three_people
    graph = knn_graph(build_index(vectors), vectors, min_score=0.9, k=8)
    assert graph.edges > 0
    assert all(labels[a] == labels[b] for a, b in _pairs(graph))
    assert np.all(graph.src < graph.dst)
    assert np.all(graph.score >= 0.9)
    # every pair of the group of six is an edge (k covers the group)
    six = {(a, b) for a in range(6) for b in range(a + 1, 6)}
    assert six <= _pairs(graph)
    assert graph.degrees()[13] == 0  # the face on its own


def test_index_ids_map_back_to_rows_and_strangers_are_dropped(three_people: People) -> None:
    vectors, _ = three_people
    index = FlatIndex(vectors.shape[1])
    ids = np.arange(100, 100 + 3 * len(vectors), 3, dtype=np.int64)
    index.add(ids, vectors)
    # a face in the index that is not a node: a copy of face 0 under another id
    index.add(np.array([7], dtype=np.int64), vectors[:1])
    graph = knn_graph(index, vectors, ids=ids, min_score=0.9, k=8)
    plain = knn_graph(build_index(vectors), vectors, min_score=0.9, k=8)
    assert _pairs(graph) == _pairs(plain)


def test_a_selector_limits_the_neighbours(three_people: People) -> None:
    vectors, labels = three_people
    index = FlatIndex(vectors.shape[1])
    index.add(np.arange(len(vectors), dtype=np.int64), vectors, groups=labels)
    graph = knn_graph(index, vectors, min_score=0.9, selector=Selector(groups=frozenset({0})))
    assert graph.edges and all(labels[a] == 0 and labels[b] == 0 for a, b in _pairs(graph))


def test_an_hnsw_index_finds_the_edges_of_an_exact_scan() -> None:
    vectors, _ = clustered([5] * 400, dim=32, seed=3)
    exact = knn_graph(build_index(vectors), vectors, min_score=0.9, k=10)
    approx = knn_graph(build_index(vectors, exact_max=100), vectors, min_score=0.9, k=10)
    assert type(build_index(vectors, exact_max=100)).__name__ == "HnswIndex"
    found = _pairs(approx) & _pairs(exact)
    assert len(found) >= 0.95 * exact.edges


def test_from_pairs_keeps_each_pair_once_with_its_best_score() -> None:
    g = from_pairs(
        4,
        np.array([0, 1, 2, 3]),
        np.array([1, 0, 2, 1]),
        np.array([0.5, 0.7, 1.0, 0.6], dtype=np.float32),
    )
    assert _pairs(g) == {(0, 1), (1, 3)}
    assert g.score[list(g.dst).index(1)] == pytest.approx(0.7)


def test_bad_graph_requests_are_refused(three_people: People) -> None:
    vectors, _ = three_people
    index = build_index(vectors)
    with pytest.raises(InvalidRequest):
        knn_graph(index, vectors, min_score=0.9, k=0)
    with pytest.raises(InvalidRequest):
        knn_graph(index, vectors, min_score=0.9, ids=np.arange(3))
    with pytest.raises(InvalidRequest):
        knn_graph(index, vectors, min_score=0.9, ids=np.zeros(len(vectors), dtype=np.int64))


def test_the_threshold_comes_from_the_calibration_table() -> None:
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None
    strict, loose = edge_threshold(cal, 1e-6, fallback=0.9), edge_threshold(cal, 1e-4, fallback=0.9)
    assert strict > loose
    assert cal.false_match_rate(loose) == pytest.approx(1e-4, rel=0.05)
    assert edge_threshold(None, 1e-4, fallback=0.91) == 0.91
    for bad in (0.0, 1.0, -1e-3):
        with pytest.raises(InvalidRequest):
            edge_threshold(cal, bad, fallback=0.9)


def test_two_hops_find_the_pairs_an_approximate_search_missed() -> None:
    """A person's photos linked only in a chain (what a lossy index may give) get every
    pair above the threshold back; nothing below it, nor between people, is added."""
    vectors, labels = clustered([6, 5, 1], dim=32, seed=4)
    exact = knn_graph(build_index(vectors), vectors, min_score=0.9, k=10)
    chain = exact.without(np.abs(exact.src - exact.dst) != 1)
    assert chain.edges < exact.edges
    closed = chain
    for _ in range(5):  # each pass closes one more hop
        closed = two_hop(closed, vectors, min_score=0.9)
    assert _pairs(closed) == _pairs(exact)
    assert all(labels[a] == labels[b] for a, b in _pairs(closed))
    once = two_hop(chain, vectors, min_score=0.9)
    assert _pairs(chain) < _pairs(once) <= _pairs(exact)
    assert np.all(once.score >= 0.9)
    assert two_hop(chain, vectors, min_score=0.9999).edges == chain.edges


def test_a_large_set_is_searched_approximately_then_closed() -> None:
    vectors, _ = clustered([5] * 400, dim=32, seed=3)
    exact = knn_graph(build_index(vectors), vectors, min_score=0.9, k=10)
    approx = neighbour_graph(vectors, min_score=0.9, k=10, exact_max=100)
    assert len(_pairs(approx) & _pairs(exact)) >= 0.99 * exact.edges


def test_large_sets_group_at_a_stricter_per_pair_rate() -> None:
    """The expected number of strangers above the threshold per face stays where the
    default was validated: unchanged up to the reference size, then shrinking with n."""
    assert fmr_for_size(5e-5, 400) == 5e-5
    assert fmr_for_size(5e-5, REFERENCE_FACES) == 5e-5
    million = fmr_for_size(5e-5, 1_000_000)
    assert million * (1_000_000 - 1) == pytest.approx(5e-5 * (REFERENCE_FACES - 1))
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None
    assert edge_threshold(cal, million, fallback=0.5) > edge_threshold(cal, 5e-5, fallback=0.5)
    with pytest.raises(InvalidRequest):
        fmr_for_size(0.0, 10)


def test_vectorised_false_match_rates_agree_with_the_table() -> None:
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None
    scores = np.array([0.5, 0.8, 0.9, cal.tail_start, 0.95, 0.99, 1.0])
    assert cal.false_match_rates(scores) == pytest.approx(
        [cal.false_match_rate(float(s)) for s in scores]
    )

from __future__ import annotations

import numpy as np
import pytest

from facetrace.errors import InvalidRequest
from facetrace.grouping.metrics import score

TRUTH = np.array([0, 0, 0, 1, 1, 2])


def test_the_true_grouping_scores_one() -> None:
    s = score(np.array([5, 5, 5, 9, 9, 1]), TRUTH)
    assert (s.pairwise_precision, s.pairwise_recall, s.bcubed_f1) == (1.0, 1.0, 1.0)
    assert (s.groups, s.identities, s.faces) == (3, 3, 6)


def test_every_face_alone_is_precise_but_recalls_only_itself() -> None:
    s = score(np.arange(6), TRUTH)
    assert s.pairwise_precision == 1.0 and s.pairwise_recall == 0.0
    assert s.bcubed_precision == 1.0
    assert s.bcubed_recall == pytest.approx((3 * (1 / 3) + 2 * (1 / 2) + 1) / 6)


def test_one_wrong_merge_costs_pairwise_precision() -> None:
    s = score(np.array([0, 0, 0, 0, 0, 2]), TRUTH)
    # pairs in groups: C(5,2)=10, of which 3+1 are one person
    assert s.pairwise_precision == pytest.approx(4 / 10)
    assert s.pairwise_recall == 1.0
    assert s.bcubed_precision == pytest.approx((3 * 3 / 5 + 2 * 2 / 5 + 1) / 6)


def test_mismatched_or_empty_labels_are_refused() -> None:
    with pytest.raises(InvalidRequest):
        score(np.array([0, 1]), TRUTH)
    with pytest.raises(InvalidRequest):
        score(np.array([], dtype=np.int64), np.array([], dtype=np.int64))

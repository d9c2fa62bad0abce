"""The two search modes: the switch-over gallery size derived from the calibration table's
mated curve (measured FNIR), the precedence of request, setting and size, and the
settings that carry the policy."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facetrace.calibration import (
    Calibration,
    choose_mode,
    fit_calibration,
    mated_curve,
    mated_scores,
    packaged_calibration,
)
from facetrace.config import ModePolicy, ModeSetting, SearchMode, SearchSettings

PACKAGED = "dlib-resnet-v1+flip"


@pytest.fixture(scope="module")
def table() -> Calibration:
    rng = np.random.default_rng(3)
    impostors = rng.normal(0.8, 0.03, size=200_000).astype(np.float32)
    mates = rng.normal(0.95, 0.02, size=5_000).astype(np.float32)
    cal = fit_calibration(impostors, model_id="m", source="normal")
    return dataclasses.replace(cal, mated=mated_curve(mates), mated_source="normal(0.95, 0.02)")


def test_mated_curve_is_the_share_of_mates_below(table: Calibration) -> None:
    assert table.miss_rate(0.95) == pytest.approx(0.5, abs=0.02)  # the mates' median
    assert table.miss_rate(0.97) == pytest.approx(0.84, abs=0.02)
    assert table.miss_rate(2.0) is None  # outside what was measured
    again = Calibration.from_json(table.to_json())
    assert np.allclose(np.array(again.mated), np.array(table.mated), atol=1e-5)
    assert again.mated_source == table.mated_source


def test_switch_over_size_is_where_the_threshold_misses_too_many(table: Calibration) -> None:
    for fpir, max_fnir in ((0.01, 0.5), (0.01, 0.2), (0.001, 0.5)):
        n = table.investigation_from(fpir, max_fnir)
        assert n is not None and n > 1
        below = table.miss_rate(table.threshold_for_fpir(fpir, n - 1))
        at = table.miss_rate(table.threshold_for_fpir(fpir, n))
        assert below is not None and at is not None
        assert below <= max_fnir + 1e-3 < at + 2e-3
    # a stricter false-alarm target or a lower tolerance switches at a smaller gallery
    assert table.investigation_from(0.001, 0.5) < table.investigation_from(0.01, 0.5)  # type: ignore[operator]
    assert table.investigation_from(0.01, 0.2) < table.investigation_from(0.01, 0.5)  # type: ignore[operator]
    without = dataclasses.replace(table, mated=())
    assert without.investigation_from(0.01, 0.5) is None and without.miss_rate(0.9) is None


def test_packaged_table_carries_measured_fnir() -> None:
    cal = packaged_calibration(PACKAGED)
    assert cal is not None and cal.mated and "eval identify" in cal.mated_source
    n = cal.investigation_from(0.01, 0.5)
    # derived, not configured: between the measured 47 % (1,938 subjects at FPIR 0.01) and
    # the 53 % (2,450 subjects)
    assert n is not None and 1_938 < n < 2_450
    assert cal.miss_rate(cal.threshold_for_fpir(0.01, 1_938)) == pytest.approx(0.472, abs=0.01)


def test_mated_scores_cap_each_subject() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(40, 8)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    labels = ["big"] * 30 + [f"p{i // 2}" for i in range(10)]
    scores = mated_scores(v, labels, per_subject=45)
    assert scores.size == 45 + 5  # 435 pairs of "big" capped at 45; 5 pairs of two photos
    assert mated_curve(scores) == ()  # too few to say anything


def test_choose_mode_precedence(table: Calibration) -> None:
    n = table.investigation_from(0.01, ModePolicy().max_fnir)
    assert n is not None

    def mode(**kw: object) -> SearchMode:
        args = {"policy": ModePolicy(), "requested": None, "fpir": 0.01, "gallery_subjects": 10}
        args.update(kw)
        return choose_mode(table, **args).mode  # type: ignore[arg-type]

    assert mode(gallery_subjects=n - 1) == SearchMode.IDENTIFICATION
    assert mode(gallery_subjects=n) == SearchMode.INVESTIGATION
    big = choose_mode(table, policy=ModePolicy(), requested=None, fpir=0.01, gallery_subjects=n)
    assert big.chosen_by == "gallery size" and big.switch_source == "calibration"
    assert big.expected_fnir is not None and big.expected_fnir > ModePolicy().max_fnir
    # the setting's size wins over the derived one; a fixed mode over the size; a request
    # over both
    assert mode(policy=ModePolicy(investigation_from=5)) == SearchMode.INVESTIGATION
    fixed = ModePolicy(mode=SearchMode.IDENTIFICATION, investigation_from=5)
    assert mode(policy=fixed) == SearchMode.IDENTIFICATION
    asked = choose_mode(
        table, policy=fixed, requested=SearchMode.INVESTIGATION, fpir=0.01, gallery_subjects=10
    )
    assert asked.mode == SearchMode.INVESTIGATION and asked.chosen_by == "request"
    # no calibration and no setting: identification, as before modes existed
    none = choose_mode(None, policy=ModePolicy(), requested=None, fpir=0.01, gallery_subjects=10**9)
    assert none.mode == SearchMode.IDENTIFICATION and none.investigation_from is None


def test_settings_give_the_policy() -> None:
    assert SearchSettings().mode_policy() == ModePolicy()
    s = SearchSettings(
        mode=ModeSetting.INVESTIGATION, investigation_from_subjects=500, identification_max_fnir=0.3
    )
    assert s.mode_policy() == ModePolicy(SearchMode.INVESTIGATION, 500, 0.3)
    with pytest.raises(ValueError):
        SearchSettings(identification_max_fnir=1.5)
    with pytest.raises(ValueError):
        SearchSettings(investigation_from_subjects=0)


def test_default_policy_keeps_no_candidate_answers_for_a_few_thousand_people() -> None:
    """With the packaged table, galleries of a few thousand one-photo subjects (LFW's
    2,835 people, a typical agency collection) stay in identification, where an empty
    answer means something; investigation comes only where the threshold would hide
    nearly every mate."""
    cal = packaged_calibration(PACKAGED)
    assert cal is not None
    policy = SearchSettings().mode_policy()

    def mode(n: int) -> SearchMode:
        return choose_mode(cal, policy=policy, requested=None, fpir=0.01, gallery_subjects=n).mode

    assert mode(2_835) is SearchMode.IDENTIFICATION
    assert mode(10_000) is SearchMode.IDENTIFICATION
    assert mode(100_000) is SearchMode.INVESTIGATION
    switch = cal.investigation_from(0.01, policy.max_fnir)
    assert switch is not None and 10_000 < switch < 100_000

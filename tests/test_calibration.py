"""The score -> false-match-rate table, on impostor scores drawn from a known distribution."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from facetrace.calibration import (
    Calibration,
    fit_calibration,
    impostor_scores,
    packaged_calibration,
)


@pytest.fixture(scope="module")
def table() -> Calibration:
    rng = np.random.default_rng(7)
    scores = rng.normal(0.8, 0.03, size=200_000).astype(np.float32)
    return fit_calibration(scores, model_id="m", source="normal(0.8, 0.03)")


def test_fmr_matches_the_empirical_tail(table: Calibration) -> None:
    # for N(0.8, 0.03): P(X >= 0.8) = 0.5, P(X >= 0.86) = 0.0228
    assert table.false_match_rate(0.8) == pytest.approx(0.5, abs=0.01)
    assert table.false_match_rate(0.86) == pytest.approx(0.0228, rel=0.1)


def test_fmr_is_monotone_and_extrapolated(table: Calibration) -> None:
    xs = np.linspace(0.6, 1.0, 200)
    f = [table.false_match_rate(float(x)) for x in xs]
    assert all(a >= b for a, b in itertools.pairwise(f))
    assert 0 < table.false_match_rate(0.99) < 1 / 200_000


def test_threshold_inverts_fmr(table: Calibration) -> None:
    just_above_tail = table.tail_fmr * 1.2  # between the last grid point and the tail
    for fmr in (0.1, 1e-3, just_above_tail, 1e-6):
        t = table.threshold_for_fmr(fmr)
        assert table.false_match_rate(t) <= fmr * 1.05
        assert table.false_match_rate(t - 0.005) > fmr * 0.95


def test_bigger_gallery_needs_higher_threshold(table: Calibration) -> None:
    small = table.threshold_for_fpir(0.01, 100)
    big = table.threshold_for_fpir(0.01, 1_000_000)
    assert big > small
    assert table.gallery_fpir(small, 100) == pytest.approx(0.01, rel=0.1)


def test_json_round_trip(table: Calibration) -> None:
    again = Calibration.from_json(table.to_json())
    for s in (0.75, 0.85, 0.95):
        assert again.false_match_rate(s) == pytest.approx(table.false_match_rate(s), rel=1e-4)


def test_malformed_table_is_refused() -> None:
    with pytest.raises(ValueError):
        Calibration.from_json({"model_id": "m"})


def test_too_few_pairs_refused() -> None:
    with pytest.raises(ValueError):
        fit_calibration(np.zeros(10, dtype=np.float32), model_id="m", source="")


def test_impostor_scores_skip_same_label_pairs() -> None:
    v = np.eye(3, dtype=np.float32)
    v = np.vstack([v, v[:1]])
    labels = np.array(["a", "b", "c", "a"])
    s = impostor_scores(v, labels)
    # 6 pairs in all, one of them (0, 3) shares a label
    assert s.size == 5
    assert not np.any(np.isclose(s, 1.0))


def test_packaged_default_exists_for_dlib() -> None:
    cal = packaged_calibration("dlib-resnet-v1+flip")
    assert cal is not None and cal.model_id == "dlib-resnet-v1+flip"
    assert cal.impostor_pairs > 1_000_000
    assert math.isfinite(cal.threshold_for_fpir(0.01, 10_000))


def test_template_tables_put_template_scores_on_the_face_scale() -> None:
    """The packaged template tables (LFW, identities outside the benchmark's test part):
    strangers score higher against a template than against one face, more so the more
    faces it averages, so a template score maps to a lower single-face score."""
    from facetrace.calibration import (
        TemplateCalibration,
        packaged_calibration,
        packaged_template_calibration,
    )

    faces = packaged_calibration("dlib-resnet-v1+flip")
    tables = packaged_template_calibration("dlib-resnet-v1+flip")
    assert faces is not None and tables is not None
    assert sorted(tables.tables) == [2, 3, 4, 5]
    at = [faces.threshold_for_fmr(1e-3)] + [
        tables.table(n).threshold_for_fmr(1e-3) for n in (2, 3, 5)
    ]
    assert at == sorted(at) and at[-1] > at[0] + 0.005
    assert tables.table(40) is tables.tables[5]  # more faces: the largest size measured
    for score in (0.90, 0.93, 0.95):
        mapped = tables.on_face_scale(score, 3, faces)
        assert mapped < score
        assert faces.false_match_rate(mapped) == pytest.approx(
            tables.false_match_rate(score, 3), rel=1e-2
        )
    again = TemplateCalibration.from_json(tables.to_json())
    assert again.false_match_rate(0.94, 2) == tables.false_match_rate(0.94, 2)
    with pytest.raises(ValueError, match="malformed template calibration"):
        TemplateCalibration.from_json({"tables": {}})

"""Subject templates and AS-norm: the properties the search relies on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.scoring.asnorm import Cohort, read_cohort, save_cohort
from facetrace.scoring.templates import subject_template


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_template_of_close_faces_is_their_weighted_mean() -> None:
    rng = np.random.default_rng(0)
    person = _unit(rng.normal(size=128))
    faces = _unit(person + 0.2 * rng.normal(size=(5, 128)) / np.sqrt(128))
    t = subject_template(faces, [1.0, 1.0, 1.0, 1.0, 0.0])
    assert t.shape == (1, 128)
    assert np.isclose(np.linalg.norm(t[0]), 1.0, atol=1e-5)
    # the mean is closer to the person than the faces are
    assert float(t[0] @ person) > float((faces @ person).max())
    # a face of quality 0 barely counts
    no_last = subject_template(faces[:4])
    assert float(t[0] @ no_last[0]) > 0.9999


def test_spread_faces_get_sub_centroids() -> None:
    rng = np.random.default_rng(1)
    young, old = _unit(rng.normal(size=(2, 128)))
    faces = _unit(
        np.concatenate(
            [young + 0.02 * rng.normal(size=(3, 128)), old + 0.02 * rng.normal(size=(2, 128))]
        )
    )
    t = subject_template(faces)
    assert t.shape == (2, 128)
    assert sorted(float(max(t @ p)) for p in (young, old))[0] > 0.95
    assert subject_template(faces, max_centroids=1).shape == (1, 128)


def test_template_rejects_no_faces() -> None:
    with pytest.raises(ValueError, match="n >= 1"):
        subject_template(np.zeros((0, 128), np.float32))


def test_asnorm_discounts_a_face_that_scores_high_against_everyone() -> None:
    rng = np.random.default_rng(2)
    common = _unit(rng.normal(size=128))
    # the cohort leans towards "common": faces like it score high against everyone
    cohort = Cohort("m", _unit(rng.normal(size=(400, 128)) + 1.5 * common / np.sqrt(1)), top_k=50)
    probe = _unit(common + 0.3 * rng.normal(size=128))
    typical = _unit(rng.normal(size=128))
    plain = _unit(rng.normal(size=128))
    # a raw tie between a reference like the crowd and an unusual one ...
    raw = 0.5
    mp, sp = cohort.stats(probe[None])
    crowd = cohort.stats(_unit(common + 0.3 * rng.normal(size=128))[None])
    unusual = cohort.stats(plain[None])
    s_crowd = cohort.normalise(raw, (mp, sp), crowd)
    s_unusual = cohort.normalise(raw, (mp, sp), unusual)
    # ... is broken in favour of the reference that does not score high against everyone
    assert float(s_unusual[0]) > float(s_crowd[0])
    assert cohort.score_pairs(probe[None], np.stack([typical, plain])).shape == (1, 2)


def test_cohort_file_round_trip_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    c = Cohort("dlib-resnet-v1+flip", _unit(rng.normal(size=(20, 128))), top_k=5, source="x")
    save_cohort(c, tmp_path / "c.npz")
    back = read_cohort((tmp_path / "c.npz").read_bytes(), what="c.npz")
    assert (back.model_id, back.top_k, back.source) == (c.model_id, 5, "x")
    assert np.allclose(back.vectors, c.vectors, atol=2e-3)
    with pytest.raises(ValueError, match=r"malformed cohort bad\.npz"):
        read_cohort(b"not a cohort", what="bad.npz")
    with pytest.raises(ValueError, match="top_k"):
        Cohort("m", c.vectors, top_k=50)

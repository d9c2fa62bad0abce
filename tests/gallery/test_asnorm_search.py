"""Searches re-score the index's top candidates by AS-norm and report them on the cosine
scale: the mate stays first, the raw cosine is kept beside, the rates stay consistent."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facetrace.config import PipelineOptions, ScoreKind
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from tests.galleries import ENROLLED


def test_asnorm_search_keeps_the_mate_first_on_the_cosine_scale(
    gallery_dir: Path, probe_of: dict[str, Path]
) -> None:
    asnorm = PipelineOptions(score=ScoreKind.ASNORM)
    with Gallery.open(gallery_dir, pipeline=asnorm) as g:
        norm = g.score_normalisation()
        assert norm is not None, "the packaged cohort and AS-norm table are missing"
        cohort, table = norm
        cal = g.calibration()
        assert cal is not None
        for name in ENROLLED[:3]:
            pixels = load_image(probe_of[name]).pixels
            (result,) = g.search(pixels, k=5, force=True, face=0)
            first = result.candidates[0]
            assert first.info.subject_external_id == name
            assert first.cosine is not None and first.cosine != first.score
            stored = g.subject_vectors(name)
            # the raw cosine of the face that won on AS-norm (not always the best cosine)
            assert np.isclose(stored @ result.face.vector, first.cosine, atol=1e-4).any()
            # the score is the cosine with the AS-norm score's false-match rate
            z = cohort.score_pairs(result.face.vector[None], stored).max()
            assert np.isclose(
                cal.false_match_rate(first.score), table.false_match_rate(float(z)), rtol=0.05
            )
            scores = [c.score for c in result.candidates + result.below_threshold]
            assert scores == sorted(scores, reverse=True)
    with Gallery.open(gallery_dir) as g:  # the default: raw cosines
        assert g.score_normalisation() is None
        (result,) = g.search(load_image(probe_of[ENROLLED[0]]).pixels, k=5, force=True, face=0)
        first = result.candidates[0]
        assert first.cosine is None and first.info.subject_external_id == ENROLLED[0]
        assert first.as_dict()["cosine"] == first.as_dict()["score"]

"""Searches re-score the index's top candidates by AS-norm and report them on the cosine
scale: the mate stays first, the raw cosine is kept beside, the rates stay consistent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.calibration import Calibration, fit_calibration
from facetrace.config import PipelineOptions, ScoreKind
from facetrace.eval.embedding import embed_photos
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from facetrace.scoring.asnorm import Cohort, impostor_scores_normalised
from facetrace.vision.models import DLIB_RESNET_V1
from tests.galleries import DISTRACTORS, ENROLLED


@pytest.fixture(scope="module")
def own_cohort(faces_dir: Path) -> tuple[Cohort, Calibration]:
    """A cohort and an AS-norm table made as 'facetrace calibrate --cohort-out' makes them:
    from LFW people in neither the gallery nor its distractors (30 for the cohort, 50 for
    the table's impostor pairs), one photo each."""
    people = sorted(
        p for p in (faces_dir / "lfw" / "images").iterdir() if p.name not in ENROLLED + DISTRACTORS
    )[:80]
    photos = [sorted(p.glob("*.jpg"))[0] for p in people]
    embedded = embed_photos(photos, options=PipelineOptions())
    found = [
        (e.vector, p.name) for e, p in zip(embedded, people, strict=True) if e.vector is not None
    ]
    vectors = np.stack([v for v, _ in found]).astype(np.float32)
    labels = np.array([n for _, n in found])
    model_id = DLIB_RESNET_V1.model_id
    cohort = Cohort(model_id, vectors[:30], top_k=20, source="test: 30 LFW people")
    table = fit_calibration(
        impostor_scores_normalised(vectors[30:], labels[30:], cohort),
        model_id=model_id,
        source="test: 50 LFW people",
    )
    return cohort, table


def test_asnorm_search_keeps_the_mate_first_on_the_cosine_scale(
    gallery_dir: Path, probe_of: dict[str, Path], own_cohort: tuple[Cohort, Calibration]
) -> None:
    asnorm = PipelineOptions(score=ScoreKind.ASNORM)
    with Gallery.open(gallery_dir, pipeline=asnorm) as g:
        assert g.score_normalisation() is None, "no cohort ships: raw cosines until one is made"
        g.set_cohort(own_cohort[0])
        g.set_calibration(own_cohort[1], key="calibration_asnorm")
        norm = g.score_normalisation()
        assert norm is not None
        cohort, table = norm
        cal = g.calibration()
        assert cal is not None
        for name in ENROLLED[:3]:
            pixels = load_image(probe_of[name]).pixels
            (result,) = g.search(pixels, k=5, force=True, face=0, include_below=True)
            # a test-sized table (1,225 pairs) may put the mate under the threshold
            first = (result.candidates + result.below_threshold)[0]
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

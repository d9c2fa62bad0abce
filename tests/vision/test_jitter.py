"""Test-time augmentation of the dlib descriptor: jittered chips averaged into a face's
vector (dlib's num_jitters), as a model variant of its own id."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import ModelMismatch
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from facetrace.vision.align import dlib_chip, dlib_chips, jitter_transforms
from facetrace.vision.embed import l2_normalise
from facetrace.vision.models import DLIB_RESNET_V1, DLIB_RESNET_V1_JITTER, make_embedder


def test_jitters_are_fixed_distinct_and_within_dlibs_ranges() -> None:
    js = jitter_transforms(8)
    assert js == jitter_transforms(8) and jitter_transforms(3) == js[:3]
    assert len(set(js)) == 8
    for j in js:
        assert abs(j.dx) <= 0.0192 and abs(j.dy) <= 0.0192
        assert 0.96 <= j.scale <= 0.99
        assert abs(j.angle) <= math.radians(3)
    assert jitter_transforms(0) == ()


def _photo(faces_dir: Path) -> np.ndarray:
    return load_image(faces_dir / "lfw/images/AJ_Cook/AJ_Cook_0001.jpg").pixels


def test_the_first_chip_is_the_plain_chip_and_the_others_move(faces_dir: Path) -> None:
    pixels = _photo(faces_dir)
    pipeline = FacePipeline(PipelineOptions(detector="hog"))
    det = pipeline.detect(pixels)[0]
    chips = dlib_chips(pixels, det, jitter_transforms(4))
    assert chips.shape == (5, 150, 150, 3)
    assert np.array_equal(chips[0], dlib_chip(pixels, det))
    for c in chips[1:]:
        diff = np.abs(c.astype(int) - chips[0]).mean()
        assert 1.0 < diff < 40.0  # the same face, slightly moved


def test_a_jittered_vector_is_the_mean_of_its_chips_and_flips(faces_dir: Path) -> None:
    pixels = _photo(faces_dir)
    plain = FacePipeline(PipelineOptions(detector="hog", model=DLIB_RESNET_V1.model_id))
    jittered = FacePipeline(PipelineOptions(detector="hog", model=DLIB_RESNET_V1_JITTER.model_id))
    assert jittered.model_id == "dlib-resnet-v1+flip+jitter8" != plain.model_id
    f_plain, f_jit = plain.analyse(pixels)[0], jittered.analyse(pixels)[0]
    assert f_jit.model_id == jittered.model_id
    assert f_jit.detection == f_plain.detection and f_jit.quality == f_plain.quality
    chips = dlib_chips(pixels, f_jit.detection, jitter_transforms(8))
    each = jittered.embedder.embed(np.concatenate([chips, chips[:, :, ::-1]]))
    expected = l2_normalise(each.sum(axis=0, keepdims=True))[0]
    assert np.allclose(f_jit.vector, expected, atol=1e-5)
    cos = float(np.dot(f_jit.vector, f_plain.vector))
    assert 0.97 < cos < 0.99999


def test_the_model_name_and_each_variant_id_select_a_descriptor() -> None:
    from facetrace.vision.models import DLIB_DEFAULT

    assert make_embedder("dlib-resnet-v1")[0] == DLIB_DEFAULT
    for d in (DLIB_RESNET_V1, DLIB_RESNET_V1_JITTER):
        assert make_embedder(d.model_id)[0] == d


def test_a_gallery_of_one_variant_refuses_the_other_and_names_its_own(
    gallery_dir: Path,
) -> None:
    with Gallery.open(gallery_dir) as g:
        stored = g.descriptor.model_id
    other = next(
        d.model_id for d in (DLIB_RESNET_V1, DLIB_RESNET_V1_JITTER) if d.model_id != stored
    )
    with pytest.raises(ModelMismatch, match=re.escape(f"FACETRACE_PIPELINE__MODEL={stored}")):
        Gallery.open(gallery_dir, pipeline=PipelineOptions(model=other))
    with Gallery.open(gallery_dir, pipeline=PipelineOptions(model=stored)) as g:
        assert g.descriptor.model_id == stored

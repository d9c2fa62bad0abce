"""ArcFace-style models by path: a tiny ONNX model of the right shape stands in for real weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.errors import ModelMismatch, ModelUnavailable
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from facetrace.vision.arcface import ArcFaceEmbedder
from tests.onnx_models import tiny_model


def test_embeds_real_faces(tmp_path: Path, faces_dir: Path) -> None:
    model = tiny_model(tmp_path / "w600k_tiny.onnx")
    pipe = FacePipeline(PipelineOptions(model=str(model)))
    assert pipe.descriptor.model_id == "arcface:w600k_tiny"
    faces = pipe.analyse(load_image(faces_dir / "webphotos13/multi_face/couple.jpg").pixels)
    assert len(faces) == 2
    for f in faces:
        assert f.vector.shape == (512,)
        assert f.vector.dtype == np.float32
        assert np.linalg.norm(f.vector) == pytest.approx(1.0, abs=1e-5)
        assert f.model_id == "arcface:w600k_tiny"


def test_chip_geometry_puts_eyes_on_template(tmp_path: Path, faces_dir: Path) -> None:
    pipe = FacePipeline(PipelineOptions(model=str(tiny_model(tmp_path / "m.onnx"))))
    pixels = load_image(faces_dir / "webphotos13/identities/id01/img1.jpg").pixels
    det = pipe.detect(pixels)[0]
    chip = pipe.chip(pixels, det)
    assert chip.shape == (112, 112, 3)
    # the chip is a face: its centre is not flat background
    assert chip[30:90, 30:90].std() > 10


def test_batches_give_same_vectors(tmp_path: Path) -> None:
    emb = ArcFaceEmbedder(tiny_model(tmp_path / "m.onnx"), model_id="arcface:m", batch_size=2)
    chips = np.random.default_rng(1).integers(0, 255, (5, 112, 112, 3), dtype=np.uint8)
    one_by_one = np.concatenate([emb.embed(chips[i : i + 1]) for i in range(5)])
    assert np.allclose(emb.embed(chips), one_by_one, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"size": 96}, "input shape"), ({"dim": 128}, "output shape"), ({"channels": 1}, "input")],
)
def test_wrong_shapes_refused(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    emb = ArcFaceEmbedder(tiny_model(tmp_path / "bad.onnx", **kwargs), model_id="arcface:bad")
    with pytest.raises(ModelUnavailable, match=message):
        emb.embed(np.zeros((1, 112, 112, 3), dtype=np.uint8))


def test_garbage_and_missing_files_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model")
    with pytest.raises(ModelUnavailable, match="cannot load"):
        ArcFaceEmbedder(junk, model_id="x").embed(np.zeros((1, 112, 112, 3), dtype=np.uint8))
    with pytest.raises(ModelUnavailable, match="no such"):
        ArcFaceEmbedder(tmp_path / "nope.onnx", model_id="x").embed(
            np.zeros((1, 112, 112, 3), dtype=np.uint8)
        )


def test_unknown_model_name_refused() -> None:
    with pytest.raises(ModelUnavailable, match="unknown model"):
        FacePipeline(PipelineOptions(model="facenet"))


def test_gallery_never_mixes_models(tmp_path: Path, faces_dir: Path) -> None:
    model = tiny_model(tmp_path / "m.onnx")
    with Gallery.open(tmp_path / "data", pipeline=PipelineOptions(model=str(model))) as g:
        assert g.status()["dim"] == 512
    with pytest.raises(ModelMismatch, match="arcface:m"):
        Gallery.open(tmp_path / "data")

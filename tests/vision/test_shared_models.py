"""Derived model files shared by a machine's data directories: built once, copied into a
new data directory instead of converted again, never copied when altered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.vision import dlib_cnn_onnx, dlib_onnx, shared_models


def _pipeline(folder: Path) -> FacePipeline:
    return FacePipeline(PipelineOptions(cache_dir=folder, detector="auto"))


def _names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.endswith(shared_models.SUFFIXES)}


def _no_building(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("converted although the shared cache holds the file")

    monkeypatch.setattr(dlib_onnx, "convert", refuse)
    monkeypatch.setattr(dlib_cnn_onnx, "convert_detector", refuse)


def test_a_new_data_directory_takes_the_built_models_instead_of_converting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, faces_dir: Path
) -> None:
    from facetrace.imaging import load_image

    shared = tmp_path / "shared"
    monkeypatch.setenv(shared_models.ENV, str(shared))
    first = _pipeline(tmp_path / "a")
    first.cache_models()
    built = _names(tmp_path / "a")
    assert {dlib_onnx.ONNX_FILENAME, dlib_cnn_onnx.ONNX_FILENAME} <= built
    assert built <= _names(shared)

    _no_building(monkeypatch)
    second = _pipeline(tmp_path / "b")
    second.cache_models()
    assert _names(tmp_path / "b") == built
    for name in built:
        assert (tmp_path / "b" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    photo = load_image(faces_dir / "webphotos13" / "multi_face" / "selfie-many-people.jpg")
    a, b = first.analyse(photo.pixels), second.analyse(photo.pixels)
    assert len(a) == len(b) >= 6
    assert np.allclose([f.vector for f in a], [f.vector for f in b], atol=1e-6)


def test_an_altered_shared_file_is_not_copied_and_is_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    monkeypatch.setenv(shared_models.ENV, str(shared))
    _pipeline(tmp_path / "a").cache_models()
    good = (tmp_path / "a" / dlib_onnx.ONNX_FILENAME).read_bytes()
    (shared / dlib_onnx.ONNX_FILENAME).write_bytes(good[: len(good) // 2])  # truncated
    _pipeline(tmp_path / "b").cache_models()  # converts its own, not the truncated copy
    assert (tmp_path / "b" / dlib_onnx.ONNX_FILENAME).read_bytes() == good
    assert (shared / dlib_onnx.ONNX_FILENAME).read_bytes() == good  # and shares it again


def test_sharing_off_shares_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(shared_models.ENV, "off")
    assert shared_models.shared_dir() is None
    _pipeline(tmp_path / "a").cache_models()
    assert dlib_onnx.ONNX_FILENAME in _names(tmp_path / "a")
    assert shared_models.seed(tmp_path / "b", None) == []

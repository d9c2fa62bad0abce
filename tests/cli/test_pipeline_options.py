"""The CLI reads the pipeline from the same settings as the service; its ``--model`` and
``--backend`` options override them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from tests.onnx_models import tiny_model

runner = CliRunner()


def _embed(data: Path, photo: Path, *options: str) -> dict:
    res = runner.invoke(app, ["--data", str(data), *options, "embed", str(photo), "--json"])
    assert res.exit_code == 0, res.stderr
    return dict(json.loads(res.stdout))


def test_model_from_settings_and_option(
    tmp_path: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    photo = faces_dir / "webphotos13" / "identities" / "id01" / "img1.jpg"
    monkeypatch.setenv("FACETRACE_PIPELINE__MODEL", str(tiny_model(tmp_path / "w600k_tiny.onnx")))
    out = _embed(tmp_path / "d", photo)
    assert out["model"] == "arcface:w600k_tiny"
    assert len(out["faces"][0]["vector"]) == 512
    out = _embed(tmp_path / "d", photo, "--model", "dlib-resnet-v1", "--backend", "dlib")
    assert (out["model"], out["backend"]) == ("dlib-resnet-v1+flip", "dlib")
    assert len(out["faces"][0]["vector"]) == 128


def test_detector_from_settings(
    tmp_path: Path, faces_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = faces_dir / "att_orl" / "s1" / "1.pgm"  # its face is 75 px wide
    monkeypatch.setenv("FACETRACE_PIPELINE__BACKEND", "dlib")
    assert len(_embed(tmp_path, small)["faces"]) == 1
    monkeypatch.setenv("FACETRACE_DETECT__MIN_FACE_PX", "120")
    assert _embed(tmp_path, small)["faces"] == []


def test_detector_option(tmp_path: Path, faces_dir: Path) -> None:
    selfie = faces_dir / "webphotos13" / "multi_face" / "selfie-many-people.jpg"
    hog = _embed(tmp_path, selfie, "--detector", "hog")
    cnn = _embed(tmp_path, selfie, "--detector", "cnn")
    assert (hog["detector"], cnn["detector"]) == ("hog", "cnn")
    assert len(cnn["faces"]) > len(hog["faces"])
    res = runner.invoke(app, ["--data", str(tmp_path), "--detector", "mtcnn", "status"])
    assert res.exit_code == 2 and "mtcnn" in res.output

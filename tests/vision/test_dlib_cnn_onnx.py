"""dlib's CNN face detector on ONNX Runtime finds the faces dlib's own finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from facetrace.errors import ModelUnavailable
from facetrace.vision.dlib_cnn_onnx import OnnxMmodFaceDetector, default_detector_path
from facetrace.vision.dlib_dat import read_mmod_face_detector
from facetrace.vision.ort import OrtRuntime


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_reader_parses_the_detector() -> None:
    net = read_mmod_face_detector(default_detector_path())
    assert net.input.pyramid
    assert net.loss.window == (80, 80)  # type: ignore[union-attr]


def test_detects_the_same_faces_as_dlib(tmp_path: Path, web_photo_paths: list[Path]) -> None:
    import dlib

    reference = dlib.cnn_face_detection_model_v1(str(default_detector_path()))
    ours = OnnxMmodFaceDetector(tmp_path, runtime=OrtRuntime(intra_op_threads=1))
    for path in web_photo_paths[:3]:
        with Image.open(path) as raw:
            image = ImageOps.exif_transpose(raw).convert("RGB")
        image.thumbnail((480, 480))
        pixels = np.asarray(image)
        theirs = [
            (d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom())
            for d in reference(pixels, 0)
        ]
        found = ours.detect(pixels)
        assert len(found) == len(theirs) >= 1
        for box in theirs:
            assert max(_iou(box, f[:4]) for f in found) > 0.5


def test_rejects_the_descriptor_model(tmp_path: Path) -> None:
    from facetrace.vision.dlib_onnx import default_dat_path

    detector = OnnxMmodFaceDetector(tmp_path, dat_path=default_dat_path())
    with pytest.raises(ModelUnavailable):
        detector.detect(np.zeros((100, 100, 3), np.uint8))

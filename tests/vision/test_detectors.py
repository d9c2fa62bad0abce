"""The three photo detectors: HOG, dlib's CNN and ``auto`` on real group and single photos."""

from __future__ import annotations

from pathlib import Path

import pytest

from facetrace.config import DetectorKind, PipelineOptions, Settings
from facetrace.engine import FacePipeline
from facetrace.errors import InvalidRequest
from facetrace.types import BoundingBox
from facetrace.vision.detect import AutoDetector, CnnDetector, HogDetector, make_detector, overlap
from tests.vision.conftest import faces_root, load_rgb, require_dir


@pytest.fixture(scope="module")
def selfie() -> Path:
    folder = require_dir(faces_root() / "webphotos13" / "multi_face")
    return folder / "selfie-many-people.jpg"


@pytest.fixture(scope="module")
def detectors(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    cache = tmp_path_factory.mktemp("models")
    return {k: make_detector(k, cache_dir=cache) for k in ("hog", "cnn", "auto")}


def _boxes(detector: object, path: Path) -> list[BoundingBox]:
    assert isinstance(detector, HogDetector | CnnDetector | AutoDetector)
    return [d.box for d in detector.detect(load_rgb(path))]


def test_auto_adds_the_group_faces_hog_misses(selfie: Path, detectors: dict[str, object]) -> None:
    hog = _boxes(detectors["hog"], selfie)
    auto = _boxes(detectors["auto"], selfie)
    assert len(auto) > len(hog) >= 2
    # every HOG face is kept with HOG's own box (galleries built with HOG keep their vectors)
    assert all(box in auto for box in hog)
    # no face is reported twice
    assert all(overlap(a, b) < 0.5 for i, a in enumerate(auto) for b in auto[i + 1 :])


def test_cnn_finds_the_face_cut_by_the_photo_edge(
    selfie: Path, detectors: dict[str, object], tmp_path: Path
) -> None:
    # the man taking the selfie: his face is cut by the right and bottom edges
    pixels = load_rgb(selfie)
    h, w = pixels.shape[:2]

    def cut_face(boxes: list[BoundingBox]) -> bool:
        return any(b.x2 == w and b.y1 > h / 2 and b.width > w / 5 for b in boxes)

    assert cut_face(_boxes(detectors["cnn"], selfie))
    assert not cut_face(_boxes(detectors["hog"], selfie))
    no_border = CnnDetector(tmp_path, border=0)
    assert not cut_face([b for b, _ in no_border.boxes(pixels)])


def test_auto_keeps_hogs_single_face(detectors: dict[str, object]) -> None:
    photo = require_dir(faces_root() / "webphotos13" / "identities" / "id01") / "img1.jpg"
    assert _boxes(detectors["auto"], photo) == _boxes(detectors["hog"], photo)


def test_auto_asks_the_cnn_when_hogs_one_face_is_cut_by_the_edge(
    detectors: dict[str, object],
) -> None:
    # LFW's Tung_Chee-hwa_0001: HOG finds only the bystander cut by the left edge; the
    # subject, smiling in the middle, is what the photo is of
    photo = (
        require_dir(faces_root() / "lfw" / "images" / "Tung_Chee-hwa") / "Tung_Chee-hwa_0001.jpg"
    )
    pixels = load_rgb(photo)
    h, w = pixels.shape[:2]

    def centre(boxes: list[BoundingBox]) -> bool:
        return any(b.x1 <= w / 2 < b.x2 and b.y1 <= h / 2 < b.y2 for b in boxes)

    hog = _boxes(detectors["hog"], photo)
    assert len(hog) == 1 and hog[0].x1 == 0 and not centre(hog)
    auto = _boxes(detectors["auto"], photo)
    assert centre(auto) and hog[0] in auto and len(auto) == 2


def test_the_pipeline_takes_the_detector_from_settings_and_per_call(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, selfie: Path
) -> None:
    monkeypatch.setenv("FACETRACE_DETECT__DETECTOR", "hog")
    monkeypatch.setenv("FACETRACE_DATA", str(tmp_path))
    options = Settings().pipeline_options()
    assert options.detector == DetectorKind.HOG
    pipeline = FacePipeline(options)
    assert pipeline.detector.name == "hog"
    pixels = load_rgb(selfie)
    assert len(pipeline.detect(pixels, detector="cnn")) > len(pipeline.detect(pixels))
    assert pipeline.detector_for("cnn") is pipeline.detector_for("cnn")  # made once
    with pytest.raises(InvalidRequest, match="unknown detector 'mtcnn'"):
        pipeline.detect(pixels, detector="mtcnn")


def test_default_detector_is_auto() -> None:
    assert PipelineOptions().detector == DetectorKind.AUTO
    assert Settings().detect.detector == DetectorKind.AUTO


def test_unknown_detector_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("FACETRACE_DETECT__DETECTOR", "mtcnn")
    with pytest.raises(ValidationError):
        Settings()


def test_the_hog_detector_kept_in_the_cache_finds_what_the_built_one_finds(
    tmp_path: Path, selfie: Path
) -> None:
    """Building dlib's HOG detector costs every worker 0.3 s at its start; the pool's
    first worker saves it into the model cache (dlib's own format, per dlib version) and
    the others load it in a millisecond. Loaded, it gives the same boxes and scores on a
    group photo and a portrait; an unreadable cached file is built afresh."""
    single = faces_root() / "lfw" / "images" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    built = HogDetector()  # no cache folder: always built
    saver = HogDetector(cache_dir=tmp_path)
    saver.cache_model()
    [cached] = list(tmp_path.glob("*frontal-face-detector.svm"))
    loaded = HogDetector(cache_dir=tmp_path)
    for photo in (selfie, single):
        pixels = load_rgb(photo)
        want = built._boxes(pixels, -0.6)
        assert want and loaded._boxes(pixels, -0.6) == want
    cached.write_bytes(b"not a detector")
    broken = HogDetector(cache_dir=tmp_path)
    assert broken._boxes(load_rgb(single), -0.6) == built._boxes(load_rgb(single), -0.6)

"""dlib's descriptor on ONNX Runtime: same vectors as dlib, robust cache, clear errors."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.errors import ModelUnavailable
from facetrace.vision import dlib_onnx
from facetrace.vision.dlib_dat import (
    AddPrev,
    Conv,
    FullyConnected,
    read_face_recognition_model,
)
from facetrace.vision.dlib_onnx import (
    DlibEmbedder,
    OnnxDlibEmbedder,
    convert,
    default_dat_path,
    file_sha256,
)
from facetrace.vision.embed import Embedder
from facetrace.vision.ort import OrtRuntime

MIN_COSINE = 0.9999


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return (a64 * b64).sum(1) / np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1)


@pytest.fixture(scope="session")
def onnx_embedder(tmp_path_factory: pytest.TempPathFactory) -> OnnxDlibEmbedder:
    cache = tmp_path_factory.mktemp("models")
    return OnnxDlibEmbedder(cache, runtime=OrtRuntime(intra_op_threads=1))


@pytest.fixture(scope="session")
def dlib_embedder() -> DlibEmbedder:
    return DlibEmbedder()


# ---------------------------------------------------------------------------------------
# Same vectors as dlib


def test_embedders_satisfy_protocol(onnx_embedder: OnnxDlibEmbedder) -> None:
    embedders: list[Embedder] = [onnx_embedder, DlibEmbedder()]
    for e in embedders:
        assert (e.model_id, e.dim, e.chip_size) == ("dlib-resnet-v1", 128, 150)


def test_matches_dlib_on_real_faces(
    onnx_embedder: OnnxDlibEmbedder,
    dlib_embedder: DlibEmbedder,
    small_web_chips: npt.NDArray[np.uint8],
) -> None:
    ours = onnx_embedder.embed(small_web_chips)
    ref = dlib_embedder.embed(small_web_chips)
    assert ours.shape == (len(small_web_chips), 128) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    assert cosines(ours, ref).min() >= MIN_COSINE


def test_raw_descriptor_is_dlibs_unnormalised_output(
    onnx_embedder: OnnxDlibEmbedder,
    dlib_embedder: DlibEmbedder,
    small_web_chips: npt.NDArray[np.uint8],
) -> None:
    chips = small_web_chips[:3]
    np.testing.assert_allclose(
        onnx_embedder.descriptors(chips), dlib_embedder.descriptors(chips), atol=1e-4
    )


@pytest.mark.slow
def test_matches_dlib_on_all_webphotos13(
    onnx_embedder: OnnxDlibEmbedder,
    dlib_embedder: DlibEmbedder,
    all_web_chips: npt.NDArray[np.uint8],
) -> None:
    cos = cosines(onnx_embedder.embed(all_web_chips), dlib_embedder.embed(all_web_chips))
    logging.getLogger(__name__).info(
        "webphotos13: %d faces, cosine min %.9f mean %.9f (1 - min = %.1e)",
        len(cos),
        cos.min(),
        cos.mean(),
        1 - cos.min(),
    )
    assert len(cos) >= 60
    assert cos.min() >= MIN_COSINE


@pytest.mark.slow
def test_matches_dlib_on_500_lfw_faces(
    onnx_embedder: OnnxDlibEmbedder,
    dlib_embedder: DlibEmbedder,
    lfw_chips: npt.NDArray[np.uint8],
) -> None:
    cos = cosines(onnx_embedder.embed(lfw_chips), dlib_embedder.embed(lfw_chips))
    logging.getLogger(__name__).info(
        "LFW: %d faces, cosine min %.9f mean %.9f (1 - min = %.1e)",
        len(cos),
        cos.min(),
        cos.mean(),
        1 - cos.min(),
    )
    assert cos.min() >= MIN_COSINE


def test_batch_and_single_agree(
    onnx_embedder: OnnxDlibEmbedder, small_web_chips: npt.NDArray[np.uint8]
) -> None:
    chips = small_web_chips[:5]
    single = OnnxDlibEmbedder(
        onnx_embedder.cache_dir, batch_size=1, runtime=OrtRuntime(intra_op_threads=1)
    )
    batched = onnx_embedder.embed(chips)
    np.testing.assert_allclose(single.embed(chips), batched, atol=1e-5)
    np.testing.assert_allclose(onnx_embedder.embed(chips[2:3]), batched[2:3], atol=1e-5)


# ---------------------------------------------------------------------------------------
# Input contract


def test_empty_input_gives_empty_output(onnx_embedder: OnnxDlibEmbedder) -> None:
    out = onnx_embedder.embed(np.zeros((0, 150, 150, 3), np.uint8))
    assert out.shape == (0, 128) and out.dtype == np.float32


@pytest.mark.parametrize(
    "chips",
    [
        np.zeros((2, 150, 150, 3), np.float32),
        np.zeros((150, 150, 3), np.uint8),
        np.zeros((1, 112, 112, 3), np.uint8),
        np.zeros((1, 150, 150, 4), np.uint8),
    ],
)
def test_rejects_wrong_chips(onnx_embedder: OnnxDlibEmbedder, chips: Any) -> None:
    with pytest.raises(ValueError):
        onnx_embedder.embed(chips)


class _FakeSession:
    """Returns a constant descriptor per chip and records batch sizes."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.metadata: Mapping[str, str] = {}

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, npt.NDArray[Any]]
    ) -> Sequence[npt.NDArray[Any]]:
        chips = input_feed[dlib_onnx.INPUT_NAME]
        self.batches.append(len(chips))
        out = np.zeros((len(chips), 128), np.float32)
        out[:, 0] = 3.0
        out[:, 1] = chips[:, 0, 0, 0]
        return [out]


class _FakeRuntime(OrtRuntime):
    def __init__(self, session: _FakeSession) -> None:
        super().__init__()
        self.session = session

    def open(self, model_path: Path) -> Any:
        return self.session


def test_embed_runs_in_chunks_and_normalises(tmp_path: Path, monkeypatch: Any) -> None:
    session = _FakeSession()
    monkeypatch.setattr(dlib_onnx, "convert", lambda dat, out, **_: out)
    dat = tmp_path / "weights.dat"
    dat.write_bytes(b"x")
    session.metadata = {
        "source_sha256": file_sha256(dat),
        "facetrace_converter_version": dlib_onnx.CONVERTER_VERSION,
    }
    embedder = OnnxDlibEmbedder(tmp_path, dat_path=dat, batch_size=3, runtime=_FakeRuntime(session))
    chips = np.zeros((7, 150, 150, 3), np.uint8)
    chips[:, 0, 0, 0] = 4
    out = embedder.embed(chips)
    assert session.batches == [3, 3, 1]
    np.testing.assert_allclose(out[:, :2], np.tile([0.6, 0.8], (7, 1)), atol=1e-6)


# ---------------------------------------------------------------------------------------
# Reader


def test_reader_finds_the_documented_network() -> None:
    net = read_face_recognition_model(default_dat_path())
    assert net.input.mean_rgb == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    assert (net.input.rows, net.input.cols) == (150, 150)
    convs = [layer for layer in net.layers if isinstance(layer, Conv)]
    assert len(convs) == 29
    assert convs[0].weights.shape == (32, 3, 7, 7) and convs[0].stride == (2, 2)
    assert sum(isinstance(layer, AddPrev) for layer in net.layers) == 14
    fc = net.layers[-1]
    assert isinstance(fc, FullyConnected) and fc.weights.shape == (256, 128) and fc.bias is None


@pytest.mark.parametrize(
    "make_bytes",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated-half"),
        pytest.param(lambda data: data[:200], id="truncated-header"),
        pytest.param(lambda data: data + b"\x00", id="trailing-byte"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: bytes(range(256)) * 64, id="garbage"),
        pytest.param(lambda data: b"\x01\x01\x0dloss_metric_2" + b"\xff" * 64, id="bad-float"),
    ],
)
def test_reader_rejects_malformed_files(tmp_path: Path, make_bytes: Any) -> None:
    bad = tmp_path / "bad.dat"
    bad.write_bytes(make_bytes(default_dat_path().read_bytes()))
    with pytest.raises(ModelUnavailable, match=r"bad\.dat"):
        read_face_recognition_model(bad)
    with pytest.raises(ModelUnavailable):
        convert(bad, tmp_path / "out.onnx")
    assert not (tmp_path / "out.onnx").exists()


def test_reader_rejects_another_dlib_model(tmp_path: Path) -> None:
    import face_recognition_models

    other = Path(face_recognition_models.cnn_face_detector_model_location())
    with pytest.raises(ModelUnavailable):
        read_face_recognition_model(other)


def test_missing_weights_are_model_unavailable(tmp_path: Path) -> None:
    embedder = OnnxDlibEmbedder(tmp_path, dat_path=tmp_path / "nope.dat")
    with pytest.raises(ModelUnavailable):
        embedder.embed(np.zeros((1, 150, 150, 3), np.uint8))


# ---------------------------------------------------------------------------------------
# Cache


class _CountingConvert:
    def __init__(self) -> None:
        self.calls = 0
        self._real = dlib_onnx.convert

    def __call__(self, dat: Path, out: Path, **kwargs: Any) -> Path:
        self.calls += 1
        return self._real(dat, out, **kwargs)


def test_constructor_loads_nothing(tmp_path: Path) -> None:
    embedder = OnnxDlibEmbedder(tmp_path / "models")
    assert not embedder.loaded
    assert not (tmp_path / "models").exists()


def test_cache_is_reused_then_rebuilt_when_source_changes(tmp_path: Path, monkeypatch: Any) -> None:
    counter = _CountingConvert()
    monkeypatch.setattr(dlib_onnx, "convert", counter)
    dat = tmp_path / "weights.dat"
    shutil.copy(default_dat_path(), dat)
    cache = tmp_path / "models"

    OnnxDlibEmbedder(cache, dat_path=dat).load()
    assert counter.calls == 1
    OnnxDlibEmbedder(cache, dat_path=dat).load()
    assert counter.calls == 1, "second load must reuse the cached graph"

    # Change one byte inside the last conv's raw float32 weights: still a valid file,
    # different checksum, so the cache must be rebuilt from it.
    data = bytearray(dat.read_bytes())
    data[len(data) // 2] ^= 0x01
    dat.write_bytes(bytes(data))
    OnnxDlibEmbedder(cache, dat_path=dat).load()
    assert counter.calls == 2

    import onnx

    props = {p.key: p.value for p in onnx.load(str(cache / dlib_onnx.ONNX_FILENAME)).metadata_props}
    assert props["source_sha256"] == file_sha256(dat)


def test_corrupt_cached_graph_is_rebuilt_once(
    tmp_path: Path, monkeypatch: Any, small_web_chips: npt.NDArray[np.uint8]
) -> None:
    counter = _CountingConvert()
    monkeypatch.setattr(dlib_onnx, "convert", counter)
    cache = tmp_path / "models"
    cache.mkdir()
    (cache / dlib_onnx.ONNX_FILENAME).write_bytes(b"not an onnx file")
    embedder = OnnxDlibEmbedder(cache, runtime=OrtRuntime(intra_op_threads=1))
    out = embedder.embed(small_web_chips[:1])
    assert counter.calls == 1
    assert out.shape == (1, 128)
    assert not list(cache.glob("*.tmp")), "no temporary files left behind"

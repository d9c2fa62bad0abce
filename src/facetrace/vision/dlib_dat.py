"""Reader for dlib's binary serialisation of DNN models (``*.dat``).

We read the weights ourselves so that the descriptor network can run on ONNX Runtime
without calling dlib's slow, BLAS-less CPU code. Written from the format as dlib
defines it (``dlib/serialize.h``, ``dlib/float_details.h``, ``dlib/dnn/core.h``,
``tensor.h``, ``layers.h``, ``input.h``, ``loss.h``); no dlib code is used.

The format, as far as we need it:

- Integers: one control byte, then that many little-endian magnitude bytes. The low
  nibble of the control byte is the byte count; bit 0x80 marks a negative value.
- Floats (``float_details``): an integer mantissa then an integer exponent, the value
  being ``mantissa * 2**exponent``; exponents 32000/32001/32002 mean +inf/-inf/NaN.
- Strings: an integer length then the raw bytes. Booleans: the characters ``'0'``/``'1'``.
- Tensors: version 1 stores each element as a ``float_details``; version 2 stores raw
  little-endian IEEE float32. Both start with (num_samples, k, nr, nc).
- A network nests its layers outermost first: every wrapper (``add_loss_layer``,
  ``add_layer``, ``add_tag_layer``, ``add_skip_layer``) writes its version integer and
  then its subnetwork before its own details. The file therefore holds the loss, then
  one version integer per layer from the top down, then the input layer, then each
  computational layer's details from the bottom up. Tags and skips write nothing but
  their version, so the file alone cannot say where they are: the caller supplies the
  architecture (:data:`FACE_RECOGNITION_RESNET_V1`) and the reader checks every version
  integer and layer name against it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelUnavailable

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]

_FLOAT_INF = 32000
_FLOAT_NINF = 32001
_FLOAT_NAN = 32002
_MAX_STRING = 1 << 16  # dlib version strings are short; a huge length means garbage
_MAX_TENSOR = 1 << 28  # elements; far above any model we read, far below memory trouble


class DlibFormatError(ValueError):
    """The bytes do not follow dlib's serialisation format (or the expected network)."""


# ----------------------------------------------------------------------------------------
# Layers, as plain values. Shapes follow dlib's NCHW convention.


@dataclass(frozen=True)
class InputRGB:
    """``input_rgb_image_sized<NR,NC>``: pixel -> (pixel - mean) / 256, RGB planes.

    ``input_rgb_image_pyramid`` (the CNN face detector's input) has the same pixel
    transform on a tiled image pyramid of any size; it has ``pyramid=True`` and
    rows = cols = 0.
    """

    mean_rgb: tuple[float, float, float]
    rows: int
    cols: int
    pyramid: bool = False


@dataclass(frozen=True)
class Conv:
    """``con_``: cross-correlation, weights (out, in, kh, kw), bias (out,)."""

    weights: FloatArray
    bias: FloatArray
    stride: tuple[int, int]  # (y, x)
    padding: tuple[int, int]  # (y, x), symmetric


@dataclass(frozen=True)
class Affine:
    """``affine_`` (a frozen batch norm): x * gamma + beta, per channel in conv mode."""

    gamma: FloatArray
    beta: FloatArray
    conv_mode: bool


@dataclass(frozen=True)
class Relu:
    """``relu_``."""


@dataclass(frozen=True)
class Pool:
    """``max_pool_``/``avg_pool_``. A window of 0 means the whole input (``_everything``)."""

    kind: str  # "max" or "avg"
    window: tuple[int, int]  # (rows, cols)
    stride: tuple[int, int]
    padding: tuple[int, int]


@dataclass(frozen=True)
class AddPrev:
    """``add_prev_<tagN>``: output + tagged output, zero-padding the smaller one.

    dlib sizes the result to the larger extent of each dimension and treats missing
    elements (extra channels, extra rows/columns at the bottom/right) as zeros.
    """

    tag: int


@dataclass(frozen=True)
class Tag:
    """``add_tag_layer<N>``: remembers the current output under id N."""

    tag: int


@dataclass(frozen=True)
class Skip:
    """``add_skip_layer<tagN>``: continues from the output remembered under id N."""

    tag: int


@dataclass(frozen=True)
class FullyConnected:
    """``fc_``: x (n, in) @ weights (in, out) [+ bias]."""

    weights: FloatArray
    bias: FloatArray | None


@dataclass(frozen=True)
class LossMetric:
    """``loss_metric_``: training-only; at inference the descriptor is the raw fc output."""

    margin: float
    distance_threshold: float


@dataclass(frozen=True)
class LossMmod:
    """``loss_mmod_`` (version-1 options): one sliding detector window plus NMS rule.

    At inference every output cell scoring above the threshold is a detection of a
    ``window`` (width, height) box centred on the cell's input position; detections are
    then suppressed greedily when they overlap a better one by more than
    ``nms_iou`` (intersection over union) or cover more than ``nms_covered`` of either box.
    """

    window: tuple[int, int]
    nms_iou: float
    nms_covered: float


Layer = Conv | Affine | Relu | Pool | AddPrev | Tag | Skip | FullyConnected


@dataclass(frozen=True)
class DlibNetwork:
    """A parsed network: input layer, layers in forward order (bottom-up), loss."""

    input: InputRGB
    layers: tuple[Layer, ...]
    loss: LossMetric | LossMmod


# ----------------------------------------------------------------------------------------
# Architecture specs. One entry per dlib layer object, in forward (bottom-up) order.


@dataclass(frozen=True)
class _Spec:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, tag, skip
    tag: int = 0


def _con() -> _Spec:
    return _Spec("con")


def _block() -> list[_Spec]:
    # block<N,BN,stride> = BN<con<N,3,3,1,1, relu<BN<con<N,3,3,stride,stride, SUBNET>>>>>
    # (forward order: con 3x3/stride, affine, relu, con 3x3/1, affine). The strided con
    # has padding 0, the other padding 1: dlib pads only when the stride is 1. Strides
    # and paddings are read from the file, so one spec serves both block kinds.
    return [_con(), _Spec("affine"), _Spec("relu"), _con(), _Spec("affine")]


def _ares() -> list[_Spec]:
    # ares<N> = relu<add_prev1<block<N,affine,1, tag1<SUBNET>>>>: identity shortcut.
    return [_Spec("tag", 1), *_block(), _Spec("add_prev", 1), _Spec("relu")]


def _ares_down() -> list[_Spec]:
    # ares_down<N> = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N,affine,2,
    # tag1<SUBNET>>>>>>>: the shortcut is a 2x2/2 average pool of the block input; the
    # block has N filters, the shortcut fewer, so add_prev zero-pads its channels.
    return [
        _Spec("tag", 1),
        *_block(),
        _Spec("tag", 2),
        _Spec("skip", 1),
        _Spec("avg_pool"),
        _Spec("add_prev", 2),
        _Spec("relu"),
    ]


def _face_recognition_resnet_v1() -> tuple[_Spec, ...]:
    """dlib_face_recognition_resnet_model_v1 (examples/dnn_face_recognition_ex.cpp).

    Forward order, 150x150 RGB in:
      input_rgb_image_sized<150>   (x - mean_rgb) / 256
      con 32 7x7/2 (pad 0) -> affine -> relu            72x72x32
      max_pool 3x3/2 (pad 0)                            35x35x32
      3 x ares<32>                                      35x35x32
      ares_down<64>,  3 x ares<64>                      17x17x64
      ares_down<128>, 2 x ares<128>                     8x8x128
      ares_down<256>, 2 x ares<256>                     4x4x256 (block 3x3, shortcut 4x4)
      ares_down<256>                                    2x2x256 (block 1x1, shortcut 2x2)
      avg_pool_everything                               1x1x256
      fc_no_bias 128                                    the descriptor (raw, unnormalised)
      loss_metric                                       (training only)
    """
    specs: list[_Spec] = [_con(), _Spec("affine"), _Spec("relu"), _Spec("max_pool")]
    specs += _ares() * 3
    specs += _ares_down() + _ares() * 3
    specs += _ares_down() + _ares() * 2
    specs += _ares_down() + _ares() * 2
    specs += _ares_down()
    specs += [_Spec("avg_pool"), _Spec("fc")]
    return tuple(specs)


FACE_RECOGNITION_RESNET_V1: tuple[_Spec, ...] = _face_recognition_resnet_v1()
"""Architecture of dlib_face_recognition_resnet_model_v1.dat, forward order."""


def _mmod_human_face_detector() -> tuple[_Spec, ...]:
    """mmod_human_face_detector (examples/dnn_mmod_face_detection_ex.cpp).

    Forward order, any size RGB pyramid in, score map out (stride 8):
      input_rgb_image_pyramid<pyramid_down<6>>   (x - mean_rgb) / 256
      downsampler: 3 x (con 5x5/2 pad 0 -> affine -> relu), 16, 32, 32 filters
      3 x rcon5:   con 5x5/1 pad 2 -> affine -> relu, 45 filters
      con 1 filter 9x9/1 pad 4                    the detection score map
      loss_mmod                                  (peaks above threshold, then NMS)
    """
    unit = [_con(), _Spec("affine"), _Spec("relu")]
    return tuple(unit * 6 + [_con()])


MMOD_HUMAN_FACE_DETECTOR: tuple[_Spec, ...] = _mmod_human_face_detector()
"""Architecture of mmod_human_face_detector.dat, forward order."""


# ----------------------------------------------------------------------------------------
# Primitives


class _Stream:
    """A cursor over the file's bytes with dlib's primitive decoders."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self._data):
            raise DlibFormatError(f"unexpected end of file at byte {self.pos} (wanted {n})")
        chunk = self._data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def read_int(self) -> int:
        """A signed integer: control byte (count | 0x80 if negative), LE magnitude."""
        control = self._take(1)[0]
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise DlibFormatError(f"bad integer control byte {control:#04x} at {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little") if size else 0
        return -value if control & 0x80 else value

    def read_uint(self) -> int:
        """An unsigned integer (same layout; dlib never sets the sign bit for these)."""
        value = self.read_int()
        if value < 0:
            raise DlibFormatError(f"negative value where unsigned expected at {self.pos}")
        return value

    def read_float(self) -> float:
        """A ``float_details``: mantissa * 2**exponent, with special exponents."""
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent == _FLOAT_INF:
            return float("inf")
        if exponent == _FLOAT_NINF:
            return float("-inf")
        if exponent == _FLOAT_NAN:
            return float("nan")
        if not -32768 <= exponent < 32768:
            raise DlibFormatError(f"float exponent {exponent} out of range at {self.pos}")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def read_bool(self) -> bool:
        ch = self._take(1)[0]
        if ch not in (ord("0"), ord("1")):
            raise DlibFormatError(f"bad boolean byte {ch:#04x} at {self.pos - 1}")
        return ch == ord("1")

    def read_string(self) -> str:
        size = self.read_uint()
        if size > _MAX_STRING:
            raise DlibFormatError(f"string length {size} too large at {self.pos}")
        raw = bytes(self._take(size))
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise DlibFormatError(f"non-ASCII version string at {self.pos - size}") from exc

    def read_tensor(self) -> FloatArray:
        """A ``resizable_tensor`` as a float32 array of shape (n, k, nr, nc)."""
        version = self.read_int()
        shape = tuple(self.read_int() for _ in range(4))
        if any(d < 0 for d in shape):
            raise DlibFormatError(f"negative tensor dimension {shape} at {self.pos}")
        count = int(np.prod(shape, dtype=np.int64))
        if count > _MAX_TENSOR:
            raise DlibFormatError(f"tensor of {count} elements is implausibly large")
        if version == 2:
            raw = self._take(4 * count)
            values = np.frombuffer(raw, dtype="<f4").astype(np.float32)
        elif version == 1:
            values = np.array([self.read_float() for _ in range(count)], dtype=np.float32)
        else:
            raise DlibFormatError(f"unknown tensor version {version} at {self.pos}")
        return values.reshape(shape)

    def read_alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: just a shape (version 1)."""
        self.expect_int(1, "alias_tensor version")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return (n, k, nr, nc)

    def expect_int(self, expected: int | Sequence[int], what: str) -> int:
        at = self.pos
        value = self.read_int()
        allowed = (expected,) if isinstance(expected, int) else tuple(expected)
        if value not in allowed:
            raise DlibFormatError(f"{what}: expected {allowed}, found {value} at byte {at}")
        return value

    def expect_string(self, expected: str | Sequence[str], what: str) -> str:
        at = self.pos
        value = self.read_string()
        allowed = (expected,) if isinstance(expected, str) else tuple(expected)
        if value not in allowed:
            raise DlibFormatError(f"{what}: expected {allowed}, found {value!r} at byte {at}")
        return value

    @property
    def remaining(self) -> int:
        return len(self._data) - self.pos


# ----------------------------------------------------------------------------------------
# Layer details


def _read_input(s: _Stream) -> InputRGB:
    kind = s.expect_string(("input_rgb_image_sized", "input_rgb_image_pyramid"), "input layer")
    mean = (s.read_float(), s.read_float(), s.read_float())
    if kind == "input_rgb_image_pyramid":
        # The original (unsuffixed) version: tile padding fixed at dlib's defaults.
        return InputRGB(mean_rgb=mean, rows=0, cols=0, pyramid=True)
    rows, cols = s.read_uint(), s.read_uint()
    return InputRGB(mean_rgb=mean, rows=rows, cols=cols)


def _read_con(s: _Stream) -> Conv:
    s.expect_string("con_4", "con layer")
    params = s.read_tensor().reshape(-1)
    num_filters, nr, nc = s.read_int(), s.read_int(), s.read_int()
    stride = (s.read_int(), s.read_int())
    padding = (s.read_int(), s.read_int())
    filters = s.read_alias_tensor()
    biases = s.read_alias_tensor()
    for _ in range(4):  # learning-rate and weight-decay multipliers: training only
        s.read_float()
    if filters[0] != num_filters or filters[2:] != (nr, nc) or biases[1] != num_filters:
        raise DlibFormatError(f"con layer shapes disagree: {filters} {biases} at {s.pos}")
    n_weights = int(np.prod(filters))
    if params.size != n_weights + num_filters:
        raise DlibFormatError(f"con layer has {params.size} params, expected more at {s.pos}")
    weights = params[:n_weights].reshape(filters)
    bias = params[n_weights:]
    return Conv(weights=weights, bias=bias, stride=stride, padding=padding)


def _read_affine(s: _Stream) -> Affine:
    version = s.expect_string(("affine_", "bn_con2", "bn_fc2"), "affine layer")
    if version != "affine_":
        return _read_batch_norm(s, conv_mode=version == "bn_con2")
    params = s.read_tensor().reshape(-1)
    gamma_shape = s.read_alias_tensor()
    s.read_alias_tensor()  # beta has gamma's shape
    mode = s.read_int()
    size = int(np.prod(gamma_shape))
    if params.size != 2 * size:
        raise DlibFormatError(f"affine layer has {params.size} params, expected {2 * size}")
    conv_mode = mode == 0  # dlib's CONV_MODE: one gamma/beta per channel
    return Affine(gamma=params[:size], beta=params[size:], conv_mode=conv_mode)


def _read_batch_norm(s: _Stream, *, conv_mode: bool) -> Affine:
    """A saved ``bn_`` layer, frozen to an affine one as dlib does when loading it.

    gamma' = gamma / sqrt(running_variance + eps), beta' = beta - gamma' * running_mean.
    """
    params = s.read_tensor().reshape(-1).astype(np.float64)
    gamma_shape = s.read_alias_tensor()
    s.read_alias_tensor()  # beta
    s.read_tensor()  # means of the last training batch
    s.read_tensor()  # invstds of the last training batch
    running_means = s.read_tensor().reshape(-1).astype(np.float64)
    running_variances = s.read_tensor().reshape(-1).astype(np.float64)
    s.read_uint()  # num_updates
    s.read_uint()  # running_stats_window_size
    for _ in range(4):  # learning-rate and weight-decay multipliers
        s.read_float()
    eps = s.read_float()
    size = int(np.prod(gamma_shape))
    if params.size != 2 * size or running_means.size != size or running_variances.size != size:
        raise DlibFormatError(f"batch-norm layer shapes disagree at {s.pos}")
    gamma = params[:size] / np.sqrt(running_variances + eps)
    beta = params[size:] - gamma * running_means
    return Affine(gamma=gamma.astype(np.float32), beta=beta.astype(np.float32), conv_mode=conv_mode)


def _read_relu(s: _Stream) -> Relu:
    s.expect_string("relu_", "relu layer")
    return Relu()


def _read_pool(s: _Stream, kind: str) -> Pool:
    s.expect_string(f"{kind}_pool_2", f"{kind}_pool layer")
    window = (s.read_int(), s.read_int())
    stride = (s.read_int(), s.read_int())
    padding = (s.read_int(), s.read_int())
    return Pool(kind=kind, window=window, stride=stride, padding=padding)


def _read_fc(s: _Stream) -> FullyConnected:
    s.expect_string("fc_2", "fc layer")
    num_outputs, num_inputs = s.read_uint(), s.read_uint()
    params = s.read_tensor().reshape(-1)
    s.read_alias_tensor()  # weights shape (num_inputs, num_outputs)
    s.read_alias_tensor()  # biases shape
    bias_mode = s.read_int()  # 0: has bias, 1: no bias
    for _ in range(4):
        s.read_float()
    n_weights = num_inputs * num_outputs
    expected = n_weights + (num_outputs if bias_mode == 0 else 0)
    if params.size != expected:
        raise DlibFormatError(f"fc layer has {params.size} params, expected {expected}")
    weights = params[:n_weights].reshape(num_inputs, num_outputs)
    bias = params[n_weights:] if bias_mode == 0 else None
    return FullyConnected(weights=weights, bias=bias)


def _read_loss(s: _Stream) -> LossMetric | LossMmod:
    version = s.expect_string(("loss_metric_2", "loss_metric_", "loss_mmod_"), "loss layer")
    if version == "loss_metric_":  # dlib's older format had these hard-coded
        return LossMetric(margin=0.1, distance_threshold=0.75)
    if version == "loss_metric_2":
        return LossMetric(margin=s.read_float(), distance_threshold=s.read_float())
    s.expect_int(1, "mmod_options version")  # later versions hold several windows
    window = (s.read_uint(), s.read_uint())
    s.read_float()  # loss_per_false_alarm: training only
    s.read_float()  # loss_per_missed_target: training only
    s.read_float()  # truth_match_iou_threshold: training only
    nms_iou, nms_covered = s.read_float(), s.read_float()
    s.read_float(), s.read_float()  # overlaps_ignore: training only
    return LossMmod(window=window, nms_iou=nms_iou, nms_covered=nms_covered)


def _read_layer_bookkeeping(s: _Stream, add_layer_version: int) -> None:
    """Skip the training state that ``add_layer`` stores after a layer's details."""
    for _ in range(3):  # setup_called, gradient_input_is_stale, get_output...disabled
        s.read_bool()
    s.read_tensor()  # x_grad
    s.read_tensor()  # cached_output
    if add_layer_version >= 2:
        s.read_tensor()  # params_grad


def _read_details(s: _Stream, spec: _Spec) -> Layer:
    if spec.kind == "con":
        return _read_con(s)
    if spec.kind == "affine":
        return _read_affine(s)
    if spec.kind == "relu":
        return _read_relu(s)
    if spec.kind in ("max_pool", "avg_pool"):
        return _read_pool(s, spec.kind.split("_")[0])
    if spec.kind == "add_prev":
        s.expect_string("add_prev_", "add_prev layer")
        return AddPrev(tag=spec.tag)
    if spec.kind == "fc":
        return _read_fc(s)
    raise DlibFormatError(f"no reader for layer kind {spec.kind!r}")


def _parse(data: bytes, architecture: Sequence[_Spec]) -> DlibNetwork:
    s = _Stream(data)
    s.expect_int(1, "add_loss_layer version")
    loss = _read_loss(s)

    # One version integer per layer object, top-down: 1 for tags/skips, 1-2 for add_layer,
    # 2-3 for the bottom add_layer that holds the input layer.
    top_down = list(reversed(architecture))
    versions: list[int] = []
    for i, spec in enumerate(top_down):
        if spec.kind in ("tag", "skip"):
            versions.append(s.expect_int(1, f"add_{spec.kind}_layer version"))
        elif i == len(top_down) - 1:
            versions.append(s.expect_int((2, 3), "input add_layer version"))
        else:
            versions.append(s.expect_int((1, 2), "add_layer version"))

    input_layer = _read_input(s)

    layers: list[Layer] = []
    bottom_up_versions = list(reversed(versions))
    for i, (spec, version) in enumerate(zip(architecture, bottom_up_versions, strict=True)):
        if spec.kind == "tag":
            layers.append(Tag(spec.tag))
            continue
        if spec.kind == "skip":
            layers.append(Skip(spec.tag))
            continue
        layers.append(_read_details(s, spec))
        if i == 0:  # the add_layer specialisation that wraps the input layer
            _read_layer_bookkeeping(s, 1)
            s.read_tensor()  # grad_final
            if version >= 3:
                s.read_uint()  # sample_expansion_factor
        else:
            _read_layer_bookkeeping(s, version)

    if s.remaining:
        raise DlibFormatError(f"{s.remaining} unexpected trailing bytes at {s.pos}")
    return DlibNetwork(input=input_layer, layers=tuple(layers), loss=loss)


def read_network(path: Path, architecture: Sequence[_Spec]) -> DlibNetwork:
    """Read a dlib DNN ``.dat`` file whose layers must match ``architecture``.

    Args:
        path: the ``.dat`` file.
        architecture: the layer objects in forward order, e.g.
            :data:`FACE_RECOGNITION_RESNET_V1`.

    Returns:
        The parsed network, weights as float32 numpy arrays.

    Raises:
        ModelUnavailable: the file is missing, unreadable, truncated, or not this network.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"{path}: cannot read dlib model: {exc}") from exc
    try:
        network = _parse(data, architecture)
    except DlibFormatError as exc:
        raise ModelUnavailable(f"{path}: not a valid dlib model of this network: {exc}") from exc
    logger.debug("read %s: %d layers", path, len(network.layers))
    return network


def read_face_recognition_model(path: Path) -> DlibNetwork:
    """Read ``dlib_face_recognition_resnet_model_v1.dat``.

    Raises:
        ModelUnavailable: see :func:`read_network`.
    """
    network = read_network(path, FACE_RECOGNITION_RESNET_V1)
    if network.input.pyramid or not isinstance(network.loss, LossMetric):
        raise ModelUnavailable(f"{path}: not dlib's face recognition (metric) network")
    return network


def read_mmod_face_detector(path: Path) -> DlibNetwork:
    """Read ``mmod_human_face_detector.dat`` (dlib's CNN face detector).

    Raises:
        ModelUnavailable: see :func:`read_network`.
    """
    network = read_network(path, MMOD_HUMAN_FACE_DETECTOR)
    if not network.input.pyramid or not isinstance(network.loss, LossMmod):
        raise ModelUnavailable(f"{path}: not dlib's MMOD face detector network")
    return network

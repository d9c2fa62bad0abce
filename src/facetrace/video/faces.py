"""Faces of one sampled frame: detect, landmark, align, assess and embed.

Video frames are small and faces in them often turned, so the video path detects with
dlib's CNN (MMOD) detector on ONNX Runtime rather than the photo path's HOG detector:
on the shared clip HOG misses the audience's three-quarter faces that the CNN finds.
Its cost grows with the pixels looked at, so each frame is scaled to a fixed budget
(``detect_pixels``, default 640x360 doubled: about 0.46 megapixel) whatever the video's
resolution; a 720p frame is scaled down to 0.72, which keeps faces from ~56 px. The
landmarks, chip, quality and vector then come from the same pipeline as a photo's, so a
video face's vector is comparable with the gallery's.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrace.config import default_data_dir
from facetrace.engine import FacePipeline
from facetrace.types import BoundingBox, Detection, Face
from facetrace.vision.detect import LandmarkPredictor
from facetrace.vision.ort import OrtRuntime

RGBImage = npt.NDArray[np.uint8]

DETECT_PIXELS = 640 * 360 * 2
# A crop this many face widths wide is kept per candidate key frame (thumbnails).
CROP_CONTEXT = 2.0


@dataclass(frozen=True, eq=False)
class FrameFace:
    """One face seen in one sampled frame.

    Attributes:
        frame_index: the frame's 0-based index in the stream.
        timestamp_s: the frame's presentation time in seconds from the start.
        face: detection (frame pixels), quality and vector.
        crop: RGB crop around the face (``CROP_CONTEXT`` face widths), uint8.
        crop_box: where ``crop`` lies in the frame.
    """

    frame_index: int
    timestamp_s: float
    face: Face
    crop: RGBImage
    crop_box: BoundingBox

    @property
    def box(self) -> BoundingBox:
        return self.face.detection.box


class VideoFaceFinder:
    """Detects and embeds the faces of video frames. Models load on first use.

    Args:
        pipeline: the face pipeline whose chips, quality and vectors are used.
        detect_pixels: the area each frame is scaled to for detection.
        min_score: the CNN detector's minimum score (dlib's default is 0).
        cache_dir: where the converted detector is cached; default the pipeline's.
        threads: the detector's inference threads (0: ONNX Runtime's default, one per
            core; 1 in a worker process of :class:`~facetrace.video.workers.FrameWorkers`).

    It also answers as a pool of no workers (``submit``, ``result``, ``window`` 0), so
    :func:`~facetrace.video.analyse.analyse_video` drives both alike.
    """

    window = 0

    def __init__(
        self,
        pipeline: FacePipeline,
        *,
        detect_pixels: int = DETECT_PIXELS,
        min_score: float = 0.0,
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        from facetrace.vision.dlib_cnn_onnx import OnnxMmodFaceDetector

        if detect_pixels < 10_000:
            raise ValueError(f"detect_pixels must be at least 10000, got {detect_pixels}")
        self.pipeline = pipeline
        self.detect_pixels = detect_pixels
        folder = cache_dir or pipeline.options.cache_dir or default_data_dir() / "models"
        self._detector = OnnxMmodFaceDetector(
            folder, threshold=min_score, runtime=OrtRuntime(intra_op_threads=threads)
        )
        self._landmarks = LandmarkPredictor()

    def warm(self) -> None:
        """Load the detector, landmark and descriptor models now (a blank frame)."""
        blank = np.zeros((120, 160, 3), dtype=np.uint8)
        self._detector.detect(blank)
        side = self.pipeline.descriptor.chip_size
        self.pipeline.embed_chips(np.zeros((1, side, side, 3), dtype=np.uint8))

    def submit(
        self, pixels: RGBImage, frame_index: int, timestamp_s: float
    ) -> Future[list[FrameFace]]:
        """The faces of the frame, found now (errors are raised here)."""
        future: Future[list[FrameFace]] = Future()
        future.set_result(self.faces(pixels, frame_index, timestamp_s))
        return future

    def result(self, future: Future[list[FrameFace]]) -> list[FrameFace]:
        return future.result()

    def close(self) -> None:
        """Nothing to stop (the pool's interface)."""

    def detect(self, pixels: RGBImage) -> list[Detection]:
        """Every face of an RGB frame (h, w, 3), boxes in frame pixels, largest first."""
        h, w = pixels.shape[:2]
        scale = math.sqrt(self.detect_pixels / float(w * h))
        work = pixels
        if abs(scale - 1.0) > 1e-3:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR))
        pixels = np.ascontiguousarray(pixels)
        found: list[Detection] = []
        for x1, y1, x2, y2, score in self._detector.detect(work):
            bx1, by1 = max(0, math.floor(x1 / scale)), max(0, math.floor(y1 / scale))
            bx2, by2 = min(w, math.ceil(x2 / scale)), min(h, math.ceil(y2 / scale))
            if bx2 - bx1 < 8 or by2 - by1 < 8:
                continue
            box = BoundingBox(bx1, by1, bx2, by2)
            landmarks = self._landmarks.predict(pixels, box)
            found.append(Detection(box=box, landmarks=landmarks, score=float(score)))
        found.sort(key=lambda d: d.box.area, reverse=True)
        return found

    def faces(self, pixels: RGBImage, frame_index: int, timestamp_s: float) -> list[FrameFace]:
        """Every face of the frame with its quality, vector and a crop around it."""
        detections = self.detect(pixels)
        out = []
        for face in self.pipeline.embed_detections(pixels, detections):
            crop_box = context_box(face.detection.box, pixels.shape[1], pixels.shape[0])
            crop = np.ascontiguousarray(
                pixels[crop_box.y1 : crop_box.y2, crop_box.x1 : crop_box.x2]
            ).copy()
            out.append(FrameFace(frame_index, timestamp_s, face, crop, crop_box))
        return out


def context_box(box: BoundingBox, width: int, height: int) -> BoundingBox:
    """``box`` grown to ``CROP_CONTEXT`` times its size about its centre, inside the frame.

    >>> context_box(BoundingBox(40, 40, 60, 60), 100, 100).as_list()
    [30, 30, 70, 70]
    """
    cx, cy = box.center
    half = CROP_CONTEXT * max(box.width, box.height) / 2.0
    x1, y1 = max(0, math.floor(cx - half)), max(0, math.floor(cy - half))
    x2, y2 = min(width, math.ceil(cx + half)), min(height, math.ceil(cy + half))
    return BoundingBox(x1, y1, max(x2, x1 + 1), max(y2, y1 + 1))

"""The face pipeline: pixels -> detections -> chips -> quality -> vectors.

:class:`FacePipeline` is pure computation (no SQL, no index); the gallery
(:mod:`facetrace.gallery.directory`) stores and searches what it produces.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt

from facetrace.config import DetectorKind, PipelineOptions
from facetrace.errors import InvalidRequest
from facetrace.types import BoundingBox, Detection, Face
from facetrace.vision.align import arcface_chip, dlib_chip, dlib_chips, jitter_transforms
from facetrace.vision.detect import (
    AutoDetector,
    CnnDetector,
    HogDetector,
    central_box,
    make_detector,
)
from facetrace.vision.embed import Embedder, l2_normalise
from facetrace.vision.models import Alignment, ModelDescriptor, make_embedder
from facetrace.vision.quality import assess

log = logging.getLogger(__name__)

RGBImage = npt.NDArray[np.uint8]


class FacePipeline:
    """Detect, align, assess and embed every face of a photo. Models load on first use."""

    def __init__(self, options: PipelineOptions = PipelineOptions()) -> None:
        self.options = options
        self.descriptor: ModelDescriptor
        self.embedder: Embedder
        self.descriptor, self.embedder = make_embedder(
            options.model,
            backend=options.backend,
            cache_dir=options.cache_dir,
            batch_size=options.batch_size,
            threads=options.threads,
        )
        self._jitters = jitter_transforms(self.descriptor.jitter)
        self.detector = self._make_detector(str(options.detector))
        self._detectors = {str(options.detector): self.detector}

    def _make_detector(self, kind: str) -> HogDetector | CnnDetector | AutoDetector:
        o = self.options
        return make_detector(
            kind,
            min_face_px=o.min_face_px,
            max_pixels=o.max_detect_pixels,
            max_cnn_pixels=o.max_cnn_pixels,
            cache_dir=o.cache_dir,
            threads=o.threads,
        )

    def detector_for(self, kind: str | None) -> HogDetector | CnnDetector | AutoDetector:
        """The configured detector, or another one by name (``hog``, ``cnn``, ``auto``)
        for one call (a search that asks for it); each is made once, models lazily.

        Raises:
            InvalidRequest: an unknown detector name.
        """
        if kind is None:
            return self.detector
        if kind not in self._detectors:
            try:
                DetectorKind(kind)
            except ValueError:
                raise InvalidRequest(
                    f"unknown detector {kind!r}: expected one of "
                    + ", ".join(k.value for k in DetectorKind)
                ) from None
            self._detectors[kind] = self._make_detector(kind)
        return self._detectors[kind]

    def cache_models(self) -> None:
        """Convert the models this pipeline converts at first use (the dlib descriptor's
        and the CNN detector's ONNX graphs, and dlib's own serialisation of its HOG
        detector, which loads in 1 ms instead of being built in 0.3 s) into the cache
        folder now: a process pool's first worker does it once, so a fresh data
        directory's workers do not each convert the same files.

        The files another data directory of this machine already built are copied from
        the shared cache first, and what is built here is left there
        (:mod:`facetrace.vision.shared_models`)."""
        from facetrace.vision import shared_models

        folder = self.options.cache_dir
        shared = shared_models.shared_dir() if folder is not None else None
        if folder is not None:
            shared_models.seed(Path(folder), shared)
        for part in (self.embedder, self.detector):
            cache = getattr(part, "cache_model", None)
            if cache is not None:
                cache()
        if folder is not None:
            shared_models.publish(Path(folder), shared)

    @property
    def model_id(self) -> str:
        return self.descriptor.model_id

    def detect(self, pixels: RGBImage, *, detector: str | None = None) -> list[Detection]:
        """All faces in an RGB image, largest first (``detector`` overrides the
        configured one for this call)."""
        return self.detector_for(detector).detect(pixels)

    def chip(self, pixels: RGBImage, detection: Detection) -> RGBImage:
        """The aligned chip in the geometry of the configured model."""
        if self.descriptor.alignment == Alignment.DLIB_150:
            return dlib_chip(pixels, detection, size=self.descriptor.chip_size)
        return arcface_chip(pixels, detection, size=self.descriptor.chip_size)

    def chips(self, pixels: RGBImage, detection: Detection) -> npt.NDArray[np.uint8]:
        """The chips one face's vector is the mean of: (1 + jitter, s, s, 3), the plain
        chip first, then the model's jittered cuts (``ModelDescriptor.jitter``)."""
        if self._jitters and self.descriptor.alignment == Alignment.DLIB_150:
            return dlib_chips(pixels, detection, self._jitters, size=self.descriptor.chip_size)
        return self.chip(pixels, detection)[None]

    def embed_chips(
        self, chips: npt.NDArray[np.uint8], per_face: int = 1
    ) -> npt.NDArray[np.float32]:
        """Vectors of aligned chips (n * per_face, s, s, 3): each face's ``per_face``
        consecutive chips, and their mirror images if the model says so, averaged into one
        L2-normalised vector (n, dim)."""
        if self.descriptor.flip:
            m = chips.shape[0]
            both = self.embedder.embed(np.concatenate([chips, chips[:, :, ::-1]]))
            each = both[:m] + both[m:]
        else:
            each = self.embedder.embed(chips)
        if per_face == 1:
            return l2_normalise(each)
        return l2_normalise(each.reshape(-1, per_face, each.shape[1]).sum(axis=1))

    def embed_detections(self, pixels: RGBImage, detections: list[Detection]) -> list[Face]:
        """Align every detection, assess it, and embed all chips in batches."""
        if not detections:
            return []
        cuts = [self.chips(pixels, d) for d in detections]
        chips = np.stack([c[0] for c in cuts])
        vectors = self.embed_chips(np.concatenate(cuts), per_face=cuts[0].shape[0])
        return [
            Face(
                detection=d,
                quality=assess(d, chip),
                vector=vectors[i],
                model_id=self.descriptor.model_id,
            )
            for i, (d, chip) in enumerate(zip(detections, chips, strict=True))
        ]

    def analyse(self, pixels: RGBImage, *, detector: str | None = None) -> list[Face]:
        """Every face in the photo with quality and vector, largest first."""
        return self.embed_detections(pixels, self.detect(pixels, detector=detector))

    def analyse_box(self, pixels: RGBImage, box: BoundingBox) -> Face:
        """The face inside a box given from outside (a manifest's box, or a fallback)."""
        detection = self.detector.detect_in_box(pixels, box)
        return self.embed_detections(pixels, [detection])[0]

    def analyse_centred(self, pixels: RGBImage) -> Face:
        """The face assumed centred in a pre-cropped photo (LFW-style) when none is detected."""
        h, w = pixels.shape[:2]
        return self.analyse_box(pixels, central_box(w, h))

"""Typed values that flow between pipeline stages.

Coordinates are pixels in the decoded, EXIF-rotated image, x to the right and y down.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
"""An L2-normalised float32 embedding, shape (dim,)."""


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """An axis-aligned box (x1, y1) top-left inclusive, (x2, y2) bottom-right exclusive.

    >>> BoundingBox(10, 20, 50, 80).width
    40
    >>> BoundingBox(10, 20, 50, 80).area
    2400
    """

    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError(f"empty box {self.x1, self.y1, self.x2, self.y2}")

    @property
    def width(self) -> int:
        return self.x2 - self.x1

    @property
    def height(self) -> int:
        return self.y2 - self.y1

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)

    def as_list(self) -> list[int]:
        """``[x1, y1, x2, y2]`` for JSON."""
        return [self.x1, self.y1, self.x2, self.y2]


@dataclass(frozen=True, slots=True)
class Landmarks:
    """dlib's five points, float pixels, each (x, y), in dlib's part order.

    dlib's 5-point model marks the outer and inner corner of each eye and the
    base of the nose. Left and right are the subject's: ``left_eye`` appears on
    the image's right in a frontal photo.
    """

    left_eye_outer: tuple[float, float]
    left_eye_inner: tuple[float, float]
    right_eye_outer: tuple[float, float]
    right_eye_inner: tuple[float, float]
    nose: tuple[float, float]

    @classmethod
    def from_array(cls, points: npt.ArrayLike) -> Landmarks:
        """Build from a (5, 2) array in dlib's part order."""
        arr = np.asarray(points, dtype=np.float64).reshape(5, 2)
        pts = [(float(x), float(y)) for x, y in arr]
        return cls(pts[0], pts[1], pts[2], pts[3], pts[4])

    @property
    def left_eye(self) -> tuple[float, float]:
        a, b = self.left_eye_outer, self.left_eye_inner
        return ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0)

    @property
    def right_eye(self) -> tuple[float, float]:
        a, b = self.right_eye_outer, self.right_eye_inner
        return ((a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0)

    def as_array(self) -> npt.NDArray[np.float64]:
        """Shape (5, 2) in dlib's part order."""
        return np.array(
            [
                self.left_eye_outer,
                self.left_eye_inner,
                self.right_eye_outer,
                self.right_eye_inner,
                self.nose,
            ],
            dtype=np.float64,
        )


@dataclass(frozen=True, slots=True)
class Detection:
    """One detected face: box, landmarks and the detector's confidence (higher is surer)."""

    box: BoundingBox
    landmarks: Landmarks
    score: float


class QualityReason(StrEnum):
    """Why a face scored low on quality."""

    TOO_SMALL = "too_small"
    BLURRED = "blurred"
    STRONG_POSE = "strong_pose"
    TOO_DARK = "too_dark"
    TOO_BRIGHT = "too_bright"
    LOW_CONTRAST = "low_contrast"


QUALITY_REASON_TEXT: dict[str, str] = {
    QualityReason.TOO_SMALL: "the face is small in the photo (few pixels)",
    QualityReason.BLURRED: "the face is blurred",
    QualityReason.STRONG_POSE: "the face is turned away from the camera",
    QualityReason.TOO_DARK: "the face is too dark",
    QualityReason.TOO_BRIGHT: "the face is overexposed",
    QualityReason.LOW_CONTRAST: "the face has little contrast",
}
"""Each quality reason in words a reviewer understands (for pages and error messages)."""


def describe_quality(reasons: Iterable[str]) -> str:
    """Quality reasons in plain words, joined (``strong_pose`` -> "the face is turned
    away from the camera"); unknown codes are shown with underscores as spaces.

    >>> describe_quality(["blurred", "too_dark"])
    'the face is blurred; the face is too dark'
    """
    return "; ".join(QUALITY_REASON_TEXT.get(r, str(r).replace("_", " ")) for r in reasons)


@dataclass(frozen=True, slots=True)
class Quality:
    """Quality score in [0, 1] (1 is best) and the reasons it fell short."""

    score: float
    reasons: tuple[QualityReason, ...] = ()
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Face:
    """A face ready for the gallery or a search: detection, quality and its vector."""

    detection: Detection
    quality: Quality
    vector: Vector
    model_id: str


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a reference photo comes from and under what authority it is held: the
    collection it was imported into, the legal basis (the photo's own, else its
    collection's), the source it was taken from (``source_url`` and/or ``source_title``:
    the profile, record or archive), and when it was captured (as the source gives it,
    ``""`` when unknown). The one value every layer passes on, from the gallery's rows to
    the API's JSON, the web pages and the CLI."""

    collection: str = "default"
    legal_basis: str = ""
    source_url: str = ""
    source_title: str = ""
    captured_date: str = ""

    @property
    def source(self) -> str:
        """The source in words: its title, else its URL (``""`` when neither is known).

        >>> Provenance("archive", source_url="https://example.org/r/7", source_title="R 7").source
        'R 7'
        >>> Provenance("missing persons 2024", legal_basis="family consent").source
        ''
        """
        return self.source_title or self.source_url

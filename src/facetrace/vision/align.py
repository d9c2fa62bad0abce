"""Alignment: cut a face chip of the size and geometry the embedding model was trained on."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from facetrace.types import Detection

RGBImage = npt.NDArray[np.uint8]

# The standard ArcFace 112x112 template (InsightFace): the subject's right eye,
# left eye, nose tip, right and left mouth corner, in image coordinates.
ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


# dlib's nose point is the base of the nose, about this many template pixels below the tip.
NOSE_BASE_OFFSET = 6.0


DLIB_PADDING = 0.25


@dataclass(frozen=True, slots=True)
class ChipJitter:
    """One small perturbation of a chip's cut, as dlib's ``jitter_image`` makes them:
    the cut's centre moved by (``dx``, ``dy``) of its side along the chip's own axes, its
    side scaled by ``scale``, and turned by ``angle`` radians more."""

    dx: float
    dy: float
    scale: float
    angle: float


def _radical_inverse(i: int, base: int) -> float:
    """The ``i``-th element of van der Corput's sequence in ``base`` (Halton's coordinate).

    >>> [_radical_inverse(i, 2) for i in (1, 2, 3)]
    [0.5, 0.25, 0.75]
    """
    out, f = 0.0, 1.0 / base
    while i:
        i, digit = divmod(i, base)
        out += digit * f
        f /= base
    return out


def jitter_transforms(n: int) -> tuple[ChipJitter, ...]:
    """``n`` fixed perturbations spread evenly over dlib's jitter ranges (``jitter_image``:
    shifts up to 2 % of the side, a cut 0.96-0.99 of the chip's side, turns up to 3
    degrees), from a Halton sequence: the same on every machine and in every version,
    so a face's vector does not depend on where or when it was computed."""
    out = []
    for i in range(1, n + 1):
        u = [_radical_inverse(i, b) for b in (2, 3, 5, 7)]
        out.append(
            ChipJitter(
                dx=(2 * u[0] - 1) * 0.02 * 0.96,
                dy=(2 * u[1] - 1) * 0.02 * 0.96,
                scale=(144 / 150) / (0.97 + 0.03 * u[2]),
                angle=math.radians((2 * u[3] - 1) * 3.0),
            )
        )
    return tuple(out)


def _dlib_shape(detection: Detection) -> Any:
    import dlib

    box = detection.box
    rect = dlib.rectangle(box.x1, box.y1, box.x2 - 1, box.y2 - 1)
    parts = [dlib.point(round(x), round(y)) for x, y in detection.landmarks.as_array()]
    return dlib.full_object_detection(rect, parts)


def dlib_chip(pixels: RGBImage, detection: Detection, *, size: int = 150) -> RGBImage:
    """dlib's own chip for its ResNet descriptor: (size, size, 3) uint8 RGB.

    Uses ``dlib.get_face_chip`` with padding 0.25, exactly as dlib's model expects.
    """
    import dlib

    shape = _dlib_shape(detection)
    chip: Any = dlib.get_face_chip(
        np.ascontiguousarray(pixels), shape, size=size, padding=DLIB_PADDING
    )
    return np.asarray(chip, dtype=np.uint8)


def dlib_chips(
    pixels: RGBImage,
    detection: Detection,
    jitters: tuple[ChipJitter, ...],
    *,
    size: int = 150,
) -> npt.NDArray[np.uint8]:
    """The plain chip (:func:`dlib_chip`) and one per jitter, cut from the photo itself
    (not re-sampled from the chip): (1 + len(jitters), size, size, 3) uint8 RGB."""
    import dlib

    img = np.ascontiguousarray(pixels)
    base = dlib.get_face_chip_details(_dlib_shape(detection), size=size, padding=DLIB_PADDING)
    r = base.rect
    cx, cy = (r.left() + r.right()) / 2.0, (r.top() + r.bottom()) / 2.0
    side = r.right() - r.left()  # a drectangle's width() counts one more
    ca, sa = math.cos(base.angle), math.sin(base.angle)
    out = [np.asarray(dlib.extract_image_chip(img, base), dtype=np.uint8)]
    for j in jitters:
        ox, oy = j.dx * side, j.dy * side
        x, y = cx + ca * ox - sa * oy, cy + sa * ox + ca * oy
        half = side * j.scale / 2.0
        cut = dlib.chip_details(
            dlib.drectangle(x - half, y - half, x + half, y + half),
            dlib.chip_dims(size, size),
            base.angle + j.angle,
        )
        out.append(np.asarray(dlib.extract_image_chip(img, cut), dtype=np.uint8))
    return np.stack(out)


def similarity_transform(
    src: npt.NDArray[np.float64], dst: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Least-squares similarity (rotation, uniform scale, shift) mapping ``src`` onto ``dst``.

    Umeyama's method; both are (n, 2). Returns a 2x3 matrix ``M`` with
    ``dst ~ M @ [x, y, 1]``.
    """
    n = src.shape[0]
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / n
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s_c**2).sum() / n
    scale = float(np.trace(np.diag(sig) @ sign) / var_s) if var_s > 0 else 1.0
    shift = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, shift[:, None]])


def arcface_chip(pixels: RGBImage, detection: Detection, *, size: int = 112) -> RGBImage:
    """A 112x112 ArcFace chip from dlib's five points.

    dlib's model has no mouth corners, so the transform is fitted on the eye
    centres and the nose only (three of the template's five points); the nose
    point of dlib sits at the base of the nose, slightly below the template's tip.
    """
    lm = detection.landmarks
    src = np.array([lm.right_eye, lm.left_eye, lm.nose], dtype=np.float64)
    dst = ARCFACE_TEMPLATE[:3].copy()
    dst[2, 1] += NOSE_BASE_OFFSET
    dst *= size / 112.0
    m = similarity_transform(src, dst)
    inv = np.linalg.inv(np.vstack([m, [0.0, 0.0, 1.0]]))[:2]
    img = Image.fromarray(np.ascontiguousarray(pixels))
    chip = img.transform(
        (size, size),
        Image.Transform.AFFINE,
        data=tuple(inv.reshape(-1)),
        resample=Image.Resampling.BILINEAR,
    )
    return np.asarray(chip, dtype=np.uint8)

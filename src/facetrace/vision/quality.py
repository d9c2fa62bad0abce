"""Face quality: a score in [0, 1] and the named reasons it fell short.

Each factor maps a measurement to [0, 1] with a linear ramp between a "bad"
and a "good" value; the score is the product of the factors. The ramps were
set by looking at LFW and webphotos13 faces and blurred, darkened and
shrunken copies of them (see tests/vision/test_quality.py).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from facetrace.types import Detection, Quality, QualityReason

RGBImage = npt.NDArray[np.uint8]

# (bad, good) ramps
SIZE_PX = (32.0, 80.0)  # face box width in the photo
SHARPNESS = (2.5, 12.0)  # variance of the Laplacian on the grey chip centre, 90 px
YAW = (0.45, 0.2)  # |nose offset from eye midpoint| / eye distance
BRIGHT_LOW = (35.0, 70.0)  # mean grey level of the chip centre
BRIGHT_HIGH = (230.0, 195.0)
CONTRAST = (12.0, 30.0)  # standard deviation of grey levels
REASON_BELOW = 0.75  # a factor under this is named as a reason


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at ``bad``, 1 at ``good``, linear between (works for either order).

    >>> _ramp(5.0, 0.0, 10.0), _ramp(-1.0, 0.0, 10.0), _ramp(2.0, 4.0, 0.0)
    (0.5, 0.0, 0.5)
    """
    if good == bad:
        return 1.0 if value >= good else 0.0
    t = (value - bad) / (good - bad)
    return float(min(1.0, max(0.0, t)))


def _laplacian_variance(grey: npt.NDArray[np.float32]) -> float:
    lap = (
        -4.0 * grey[1:-1, 1:-1]
        + grey[:-2, 1:-1]
        + grey[2:, 1:-1]
        + grey[1:-1, :-2]
        + grey[1:-1, 2:]
    )
    return float(lap.var())


def yaw_ratio(detection: Detection) -> float:
    """Horizontal nose offset from the eye midpoint over the eye distance (0 = frontal)."""
    lm = detection.landmarks
    (lx, ly), (rx, ry) = lm.left_eye, lm.right_eye
    eye_dist = float(np.hypot(lx - rx, ly - ry)) or 1.0
    # project the nose onto the eye line to be robust to roll
    ux, uy = (lx - rx) / eye_dist, (ly - ry) / eye_dist
    mx, my = (lx + rx) / 2.0, (ly + ry) / 2.0
    nx, ny = lm.nose
    return float(abs((nx - mx) * ux + (ny - my) * uy) / eye_dist)


def assess(detection: Detection, chip: RGBImage) -> Quality:
    """Quality of one face from its detection and its aligned chip.

    Args:
        detection: the face's box (photo pixels) and landmarks.
        chip: the aligned chip, (s, s, 3) uint8 RGB, any size >= 32.

    Returns:
        :class:`Quality` with the score, the reasons, and the raw measurements
        under ``details`` (``width_px``, ``sharpness``, ``yaw``, ``brightness``,
        ``contrast``).
    """
    s = chip.shape[0]
    c0, c1 = s // 5, s - s // 5
    centre = chip[c0:c1, c0:c1].astype(np.float32)
    grey = centre @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # measure sharpness at a fixed scale so chips of any size compare
    if grey.shape[0] != 90:
        idx = np.linspace(0, grey.shape[0] - 1, 90).round().astype(int)
        grey_s = grey[np.ix_(idx, idx)]
    else:
        grey_s = grey
    details = {
        "width_px": float(detection.box.width),
        "sharpness": _laplacian_variance(grey_s),
        "yaw": yaw_ratio(detection),
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
    }
    factors: dict[QualityReason, float] = {
        QualityReason.TOO_SMALL: _ramp(details["width_px"], *SIZE_PX),
        QualityReason.BLURRED: _ramp(details["sharpness"], *SHARPNESS),
        QualityReason.STRONG_POSE: _ramp(details["yaw"], *YAW),
        QualityReason.TOO_DARK: _ramp(details["brightness"], *BRIGHT_LOW),
        QualityReason.TOO_BRIGHT: _ramp(details["brightness"], *BRIGHT_HIGH),
        QualityReason.LOW_CONTRAST: _ramp(details["contrast"], *CONTRAST),
    }
    score = float(np.prod(list(factors.values())))
    reasons = tuple(r for r, f in factors.items() if f < REASON_BELOW)
    return Quality(score=round(score, 4), reasons=reasons, details=details)

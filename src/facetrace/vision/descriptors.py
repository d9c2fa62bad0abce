"""Embedding models' descriptors: what must match between a gallery and a probe.

Plain data, free of numpy and of the runtimes, so that ``facetrace status`` can name a
gallery's model without loading any of them (:mod:`facetrace.vision.models` builds the
embedders)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Alignment(StrEnum):
    """How chips are cut for a model."""

    DLIB_150 = "dlib-150"
    ARCFACE_112 = "arcface-112"


@dataclass(frozen=True, slots=True)
class ModelDescriptor:
    """Identity and geometry of one embedding model.

    ``verify_threshold`` is the cosine similarity at which 1:1 verification
    says "same"; it is chosen on LFW for the dlib model. With ``flip`` the
    vector is the normalised sum of the chip's and its mirror image's vectors
    (test-time augmentation: +0.4 points on LFW for dlib's model, at twice the
    embedding cost); it is part of the model id, because such vectors must
    not be mixed with plain ones. ``jitter`` more chips per face, each cut slightly
    shifted, scaled and turned (:func:`facetrace.vision.align.jitter_transforms`, dlib's
    ``num_jitters``), are averaged in too; also part of the model id.
    """

    name: str
    model_id: str
    dim: int
    chip_size: int
    alignment: Alignment
    verify_threshold: float
    calibration_name: str | None
    flip: bool = False
    jitter: int = 0


DLIB_RESNET_V1 = ModelDescriptor(
    name="dlib-resnet-v1",
    model_id="dlib-resnet-v1+flip",
    dim=128,
    chip_size=150,
    alignment=Alignment.DLIB_150,
    verify_threshold=0.91,
    calibration_name="dlib-resnet-v1+flip",
    flip=True,
)

# the same network and chip, 8 jittered cuts averaged in: its own vectors, so its own id
DLIB_RESNET_V1_JITTER = replace(
    DLIB_RESNET_V1,
    model_id="dlib-resnet-v1+flip+jitter8",
    calibration_name="dlib-resnet-v1+flip+jitter8",
    jitter=8,
)

#: the dlib descriptors by model id; ``dlib-resnet-v1`` names :data:`DLIB_DEFAULT`
DLIB_DESCRIPTORS = {d.model_id: d for d in (DLIB_RESNET_V1, DLIB_RESNET_V1_JITTER)}
DLIB_DEFAULT = DLIB_RESNET_V1


def dlib_descriptor(model: str) -> ModelDescriptor | None:
    """The dlib descriptor ``model`` names (``dlib-resnet-v1``: the default; or a model id,
    so a gallery of another variant stays usable), None for another model."""
    if model == DLIB_DEFAULT.name:
        return DLIB_DEFAULT
    return DLIB_DESCRIPTORS.get(model)

"""Embedding: aligned chips in, L2-normalised float32 vectors out."""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from facetrace.errors import ModelUnavailable

Chips = npt.NDArray[np.uint8]
Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns aligned chips of one model's geometry into that model's vectors."""

    model_id: str
    dim: int
    chip_size: int

    def embed(self, chips: Chips) -> Vectors:
        """``chips`` (n, s, s, 3) uint8 RGB -> (n, dim) float32, each row L2-normalised."""
        ...


def l2_normalise(vectors: npt.ArrayLike) -> Vectors:
    """Rows scaled to unit length; an all-zero row stays zero."""
    arr = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (arr / norms).astype(np.float32)


def check_chips(chips: Chips, size: int) -> Chips:
    """Validate chip batch shape and dtype with a clear error."""
    arr = np.asarray(chips)
    if arr.ndim != 4 or arr.shape[1:] != (size, size, 3) or arr.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 chips of shape (n, {size}, {size}, 3), got {arr.dtype} {arr.shape}"
        )
    return arr


class DlibEmbedder:
    """dlib's own ResNet face descriptor (no BLAS in dlib-bin: the slow reference)."""

    model_id = "dlib-resnet-v1"
    dim = 128
    chip_size = 150

    def __init__(self, *, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                import dlib
                import face_recognition_models

                path = face_recognition_models.face_recognition_model_location()
                try:
                    self._model = dlib.face_recognition_model_v1(path)
                except RuntimeError as exc:
                    raise ModelUnavailable(f"cannot load dlib face descriptor: {exc}") from exc
            return self._model

    def embed(self, chips: Chips) -> Vectors:
        arr = check_chips(chips, self.chip_size)
        if arr.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._model or self._load()
        out: list[Any] = []
        for start in range(0, arr.shape[0], self.batch_size):
            batch = [np.ascontiguousarray(c) for c in arr[start : start + self.batch_size]]
            out.extend(model.compute_face_descriptor(batch))
        return l2_normalise(np.array([np.asarray(v) for v in out]))

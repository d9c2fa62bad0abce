"""The embedding stage: aligned face chips -> L2-normalised vectors."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt


class Embedder(Protocol):
    """A face descriptor model.

    Attributes:
        model_id: stored with every vector; a gallery never mixes model ids.
        dim: length of each vector.
        chip_size: side in pixels of the square aligned chip the model expects.
    """

    model_id: str
    dim: int
    chip_size: int

    def embed(self, chips: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embed aligned chips.

        Args:
            chips: uint8 RGB, shape (n, chip_size, chip_size, 3); n may be 0.

        Returns:
            float32 array of shape (n, dim), each row L2-normalised.
        """
        ...


def l2_normalise(vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Scale each row of ``vectors`` (n, d) to unit length; all-zero rows stay zero."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.maximum(norms, np.float32(1e-12))).astype(np.float32, copy=False)


def check_chips(chips: npt.NDArray[np.uint8], chip_size: int) -> None:
    """Raise ``ValueError`` unless ``chips`` is uint8 of shape (n, chip_size, chip_size, 3)."""
    if not isinstance(chips, np.ndarray) or chips.dtype != np.uint8:
        raise ValueError(f"chips must be a uint8 numpy array, got {getattr(chips, 'dtype', chips)}")
    if chips.ndim != 4 or chips.shape[1:] != (chip_size, chip_size, 3):
        raise ValueError(
            f"chips must have shape (n, {chip_size}, {chip_size}, 3), got {chips.shape}"
        )

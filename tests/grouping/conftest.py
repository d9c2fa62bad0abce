"""Small labelled vector sets for the grouping tests: clusters of unit vectors."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

People = tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]


def clustered(
    sizes: list[int], *, dim: int = 32, spread: float = 0.08, seed: int = 0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Unit vectors around one random centre per group: (vectors (n, dim), labels (n,))."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((len(sizes), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    vecs = centres[labels] + spread * rng.standard_normal((labels.size, dim)) / np.sqrt(dim)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return vecs.astype(np.float32), labels.astype(np.int64)


@pytest.fixture()
def three_people() -> People:
    """Three tight groups of 6, 4 and 3 faces, and one face on its own."""
    return clustered([6, 4, 3, 1])

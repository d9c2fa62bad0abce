"""ArcFace-style ONNX embedders (e.g. InsightFace's ``w600k_r50.onnx``), configured by path.

The contract is declared, not guessed from node names: input (N, 3, 112, 112)
float32 RGB scaled as ``(pixel - 127.5) / 127.5``, output (N, 512). A model
whose input or output does not fit is refused when it is loaded.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from facetrace.errors import ModelUnavailable
from facetrace.vision.embed import check_chips, l2_normalise
from facetrace.vision.ort import OrtRuntime, OrtSession

Chips = np.ndarray
Vectors = np.ndarray

INPUT_SIZE = 112
OUTPUT_DIM = 512
MEAN = 127.5
SCALE = 1.0 / 127.5


def _fixed(dim: Any) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class ArcFaceEmbedder:
    """Runs an ArcFace-style ONNX model on 112x112 chips aligned to the ArcFace template."""

    dim = OUTPUT_DIM
    chip_size = INPUT_SIZE

    def __init__(
        self,
        path: Path,
        *,
        model_id: str,
        batch_size: int = 32,
        runtime: OrtRuntime | None = None,
    ) -> None:
        self.path = Path(path)
        self.model_id = model_id
        self.batch_size = batch_size
        self.runtime = runtime or OrtRuntime()
        self._session: OrtSession | None = None
        self._input = ""
        self._lock = threading.Lock()

    def _load(self) -> OrtSession:
        with self._lock:
            if self._session is not None:
                return self._session
            if not self.path.is_file():
                raise ModelUnavailable(f"{self.path}: no such model file")
            session = self.runtime.open(self.path)
            inputs, outputs = session.inputs, session.outputs
            if len(inputs) != 1 or len(outputs) < 1:
                raise ModelUnavailable(f"{self.path}: expected one input and one output")
            shape = inputs[0][1]
            if len(shape) != 4 or [_fixed(d) for d in shape[1:]] != [3, INPUT_SIZE, INPUT_SIZE]:
                raise ModelUnavailable(
                    f"{self.path}: input shape {shape} is not (N, 3, {INPUT_SIZE}, {INPUT_SIZE})"
                )
            out_shape = outputs[0][1]
            if len(out_shape) != 2 or _fixed(out_shape[1]) != OUTPUT_DIM:
                raise ModelUnavailable(
                    f"{self.path}: output shape {out_shape} is not (N, {OUTPUT_DIM})"
                )
            self._input = inputs[0][0]
            self._session = session
            return session

    def embed(self, chips: Chips) -> Vectors:
        check_chips(chips, self.chip_size)
        arr = chips
        if arr.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self._session or self._load()
        out: list[np.ndarray] = []
        for start in range(0, arr.shape[0], self.batch_size):
            batch = arr[start : start + self.batch_size].astype(np.float32)
            blob = ((batch - MEAN) * SCALE).transpose(0, 3, 1, 2)
            vectors = session.run(None, {self._input: np.ascontiguousarray(blob)})[0]
            if vectors.shape != (blob.shape[0], OUTPUT_DIM):
                raise ModelUnavailable(f"{self.path}: produced shape {vectors.shape}")
            out.append(vectors)
        return l2_normalise(np.concatenate(out))

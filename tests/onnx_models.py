"""A tiny ONNX model of ArcFace's shape (112x112 in, 512-d out), standing in for real
weights, which cannot be downloaded here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_model(path: Path, *, size: int = 112, dim: int = 512, channels: int = 3) -> Path:
    """Average-pool 8x8 -> flatten -> a fixed random projection to ``dim``."""
    rng = np.random.default_rng(0)
    cells = channels * (size // 8) * (size // 8)
    w = numpy_helper.from_array(rng.normal(size=(cells, dim)).astype(np.float32), "w")
    nodes = [
        helper.make_node("AveragePool", ["x"], ["p"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", dim])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path

"""All ONNX Runtime session setup, in one place.

Model code asks :class:`OrtRuntime` for a session and depends only on the small
:class:`InferenceSession` protocol, so tests can hand it a fake.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy.typing as npt

from facetrace.errors import ModelUnavailable

logger = logging.getLogger(__name__)


class InferenceSession(Protocol):
    """The part of ``onnxruntime.InferenceSession`` that model code uses."""

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, npt.NDArray[Any]]
    ) -> Sequence[npt.NDArray[Any]]:
        """Run the graph on ``input_feed``; return the named outputs (all if None)."""
        ...

    @property
    def metadata(self) -> Mapping[str, str]:
        """The model's ``metadata_props``, used to check where a cached model came from."""
        ...


class GraphOptimization(StrEnum):
    """ONNX Runtime graph optimisation level (``ORT_*`` in its API)."""

    DISABLE = "disable"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class OrtRuntime:
    """Builds CPU inference sessions with one set of threading and optimisation options.

    Args:
        intra_op_threads: threads per operator; 0 lets ONNX Runtime use every core.
            Use 1 on a shared machine or when running one session per worker process.
        optimization: graph optimisation level; ``ALL`` enables layout transforms and
            operator fusions (Conv+Relu, NCHWc blocked convolutions on x86).
        providers: execution providers in order of preference. Only the CPU provider
            ships with the ``onnxruntime`` wheel we depend on.
    """

    def __init__(
        self,
        *,
        intra_op_threads: int = 0,
        optimization: GraphOptimization = GraphOptimization.ALL,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        if intra_op_threads < 0:
            raise ValueError(f"intra_op_threads must be >= 0, got {intra_op_threads}")
        self.intra_op_threads = intra_op_threads
        self.optimization = GraphOptimization(optimization)
        self.providers = tuple(providers)

    def session_options(self) -> Any:
        """The ``onnxruntime.SessionOptions`` every session of this runtime uses."""
        import onnxruntime as ort

        levels = {
            GraphOptimization.DISABLE: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[self.optimization]
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1  # our graphs are chains; parallelism is intra-op
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only; ORT warns about unused initialisers
        return options

    def open(self, model_path: Path) -> OrtSession:
        """Load ``model_path`` into a session.

        Raises:
            ModelUnavailable: the file is missing or ONNX Runtime cannot load it.
        """
        import onnxruntime as ort

        available = set(ort.get_available_providers())
        providers = [p for p in self.providers if p in available]
        if not providers:
            raise ModelUnavailable(
                f"none of the execution providers {self.providers} is available "
                f"(available: {sorted(available)})"
            )
        try:
            session = ort.InferenceSession(
                str(model_path), sess_options=self.session_options(), providers=providers
            )
        except Exception as exc:  # ORT raises its own untyped errors for any bad file
            raise ModelUnavailable(f"{model_path}: ONNX Runtime cannot load it: {exc}") from exc
        logger.debug(
            "opened %s with %s, %d intra-op threads, optimisation %s",
            model_path,
            providers,
            self.intra_op_threads,
            self.optimization,
        )
        return OrtSession(session)


class OrtSession:
    """An opened ONNX Runtime session plus the model's metadata."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, npt.NDArray[Any]]
    ) -> Sequence[npt.NDArray[Any]]:
        """See :class:`InferenceSession`."""
        names = list(output_names) if output_names is not None else None
        outputs: Sequence[npt.NDArray[Any]] = self._session.run(names, dict(input_feed))
        return outputs

    @property
    def inputs(self) -> list[tuple[str, list[Any]]]:
        """(name, shape) of each graph input; symbolic dimensions are strings or None."""
        return [(i.name, list(i.shape)) for i in self._session.get_inputs()]

    @property
    def outputs(self) -> list[tuple[str, list[Any]]]:
        """(name, shape) of each graph output."""
        return [(o.name, list(o.shape)) for o in self._session.get_outputs()]

    @property
    def metadata(self) -> Mapping[str, str]:
        """See :class:`InferenceSession`."""
        return dict(self._session.get_modelmeta().custom_metadata_map)

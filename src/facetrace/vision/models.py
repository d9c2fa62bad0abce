"""The registry of embedding models: each a named descriptor, looked up explicitly.

A descriptor records everything that must match between a gallery and a
probe: the model id stored with every vector, the vector size, the chip
geometry, and the default decision threshold. An unknown model name raises.
"""

from __future__ import annotations

from pathlib import Path

from facetrace.config import Backend
from facetrace.errors import ModelUnavailable
from facetrace.vision.descriptors import (
    DLIB_DEFAULT,
    DLIB_DESCRIPTORS,
    DLIB_RESNET_V1,
    DLIB_RESNET_V1_JITTER,
    Alignment,
    ModelDescriptor,
    dlib_descriptor,
)
from facetrace.vision.embed import Embedder
from facetrace.vision.ort import OrtRuntime

# the descriptors are re-exported: they live in a module light enough for `facetrace status`
__all__ = [
    "DLIB_DEFAULT",
    "DLIB_RESNET_V1",
    "DLIB_RESNET_V1_JITTER",
    "Alignment",
    "ModelDescriptor",
    "arcface_descriptor",
    "make_embedder",
]


def default_cache_dir() -> Path:
    """Where derived model files go when no data directory is given (per-user cache)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("facetrace", appauthor=False)) / "models"


def arcface_descriptor(path: Path) -> ModelDescriptor:
    """Descriptor of an ArcFace-style ONNX model; its id names the file (models never mix)."""
    return ModelDescriptor(
        name=str(path),
        model_id=f"arcface:{path.stem}",
        dim=512,
        chip_size=112,
        alignment=Alignment.ARCFACE_112,
        verify_threshold=0.35,
        calibration_name=None,
    )


def make_embedder(
    model: str = "dlib-resnet-v1",
    *,
    backend: Backend = Backend.DLIB,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    threads: int = 0,
) -> tuple[ModelDescriptor, Embedder]:
    """The descriptor and an (unloaded) embedder for ``model``.

    Args:
        model: ``"dlib-resnet-v1"`` (:data:`DLIB_DEFAULT`), a dlib variant's model id
            (``dlib-resnet-v1+flip``, ``dlib-resnet-v1+flip+jitter8``: a gallery made
            with one is searched with it), or a path to an ArcFace-style ``.onnx`` file.
        backend: runtime for the dlib model.
        cache_dir: where derived model files (the converted ONNX graph) are kept;
            default: :func:`default_cache_dir`.
        batch_size: chips per inference call.
        threads: ONNX Runtime intra-op threads (0: every core; 1 in worker processes).

    Raises:
        ModelUnavailable: unknown model name or backend.
    """
    dlib_model = dlib_descriptor(model)
    if dlib_model is not None:
        from facetrace.vision.dlib_onnx import DlibEmbedder, OnnxDlibEmbedder

        if backend == Backend.DLIB:
            return dlib_model, DlibEmbedder(batch_size=batch_size)
        if backend == Backend.ONNX:
            if cache_dir is None:
                cache_dir = default_cache_dir()
            runtime = OrtRuntime(intra_op_threads=threads)
            return dlib_model, OnnxDlibEmbedder(cache_dir, batch_size=batch_size, runtime=runtime)
        raise ModelUnavailable(f"unknown backend {backend!r}")
    path = Path(model)
    if path.suffix == ".onnx":
        try:
            from facetrace.vision.arcface import ArcFaceEmbedder
        except ImportError as exc:
            raise ModelUnavailable("ArcFace models are not available") from exc
        desc = arcface_descriptor(path)
        return desc, ArcFaceEmbedder(
            path,
            model_id=desc.model_id,
            batch_size=batch_size,
            runtime=OrtRuntime(intra_op_threads=threads),
        )
    raise ModelUnavailable(
        f"unknown model {model!r}: use 'dlib-resnet-v1', one of its variants ("
        + ", ".join(repr(m) for m in DLIB_DESCRIPTORS)
        + ") or a path to an ArcFace .onnx file"
    )

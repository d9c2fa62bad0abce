"""Index recipes by name: build, reopen and choose a backend from a config string.

Recipes (the ``index.kind`` setting, and ``facetrace index rebuild --kind``):

``flat``      exact scan (:class:`~facetrace.index.flat.FlatIndex`)
``hnsw``      HNSW graph, M=48 (``hnsw32``, ``hnsw64``... set M)
``ivf-sq8``   inverted lists of 8-bit codes re-ranked from float16 copies: memory-bounded
``ivf-sq8-raw`` the same without the float16 copies (smallest, lower recall)
``milvus``    a Milvus collection (``uri=`` Milvus Lite file or server URL)
``auto``      :func:`choose_kind` from the gallery size

Unknown recipes raise :class:`facetrace.errors.IndexUnavailable`, never fall back.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from facetrace.errors import IndexUnavailable
from facetrace.index.base import VectorIndex
from facetrace.index.faiss_ann import IvfIndex
from facetrace.index.flat import FlatIndex
from facetrace.index.hnsw import HnswIndex
from facetrace.index.persist import is_manifest, read_manifest

KINDS = ("flat", "hnsw", "ivf-sq8", "milvus")

#: Below this many faces the exact scan is the default: at 200k 128-d faces it answers
#: a top-10 query in ~5 ms on one core, needs no build, no tuning and is exact; the
#: HNSW graph would cost minutes of build and 256 more bytes per face for little gain.
FLAT_MAX = 200_000
#: Above this many faces HNSW's ~920 bytes per face (~9 GB at 10M) stops fitting next to
#: everything else on a 24 GiB machine, and its single-threaded build time passes an
#: hour; IVF-SQ8 keeps ~140 bytes per face and builds in minutes.
HNSW_MAX = 5_000_000

_HNSW_M = re.compile(r"^hnsw(\d+)?$")


def choose_kind(n_faces: int) -> str:
    """The default recipe for a gallery of ``n_faces``: flat, then hnsw, then ivf-sq8."""
    if n_faces < 0:
        raise IndexUnavailable(f"gallery size must be non-negative, got {n_faces}")
    if n_faces <= FLAT_MAX:
        return "flat"
    if n_faces <= HNSW_MAX:
        return "hnsw"
    return "ivf-sq8"


def canonical_kind(kind: str) -> tuple[str, dict[str, Any]]:
    """Split a recipe into its backend name and the parameters the name implies.

    >>> canonical_kind("hnsw16")
    ('hnsw', {'m': 16})
    """
    name = kind.strip().lower()
    match = _HNSW_M.match(name)
    if match:
        return "hnsw", ({"m": int(match.group(1))} if match.group(1) else {})
    if name in ("ivf", "ivf-sq8", "ivfsq8"):
        return "ivf-sq8", {}
    if name == "ivf-sq8-raw":
        return "ivf-sq8", {"refine": "none"}
    if name in ("flat", "milvus"):
        return name, {}
    raise IndexUnavailable(f"unknown index kind {kind!r}; expected one of {', '.join(KINDS)}")


def make_index(kind: str, dim: int, *, n_faces: int = 0, **params: Any) -> VectorIndex:
    """A new, empty index of recipe ``kind`` for ``dim``-d vectors.

    ``n_faces`` resolves ``kind="auto"``; ``params`` go to the backend's constructor
    (e.g. ``ef_search=``, ``nprobe=``, ``uri=``); unknown ones raise IndexUnavailable.
    """
    if kind == "auto":
        kind = choose_kind(n_faces)
    name, implied = canonical_kind(kind)
    merged = {**implied, **params}
    try:
        if name == "flat":
            if merged:
                raise IndexUnavailable(f"flat index takes no parameters, got {sorted(merged)}")
            return FlatIndex(dim)
        if name == "hnsw":
            return HnswIndex(dim, **merged)
        if name == "ivf-sq8":
            return IvfIndex(dim, **merged)
        from facetrace.index.milvus import MilvusIndex

        if not merged.get("uri"):
            raise IndexUnavailable(
                "the milvus index needs a URI: set FACETRACE_MILVUS__URI to a Milvus Lite "
                "file (/srv/facetrace/vectors.db) or a server (http://host:19530)"
            )
        return MilvusIndex(dim, **merged)
    except TypeError as exc:
        raise IndexUnavailable(f"bad parameters for index kind {kind!r}: {exc}") from exc


def load_index(path: Path, dim: int, **overrides: Any) -> VectorIndex:
    """Reopen an index saved at ``path``, whatever its kind.

    Every kind is a JSON manifest naming it (see :mod:`facetrace.index.persist`); a
    bare FAISS file is a ``flat`` index saved before vectors carried groups.
    ``overrides`` go to the Milvus loader (connection settings such as the ``token``,
    which is never written to disk); the FAISS kinds take none.
    """
    if not path.exists():
        raise IndexUnavailable(f"no index at {path}")
    if not is_manifest(path):
        return FlatIndex.load(path, dim)
    kind = read_manifest(path).get("kind")
    if kind == "flat":
        return FlatIndex.load(path, dim)
    if kind == "hnsw":
        return HnswIndex.load(path, dim)
    if kind == "ivf-sq8":
        return IvfIndex.load(path, dim)
    if kind == "milvus":
        from facetrace.index.milvus import MilvusIndex

        return MilvusIndex.load(path, dim, **overrides)
    raise IndexUnavailable(f"{path}: unknown index kind {kind!r}")


def index_kind(index: VectorIndex) -> str:
    """The recipe name of an open index (``settings()["kind"]``)."""
    return str(index.settings().get("kind", "unknown"))

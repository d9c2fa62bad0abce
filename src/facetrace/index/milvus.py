"""Milvus backend through pymilvus's ``MilvusClient``, configured by URI.

* ``uri="/path/gallery.db"``: Milvus Lite, an embedded local file. Slow (tens to
  hundreds of ms per query); used by the tests as a stand-in for a server.
* ``uri="http://host:19530"`` (plus ``token``): a Milvus standalone or cluster server,
  the path beyond one machine. See ``docs/milvus.md`` for the layout at 10^9 faces.

Ids are ours (INT64 primary key, ``auto_id`` off); the metric is inner product on
L2-normalised vectors, so scores match the FAISS backends. Selectors become Milvus
boolean expressions on the primary key (``id in [...]`` / ``id not in [...]``),
evaluated inside the search. The collection is created with Strong consistency so
a search sees every earlier insert and delete. Milvus persists by itself;
:meth:`MilvusIndex.save` flushes and writes a small manifest (URI, collection,
index parameters, never the token) so :func:`facetrace.index.factory.load_index`
can reopen it like any other backend.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable
from facetrace.index.base import (
    MISSING_ID,
    Capabilities,
    Ids,
    Selector,
    Vectors,
    check_ids,
    check_vectors,
)
from facetrace.index.persist import FORMAT, VERSION, read_manifest

log = logging.getLogger(__name__)

MAX_TOPK = 16384  # Milvus's limit on k per query
_INSERT_BATCH = 10_000


def _client(uri: str, token: str | None) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise IndexUnavailable(
            "the Milvus backend needs pymilvus (pip install 'facetrace[milvus]')"
        ) from exc
    try:
        return MilvusClient(uri=uri, token=token or "")
    except Exception as exc:  # pymilvus raises assorted connection errors
        raise IndexUnavailable(f"cannot connect to Milvus at {uri}: {exc}") from exc


def _id_list(ids: frozenset[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in sorted(ids)) + "]"


def selector_expression(selector: Selector | None) -> str:
    """The Milvus boolean expression for ``selector`` ("" for no filter).

    >>> selector_expression(Selector(allow=frozenset({2, 1}), deny=frozenset({2})))
    'id in [1,2] and id not in [2]'
    """
    if selector is None:
        return ""
    parts = []
    if selector.allow is not None:
        parts.append(f"id in {_id_list(selector.allow)}")
    if selector.deny:
        parts.append(f"id not in {_id_list(selector.deny)}")
    return " and ".join(parts)


class MilvusIndex:
    """One Milvus collection of (id, vector) rows.

    ``index_type`` / ``index_params`` are Milvus's (``FLAT`` exact, ``HNSW`` with
    ``{"M": 32, "efConstruction": 200}``, ``IVF_SQ8``, ``DISKANN``, ...);
    ``search_params`` are sent with every search (e.g. ``{"ef": 64}``).
    """

    kind = "milvus"

    def __init__(
        self,
        dim: int,
        *,
        uri: str,
        collection: str = "faces",
        token: str | None = None,
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> None:
        if dim < 1 or not collection.replace("_", "").isalnum():
            raise IndexUnavailable(f"invalid Milvus dimension or collection name {collection!r}")
        self.dim = dim
        self.uri = uri
        self.collection = collection
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self.capabilities = Capabilities(
            exact=index_type == "FLAT", native_remove=True, filtered_search=True, persistent=True
        )
        self._client = _client(uri, token)
        self._open()

    def _open(self) -> None:
        from pymilvus import DataType, MilvusClient

        client = self._client
        if client.has_collection(self.collection):
            fields = client.describe_collection(self.collection).get("fields", [])
            dims = [int(f["params"]["dim"]) for f in fields if "dim" in f.get("params", {})]
            if dims != [self.dim]:
                raise IndexUnavailable(
                    f"Milvus collection {self.collection!r} has vector dimension(s) {dims}, "
                    f"expected {self.dim}"
                )
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type=self.index_type,
                metric_type="IP",
                params=self.index_params,
            )
            client.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level="Strong"
            )
            log.info("created Milvus collection %s (%s)", self.collection, self.index_type)
        client.load_collection(self.collection)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        for start in range(0, labels.size, _INSERT_BATCH):
            rows = [
                {"id": int(i), "vector": v.tolist()}
                for i, v in zip(
                    labels[start : start + _INSERT_BATCH],
                    vecs[start : start + _INSERT_BATCH],
                    strict=True,
                )
            ]
            self._client.insert(self.collection, rows)

    def remove(self, ids: Iterable[int]) -> int:
        """Delete ``ids``; counts only those present (Milvus's own count includes misses)."""
        wanted = sorted({int(i) for i in ids})
        removed = 0
        for start in range(0, len(wanted), _INSERT_BATCH):
            chunk = frozenset(wanted[start : start + _INSERT_BATCH])
            present = self._client.query(
                self.collection,
                filter=f"id in {_id_list(chunk)}",
                output_fields=["id"],
                limit=len(chunk),
            )
            if present:
                self._client.delete(self.collection, ids=[int(row["id"]) for row in present])
                removed += len(present)
        return removed

    def search(
        self, queries: Vectors, k: int, selector: Selector | None = None
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        q = check_vectors(queries, self.dim)
        if not 1 <= k <= MAX_TOPK:
            raise IndexUnavailable(f"k must be between 1 and {MAX_TOPK}, got {k}")
        nq = q.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), MISSING_ID, dtype=np.int64)
        if nq == 0 or (selector is not None and selector.allow is not None and not selector.allow):
            return scores, ids
        hits = self._client.search(
            self.collection,
            data=q.tolist(),
            limit=k,
            filter=selector_expression(selector),
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": self.search_params},
        )
        for row, found in enumerate(hits):
            for col, hit in enumerate(found[:k]):
                scores[row, col] = float(hit["distance"])
                ids[row, col] = int(hit["id"])
        return scores, ids

    @property
    def count(self) -> int:
        rows = self._client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> Ids:
        iterator = self._client.query_iterator(
            self.collection, batch_size=10_000, filter="id >= 0", output_fields=["id"]
        )
        found: list[int] = []
        try:
            while batch := iterator.next():
                found.extend(int(row["id"]) for row in batch)
        finally:
            iterator.close()
        return np.asarray(found, dtype=np.int64)

    def params(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "collection": self.collection,
            "index_type": self.index_type,
            "index_params": self.index_params,
            "search_params": self.search_params,
        }

    def save(self, path: Path) -> None:
        """Flush Milvus's own storage and write the manifest (no secrets) at ``path``."""
        self._client.flush(self.collection)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "kind": self.kind,
            "dim": self.dim,
            "params": self.params(),
            "files": {},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path, dim: int, *, token: str | None = None) -> MilvusIndex:
        """Reconnect to the collection named by the manifest at ``path``."""
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind or not isinstance(meta.get("params"), dict):
            raise IndexUnavailable(f"{path} is not a Milvus index manifest")
        return cls(dim, token=token, **meta["params"])

    def close(self) -> None:
        """Release the client connection (Milvus Lite holds a file lock)."""
        self._client.close()

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": self.count,
            **self.params(),
        }

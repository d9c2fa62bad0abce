"""Milvus backend through pymilvus's ``MilvusClient``, configured by URI.

* ``uri="/path/gallery.db"``: Milvus Lite, an embedded local file. Slow (tens to
  hundreds of ms per query); used by the tests as a stand-in for a server.
* ``uri="http://host:19530"`` (plus ``token``): a Milvus standalone or cluster server,
  the path beyond one machine. See ``docs/milvus.md`` for the layout at 10^9 faces.

Ids are ours (INT64 primary key, ``auto_id`` off); the metric is inner product on
L2-normalised vectors, so scores match the FAISS backends. Each row carries its group
(the facetrace collection id) in an INT64 field ``group_id`` declared as the
collection's *partition key*: Milvus hashes it to one of ``num_partitions``
partitions, and a search filtered on ``group_id`` only visits the partitions those
groups hash to. Milvus Lite (3.2) accepts the partition key (it keeps its own fixed
16 partitions whatever ``num_partitions`` says), so the tests exercise the same schema
as a server; no plain-scalar fallback is needed.

Selectors become Milvus boolean expressions evaluated inside the search:
``group_id in [...]`` for groups, ``id in [...]`` / ``id not in [...]`` for the id
sets. The collection is created with Strong consistency so a search sees every
earlier insert and delete. A collection created before the ``group_id`` field
existed is refused (:class:`IndexUnavailable`): it cannot filter by group, and
guessing would misfilter. Milvus persists by itself; :meth:`MilvusIndex.save`
flushes and writes a small manifest (URI, collection, index parameters, never the
token) so :func:`facetrace.index.factory.load_index` can reopen it like any other
backend.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable
from facetrace.index.base import (
    MISSING_ID,
    UNKNOWN_GROUP,
    Capabilities,
    Groups,
    Ids,
    Selector,
    Vectors,
    check_groups,
    check_ids,
    check_vectors,
)
from facetrace.index.persist import read_manifest, save_bundle

log = logging.getLogger(__name__)

MAX_TOPK = 16384  # Milvus's limit on k per query
GROUP_FIELD = "group_id"
_INSERT_BATCH = 10_000


def _reason(exc: Exception) -> str:
    """pymilvus's own message, on one line (its ``str`` wraps it in the class name)."""
    text = str(getattr(exc, "message", "") or exc or type(exc).__name__)
    return " ".join(text.split())


#: Milvus's consistency levels: ``Strong`` sees every acknowledged write (each read waits
#: for the server's next time tick, ~200 ms by default); ``Bounded`` may miss writes of
#: the last ``common.gracefulTime`` (5 s) and answers at once; ``Session`` sees this
#: client's own writes; ``Eventually`` promises nothing.
CONSISTENCY_LEVELS = ("Strong", "Bounded", "Session", "Eventually")
#: the TLS options of pymilvus's connection (one-way TLS: ``secure`` plus the server's
#: certificate or a CA; two-way: also the client's certificate and key)
TLS_OPTIONS = (
    "secure",
    "server_pem_path",
    "server_name",
    "ca_pem_path",
    "client_pem_path",
    "client_key_path",
)


#: what to check when pymilvus cannot tell why the server refused the connection (it gives
#: the same message for a server that is down, a wrong token and TLS on one side only)
CONNECT_HINT = (
    "check that the server is up, the token (FACETRACE_MILVUS__TOKEN) and the TLS "
    "settings (FACETRACE_MILVUS__SECURE, __SERVER_PEM_PATH or __CA_PEM_PATH, __SERVER_NAME)"
)


def _client(
    uri: str, token: str | None, db_name: str, timeout: float, tls: dict[str, Any] | None = None
) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise IndexUnavailable(
            "the Milvus backend needs pymilvus (pip install 'facetrace[milvus]')"
        ) from exc
    extra = {k: v for k, v in (tls or {}).items() if v not in (None, "", False)}
    try:
        return MilvusClient(uri=uri, token=token or "", db_name=db_name, timeout=timeout, **extra)
    except Exception as exc:  # pymilvus raises assorted connection errors
        reason = _reason(exc)
        if "illegal connection params" in reason and not uri.endswith(".db"):
            # a server that is down, a refused token and a TLS mismatch all look alike
            reason += f" ({CONNECT_HINT})"
        raise IndexUnavailable(f"cannot connect to Milvus at {uri}: {reason}") from exc


def check_connection(params: dict[str, Any]) -> None:
    """Connect with the ``uri``, ``token``, ``db_name``, ``timeout`` and TLS options of
    ``params`` (the :class:`MilvusIndex` parameters) and disconnect; raises
    :class:`IndexUnavailable`."""
    uri = str(params.get("uri") or "")
    if not uri:
        raise IndexUnavailable("no Milvus URI configured (FACETRACE_MILVUS__URI)")
    client = _client(
        uri,
        params.get("token"),
        str(params.get("db_name", "")),
        float(params.get("timeout", 10)),
        {k: params.get(k) for k in TLS_OPTIONS},
    )
    client.close()


def _not_loaded(exc: Exception) -> bool:
    """Whether Milvus refused a read because the collection is not loaded (after a
    server restart it reloads in the background, or not at all)."""
    return "not loaded" in _reason(exc).lower()


def _id_list(ids: frozenset[int]) -> str:
    return "[" + ",".join(str(int(i)) for i in sorted(ids)) + "]"


def selector_expression(selector: Selector | None) -> str:
    """The Milvus boolean expression for ``selector`` ("" for no filter).

    >>> selector_expression(Selector(allow=frozenset({2, 1}), deny=frozenset({2})))
    'id in [1,2] and id not in [2]'
    >>> selector_expression(Selector(groups=frozenset({7, 3}), deny=frozenset({5})))
    'group_id in [3,7] and id not in [5]'
    """
    if selector is None:
        return ""
    parts = []
    if selector.groups is not None:
        parts.append(f"{GROUP_FIELD} in {_id_list(selector.groups)}")
    if selector.allow is not None:
        parts.append(f"id in {_id_list(selector.allow)}")
    if selector.deny:
        parts.append(f"id not in {_id_list(selector.deny)}")
    return " and ".join(parts)


class MilvusIndex:
    """One Milvus collection of (id, vector, group_id) rows.

    ``uri`` is a Milvus Lite file or a server (``http://host:19530``); ``token`` is
    ``user:password`` or an API key, ``db_name`` a Milvus database ("" for the
    default), ``timeout`` the seconds allowed for connecting. ``index_type`` /
    ``index_params`` are Milvus's (``FLAT`` exact, ``HNSW`` with
    ``{"M": 32, "efConstruction": 200}``, ``IVF_SQ8``, ``DISKANN``, ...);
    ``search_params`` are sent with every search (e.g. ``{"ef": 64}``).
    ``num_partitions`` (fixed at creation) is how many partitions the ``group_id``
    partition key hashes into, ``shards_num`` (fixed at creation, 1-16) how many
    write channels the collection has. ``consistency_level`` (one of
    :data:`CONSISTENCY_LEVELS`) is the collection's and every read's. ``timeout``
    bounds connecting and every request, in seconds. ``secure`` and the other
    :data:`TLS_OPTIONS` are pymilvus's TLS settings.

    Every failure of the server (down, restarting, refusing) is raised as
    :class:`IndexUnavailable` naming the URI, never as a pymilvus exception; the
    client reconnects by itself, so calls succeed again once the server is back, and
    a read refused because the collection is not loaded (after a restart) loads it
    and is tried once more.
    """

    kind = "milvus"

    def __init__(
        self,
        dim: int,
        *,
        uri: str,
        collection: str = "faces",
        token: str | None = None,
        db_name: str = "",
        index_type: str = "FLAT",
        index_params: dict[str, Any] | None = None,
        search_params: dict[str, Any] | None = None,
        num_partitions: int = 64,
        shards_num: int = 1,
        consistency_level: str = "Strong",
        timeout: float = 10.0,
        secure: bool = False,
        server_pem_path: str = "",
        server_name: str = "",
        ca_pem_path: str = "",
        client_pem_path: str = "",
        client_key_path: str = "",
    ) -> None:
        if dim < 1 or not collection.replace("_", "").isalnum():
            raise IndexUnavailable(f"invalid Milvus dimension or collection name {collection!r}")
        if not 1 <= num_partitions <= 1024 or timeout <= 0 or not 1 <= shards_num <= 16:
            raise IndexUnavailable(
                f"invalid Milvus num_partitions {num_partitions}, shards_num {shards_num} "
                "or timeout"
            )
        if consistency_level not in CONSISTENCY_LEVELS:
            raise IndexUnavailable(
                f"invalid Milvus consistency level {consistency_level!r}; expected one of "
                + ", ".join(CONSISTENCY_LEVELS)
            )
        self.dim = dim
        self.uri = uri
        self.collection = collection
        self.db_name = db_name
        self.index_type = index_type
        self.index_params = dict(index_params or {})
        self.search_params = dict(search_params or {})
        self.num_partitions = num_partitions
        self.shards_num = shards_num
        self.consistency_level = consistency_level
        self.timeout = timeout
        self.tls = {
            "secure": secure,
            "server_pem_path": server_pem_path,
            "server_name": server_name,
            "ca_pem_path": ca_pem_path,
            "client_pem_path": client_pem_path,
            "client_key_path": client_key_path,
        }
        self.capabilities = Capabilities(
            exact=index_type == "FLAT", native_remove=True, filtered_search=True, persistent=True
        )
        self._client = _client(uri, token, db_name, timeout, self.tls)
        try:
            self._open()
        except IndexUnavailable:
            self._client.close()
            raise
        except Exception as exc:  # pymilvus raises its own exception types for everything
            self._client.close()
            raise IndexUnavailable(
                f"Milvus at {uri} refused collection {collection!r}: {_reason(exc)}"
            ) from exc

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
            if GROUP_FIELD not in {f.get("name") for f in fields}:
                raise IndexUnavailable(
                    f"Milvus collection {self.collection!r} at {self.uri} has no "
                    f"{GROUP_FIELD!r} field (it was created before facetrace tagged faces "
                    "with their collection), so it cannot filter by collection. Drop it "
                    "(pymilvus: MilvusClient.drop_collection) and open the gallery again: "
                    "it refills the collection from SQL."
                )
        else:
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            schema.add_field(GROUP_FIELD, DataType.INT64, is_partition_key=True)
            index = client.prepare_index_params()
            index.add_index(
                field_name="vector",
                index_type=self.index_type,
                metric_type="IP",
                params=self.index_params,
            )
            client.create_collection(
                self.collection,
                schema=schema,
                index_params=index,
                consistency_level=self.consistency_level,
                num_partitions=self.num_partitions,
                shards_num=self.shards_num,
            )
            log.info("created Milvus collection %s (%s)", self.collection, self.index_type)
        client.load_collection(self.collection, timeout=self.timeout)

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        """``self._client.<method>(*args, **kwargs)`` with the request timeout; any failure
        becomes one :class:`IndexUnavailable` line naming the server and ``what`` failed."""
        kwargs.setdefault("timeout", self.timeout)
        for attempt in (1, 2):
            try:
                return getattr(self._client, method)(*args, **kwargs)
            except IndexUnavailable:
                raise
            except Exception as exc:  # pymilvus and grpc raise their own types
                if attempt == 1 and _not_loaded(exc):
                    log.warning("Milvus collection %s not loaded; loading it", self.collection)
                    with suppress(Exception):  # the retry reports what still fails
                        self._client.load_collection(self.collection, timeout=self.timeout)
                    continue
                raise IndexUnavailable(
                    f"Milvus at {self.uri} unavailable ({what}): {_reason(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def add(self, ids: Ids, vectors: Vectors, groups: Groups | None = None) -> None:
        vecs = check_vectors(vectors, self.dim)
        labels = check_ids(ids, vecs.shape[0])
        tags = check_groups(groups, vecs.shape[0])
        self._insert(labels, vecs, tags)

    def _insert(self, labels: Ids, vecs: Vectors, tags: Groups) -> None:
        for start in range(0, labels.size, _INSERT_BATCH):
            end = start + _INSERT_BATCH
            rows = [
                {"id": int(i), "vector": v.tolist(), GROUP_FIELD: int(g)}
                for i, v, g in zip(labels[start:end], vecs[start:end], tags[start:end], strict=True)
            ]
            self._call("insert", "insert", self.collection, rows)

    def remove(self, ids: Iterable[int]) -> int:
        """Delete ``ids``; counts only those present (Milvus's own count includes misses)."""
        wanted = np.asarray(sorted({int(i) for i in ids}), dtype=np.int64)
        held = wanted[self.present(wanted)].tolist()
        for start in range(0, len(held), _INSERT_BATCH):
            self._call("delete", "delete", self.collection, ids=held[start : start + _INSERT_BATCH])
        return len(held)

    def search(
        self, queries: Vectors, k: int, selector: Selector | None = None
    ) -> tuple[npt.NDArray[np.float32], Ids]:
        q = check_vectors(queries, self.dim)
        if not 1 <= k <= MAX_TOPK:
            raise IndexUnavailable(f"k must be between 1 and {MAX_TOPK}, got {k}")
        nq = q.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), MISSING_ID, dtype=np.int64)
        if nq == 0 or (
            selector is not None
            and any(part is not None and not part for part in (selector.allow, selector.groups))
        ):
            return scores, ids
        hits = self._call(
            "search",
            "search",
            self.collection,
            data=q.tolist(),
            limit=k,
            filter=selector_expression(selector),
            output_fields=["id"],
            search_params={"metric_type": "IP", "params": self.search_params},
            consistency_level=self.consistency_level,
        )
        for row, found in enumerate(hits):
            for col, hit in enumerate(found[:k]):
                scores[row, col] = float(hit["distance"])
                ids[row, col] = int(hit["id"])
        return scores, ids

    @property
    def count(self) -> int:
        return self._count("")

    def _count(self, expression: str) -> int:
        rows = self._call(
            "count",
            "query",
            self.collection,
            filter=expression,
            output_fields=["count(*)"],
            consistency_level=self.consistency_level,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> Ids:
        return self.id_groups()[0]

    def id_groups(self) -> tuple[Ids, Groups]:
        return self._id_groups("id >= 0")

    def _id_groups(self, expression: str) -> tuple[Ids, Groups]:
        iterator = self._call(
            "listing ids",
            "query_iterator",
            self.collection,
            batch_size=10_000,
            filter=expression,
            output_fields=["id", GROUP_FIELD],
            consistency_level=self.consistency_level,
        )
        found: list[int] = []
        tags: list[int] = []
        try:
            while batch := iterator.next():
                for row in batch:
                    found.append(int(row["id"]))
                    tags.append(int(row.get(GROUP_FIELD, UNKNOWN_GROUP)))
        except Exception as exc:  # the server went away half-way
            why = f"Milvus at {self.uri} unavailable (listing ids): {_reason(exc)}"
            raise IndexUnavailable(why) from exc
        finally:
            with suppress(Exception):
                iterator.close()
        return np.asarray(found, dtype=np.int64), np.asarray(tags, dtype=np.int64)

    def present(self, ids: Ids) -> npt.NDArray[np.bool_]:
        """Which of ``ids`` the collection holds: one ``id in [...]`` query per 10,000."""
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        found: set[int] = set()
        for start in range(0, wanted.size, _INSERT_BATCH):
            chunk = frozenset(int(i) for i in wanted[start : start + _INSERT_BATCH])
            rows = self._call(
                "looking up ids",
                "query",
                self.collection,
                filter=f"id in {_id_list(chunk)}",
                output_fields=["id"],
                limit=len(chunk),
                consistency_level=self.consistency_level,
            )
            found.update(int(r["id"]) for r in rows)
        return np.fromiter((int(i) in found for i in wanted), dtype=bool, count=wanted.size)

    def group_counts(self, groups: Groups) -> Ids:
        """Rows per group: one count query per group (the partition key prunes each)."""
        wanted = np.asarray(groups, dtype=np.int64).reshape(-1)
        return np.asarray(
            [self._count(f"{GROUP_FIELD} == {int(g)}") for g in wanted], dtype=np.int64
        )

    def id_groups_in(self, groups: Groups) -> tuple[Ids, Groups]:
        wanted = frozenset(int(g) for g in np.asarray(groups).reshape(-1))
        if not wanted:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return self._id_groups(f"{GROUP_FIELD} in {_id_list(wanted)}")

    def set_groups(self, ids: Ids, groups: Groups) -> int:
        """Rewrite the rows of ``ids`` with new groups: a delete, then an insert into the
        partition of the new group.

        Not an upsert: Milvus 2.3's upsert on a partition-key collection hides some of
        the rows it moves from later searches (seen on the standalone server). A crash
        between the two steps leaves the rows missing, which the gallery's repair on
        open sees (the per-collection counts differ from SQL) and refills.
        """
        wanted = np.asarray(ids, dtype=np.int64).reshape(-1)
        tags = check_groups(groups, wanted.size)
        new = dict(zip(wanted.tolist(), tags.tolist(), strict=True))
        retagged = 0
        order = sorted(new)
        for start in range(0, len(order), _INSERT_BATCH):
            rows = self._call(
                "retagging",
                "get",
                self.collection,
                ids=order[start : start + _INSERT_BATCH],
                output_fields=["vector"],
            )
            if not rows:
                continue
            labels = np.asarray([int(r["id"]) for r in rows], dtype=np.int64)
            vecs = np.asarray([r["vector"] for r in rows], dtype=np.float32)
            self._call("retagging", "delete", self.collection, ids=labels.tolist())
            self._insert(labels, vecs, np.asarray([new[int(i)] for i in labels]))
            retagged += labels.size
        return retagged

    def params(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "collection": self.collection,
            "db_name": self.db_name,
            "index_type": self.index_type,
            "index_params": self.index_params,
            "search_params": self.search_params,
            "num_partitions": self.num_partitions,
            "shards_num": self.shards_num,
            "consistency_level": self.consistency_level,
            "timeout": self.timeout,
            # TLS file paths, not secrets (the token is never part of the parameters)
            **{k: v for k, v in self.tls.items() if v},
        }

    def save(self, path: Path) -> None:
        """Flush Milvus's own storage and write the manifest (no secrets) at ``path``."""
        self._call("flush", "flush", self.collection)
        meta = {"kind": self.kind, "dim": self.dim, "params": self.params()}
        save_bundle(path, meta, indexes={}, arrays={})  # a manifest with no parts

    @classmethod
    def load(cls, path: Path, dim: int, **overrides: Any) -> MilvusIndex:
        """Reconnect to the collection named by the manifest at ``path``.

        ``overrides`` (the ``token``, and whatever else the operator configured now, such
        as a new ``uri``) take precedence over the manifest's parameters.
        """
        meta = read_manifest(path)
        if meta.get("kind") != cls.kind or not isinstance(meta.get("params"), dict):
            raise IndexUnavailable(f"{path} is not a Milvus index manifest")
        try:
            return cls(dim, **{**meta["params"], **overrides})
        except TypeError as exc:
            raise IndexUnavailable(f"{path}: bad Milvus parameters: {exc}") from exc

    def close(self) -> None:
        """Release the client connection (Milvus Lite holds a file lock)."""
        self._client.close()

    def health(self) -> dict[str, Any]:
        """The server's state for ``facetrace index status`` and ``/readyz``; never raises.

        ``ok`` is true when the server answers and the collection is loaded; ``server``
        is its version, ``load_state`` the collection's, ``latency_ms`` one count query.
        """
        start = time.perf_counter()
        try:
            version = self._call("health", "get_server_version")
            state = self._call("health", "get_load_state", self.collection)
            self._count("")
        except IndexUnavailable as exc:
            return {"ok": False, "error": str(exc)}
        loaded = str(state.get("state", state)) if isinstance(state, dict) else str(state)
        return {
            "ok": "Loaded" in loaded,
            "server": str(version),
            "load_state": loaded.rsplit(".", 1)[-1],
            "latency_ms": round((time.perf_counter() - start) * 1000, 1),
        }

    def settings(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "metric": "inner_product",
            "dim": self.dim,
            "count": self.count,
            **self.params(),
        }

"""Gallery open time against gallery size: FAISS flat and the Milvus standalone server.

    python -m benchmarks.bench_open [--sizes 10000,100000,1000000] [--backends flat,milvus]

Issue 16 item 3: the repair on open reads what changed since the last save (the
watermark and the delete log kept in SQL) and compares counts, not every id. This
measures, per gallery size and backend (one SQLite gallery each, synthetic unit
vectors in ten collections, written straight into SQL like ``bench_engine``):

* **clean open**: ``Gallery.open`` after a clean close (median of three), and the
  repair's share of it (``last_repair["seconds"]``). For FAISS the rest is mostly
  reading the index file, which is as large as the gallery; for Milvus it is the
  connection and ``load_collection``.
* **open after a crash**: 100 faces committed to SQL but never indexed, and 10 faces
  deleted in SQL (logged) but still in the index, as a writer killed before its save
  leaves them: the repair adds and removes exactly those.
* **full comparison**: the same open with the record made unusable (the repair every
  open did before the watermark): every id of SQL and of the index listed and compared.

Data directories live under ``$TMPDIR`` and are removed at the end, the Milvus server
(started here with its default settings) is stopped. Writes ``.bench/open.json`` and
the ``open`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, write_section

log = logging.getLogger(__name__)
OUT = ROOT / ".bench"
GROUPS = 10
CRASH_ADDS = 100
CRASH_DELETES = 10
CHUNK = 20_000


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _pad(db: Path, model_id: str, start_id: int, n: int, rng: np.random.Generator) -> None:
    """``n`` searchable faces (one subject, photo and face each) with ids from
    ``start_id``, in ten collections, written straight into SQL (no index)."""
    from sqlalchemy import create_engine, insert, select
    from sqlalchemy.orm import Session

    from facetrace.store.models import Collection, FaceRow, Photo, Subject

    engine = create_engine(f"sqlite:///{db}")
    try:
        with Session(engine) as s, s.begin():
            have = {c.name: c.id for c in s.scalars(select(Collection))}
            for g in range(GROUPS):
                if f"bench-{g}" not in have:
                    row = Collection(name=f"bench-{g}", legal_basis="benchmark")
                    s.add(row)
                    s.flush()
                    have[row.name] = row.id
            colls = np.asarray([have[f"bench-{g}"] for g in range(GROUPS)], dtype=np.int64)
            for off in range(0, n, CHUNK):
                m = min(CHUNK, n - off)
                ids = range(start_id + off, start_id + off + m)
                vecs = rng.standard_normal((m, 128)).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                cid = colls[np.asarray(ids) % GROUPS]
                s.execute(insert(Subject), [
                    {"id": i, "external_id": f"b-{i}", "collection_id": int(c)}
                    for i, c in zip(ids, cid, strict=True)])  # fmt: skip
                s.execute(insert(Photo), [
                    {"id": i, "sha256": f"{i:064x}", "subject_id": i, "collection_id": int(c),
                     "extra": {}} for i, c in zip(ids, cid, strict=True)])  # fmt: skip
                s.execute(insert(FaceRow), [
                    {"id": i, "photo_id": i, "subject_id": i, "collection_id": int(c),
                     "face_index": 0, "is_subject": True, "x1": 0, "y1": 0, "x2": 1, "y2": 1,
                     "landmarks": [], "detector_score": 1.0, "quality": 1.0,
                     "quality_reasons": [], "model_id": model_id, "vector": v.tobytes()}
                    for i, c, v in zip(ids, cid, vecs, strict=True)])  # fmt: skip
    finally:
        engine.dispose()


def _copy_db(src: Path, dest: Path) -> None:
    """SQLite's online backup of ``src`` over ``dest`` (WAL included)."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{dest}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dest) as b:
        a.backup(b)
    a.close()
    b.close()


def _open(data: Path, kind: str, params: dict[str, Any]) -> tuple[float, dict[str, Any], int]:
    """Open and close the gallery: (seconds to open, its repair, indexed faces)."""
    from facetrace.gallery.directory import Gallery

    start = time.perf_counter()
    g = Gallery.open(data, index_kind=kind, index_params=params)
    seconds = time.perf_counter() - start
    try:
        return seconds, dict(g.last_repair), int(g.index.count)
    finally:
        g.close()


def _crash(data: Path, kind: str, params: dict[str, Any], top: int) -> None:
    """What a writer killed before its save leaves: faces in SQL the index lacks, and
    deletes logged in SQL that the index still holds."""
    from facetrace.gallery.directory import Gallery
    from facetrace.store import repo
    from facetrace.store.db import transaction

    with Gallery.open(data, index_kind=kind, index_params=params) as g:
        model = g.descriptor.model_id
        with transaction(g.sessions) as s:
            for pid in range(top - 50 * CRASH_DELETES, top, 50)[:CRASH_DELETES]:
                repo.log_pending_deletes(s, face_ids=repo.delete_photo(s, photo=str(pid)))
        # the index is not told: it still holds these faces, as after a crash
    _pad(data / "facetrace.db", model, top + 1, CRASH_ADDS, np.random.default_rng(top))


def _forget_record(data: Path) -> None:
    """Make the saved index's record unusable: the next open compares every id."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from facetrace.gallery.directory import INDEX_STATE_KEY
    from facetrace.store import repo

    engine = create_engine(f"sqlite:///{data / 'facetrace.db'}")
    try:
        with Session(engine) as s, s.begin():
            state = repo.get_meta(s, INDEX_STATE_KEY)
            repo.set_meta(s, key=INDEX_STATE_KEY, value={**state, "stamp": [0, 0]})
    finally:
        engine.dispose()


@contextmanager
def _server() -> Iterator[str]:
    sys.path.insert(0, str(ROOT))
    from tests.milvus_server import milvus_server

    with milvus_server() as running:
        yield running.uri


def run(sizes: list[int], backends: list[str], workdir: Path) -> list[dict[str, Any]]:
    from facetrace.gallery.directory import Gallery

    master = workdir / "master"
    with Gallery.open(master, index_kind="flat") as g:  # the schema, and the model id
        model = g.descriptor.model_id
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        setups: dict[str, tuple[str, dict[str, Any]]] = {}
        for backend in backends:
            if backend == "milvus":
                uri = stack.enter_context(_server())
                setups[backend] = ("milvus", {"uri": uri, "collection": "bench_open"})
            else:
                setups[backend] = (backend, {})
        have = 0
        rng = np.random.default_rng(5)
        for n in sizes:
            _pad(master / "facetrace.db", model, have + 1, n - have, rng)
            have = n
            for backend, (kind, params) in setups.items():
                data = workdir / backend
                data.mkdir(exist_ok=True)
                for part in data.glob("index.faiss*"):  # each size starts from SQL alone
                    part.unlink()
                _copy_db(master / "facetrace.db", data / "facetrace.db")
                fill_s, fill, count = _open(data, kind, params)  # fills the index from SQL
                log.info(
                    "%s %d: filled in %.1f s (%s), %d indexed", backend, n, fill_s, fill, count
                )
                assert count == n, (count, n)
                clean = [_open(data, kind, params) for _ in range(3)]
                _crash(data, kind, params, n)
                crash_s, crashed, after = _open(data, kind, params)
                assert after == n + CRASH_ADDS - CRASH_DELETES, after
                assert crashed["added"] == CRASH_ADDS and crashed["removed"] == CRASH_DELETES
                _forget_record(data)
                full_s, full, _ = _open(data, kind, params)
                assert full["mode"] == "full", full
                row = {
                    "faces": n,
                    "backend": backend,
                    "load": _load(),
                    "open_s": statistics.median(c[0] for c in clean),
                    "repair_s": statistics.median(c[1]["seconds"] for c in clean),
                    "mode": clean[0][1]["mode"],
                    "crash_open_s": crash_s,
                    "crash_repair_s": crashed["seconds"],
                    "crash_repair": {k: crashed[k] for k in ("added", "removed")},
                    "full_open_s": full_s,
                    "full_repair_s": full["seconds"],
                    "fill_s": fill_s,
                }
                log.info("%s", row)
                rows.append(row)
                if kind == "milvus":  # the next size refills it from SQL
                    from pymilvus import MilvusClient

                    client = MilvusClient(uri=str(params["uri"]))
                    client.drop_collection(str(params["collection"]))
                    client.close()
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| faces | backend | clean open s (repair s) | open after a crash s (repair s) "
        "| full comparison s (repair s) | load |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = "Milvus server" if r["backend"] == "milvus" else f"FAISS {r['backend']}"
        lines.append(
            f"| {r['faces']:,} | {name} | {r['open_s']:.2f} ({r['repair_s']:.3f}) | "
            f"{r['crash_open_s']:.2f} ({r['crash_repair_s']:.3f}) | "
            f"{r['full_open_s']:.2f} ({r['full_repair_s']:.3f}) | {r['load']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--backends", default="flat,milvus")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = sorted(int(s) for s in args.sizes.split(","))
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="ft-bench-open-", dir=os.environ.get("TMPDIR")))
    started = _load()
    try:
        rows = run(sizes, backends, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    OUT.mkdir(exist_ok=True)
    (OUT / "open.json").write_text(json.dumps(rows, indent=1))
    write(rows, started, f"--sizes {args.sizes} --backends {args.backends}")
    print(markdown(rows))


def write(rows: list[dict[str, Any]], started: str, options: str) -> None:
    """The ``open`` section of BENCHMARKS.md from ``rows`` (also ``.bench/open.json``)."""
    body = (
        f"Load average (1/5/15 min) at the start: {started}; per row in the table.\n\n"
        "One SQLite gallery per backend, synthetic unit vectors in ten collections. "
        "*Clean open*: `Gallery.open` after a clean close (median of three), in brackets "
        "the repair's share. *After a crash*: 100 faces in SQL the index never got and 10 "
        "deletes logged in SQL the index still holds (a writer killed before its save). "
        "*Full comparison*: the same open with the record unusable, what every open did "
        "before the watermark (every id of SQL and of the index compared).\n\n" + markdown(rows)
    )
    write_section(
        "open",
        "Gallery open time against gallery size (repair on open)",
        f"python -m benchmarks.bench_open {options}",
        body,
    )


if __name__ == "__main__":
    main()

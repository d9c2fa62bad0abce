"""Engine benchmarks: ingest speed, search latency against gallery size, and accuracy.

Run as ``python -m benchmarks.bench_engine [--limit N] [--backend dlib|onnx]``.
Ingest and the evaluations run the real ``facetrace`` command in a subprocess,
so the figures are what a user sees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import faces_dir, write_section

FACETRACE = [sys.executable, "-m", "facetrace.cli"]


def _cli(*args: str) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    proc = subprocess.run([*FACETRACE, *args], capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, json.loads(proc.stdout)


def _subset(images: Path, limit: int, dst: Path) -> int:
    """Symlink the first ``limit`` photos (sorted subject folders) into ``dst``."""
    n = 0
    for sub in sorted(p for p in images.iterdir() if p.is_dir()):
        if n >= limit:
            break
        photos = sorted(sub.glob("*.jpg"))[: limit - n]
        (dst / sub.name).mkdir(parents=True)
        for p in photos:
            (dst / sub.name / p.name).symlink_to(p)
        n += len(photos)
    return n


def bench_ingest(limit: int, backend: str, workers: int, tmp: Path) -> dict[str, Any]:
    src = tmp / f"photos-{limit}"
    if not src.exists():
        _subset(faces_dir() / "lfw" / "images", limit, src)
    data = tmp / f"data-{backend}-{workers}"
    shutil.rmtree(data, ignore_errors=True)
    args = ["--data", str(data), "--backend", backend, "ingest", str(src)]
    secs, summary = _cli(*args, "--workers", str(workers), "--json")
    return {
        "backend": backend,
        "workers": workers,
        "photos": summary["total"],
        "faces": summary["faces_added"],
        "seconds": round(secs, 1),
        "photos_per_s": round(summary["total"] / secs, 2),
        "data": str(data),
    }


def _pad_gallery(data: Path, total: int, backend: str) -> None:
    """Add synthetic subjects so the gallery holds ``total`` indexed faces.

    Vectors are drawn around the real vectors' mean with their per-dimension
    spread and renormalised, so the index does the same work as on real faces.
    """
    from sqlalchemy import insert, select

    from facetrace.config import Backend, PipelineOptions
    from facetrace.gallery.directory import Gallery
    from facetrace.store import repo
    from facetrace.store.models import Collection, FaceRow, Photo, Subject

    with Gallery.open(data, pipeline=PipelineOptions(backend=Backend(backend))) as g:
        have = g.index.count
        need = total - have
        if need <= 0:
            return
        with g.sessions() as s:
            real = np.frombuffer(
                b"".join(s.scalars(select(FaceRow.vector).where(FaceRow.is_subject.is_(True)))),
                dtype=np.float32,
            ).reshape(-1, g.descriptor.dim)
        rng = np.random.default_rng(0)
        mu, sd = real.mean(axis=0), real.std(axis=0)
        with g.sessions() as s, s.begin():
            coll = repo.get_or_create_collection(s, name="synthetic", legal_basis="benchmark")
            base = (s.scalar(select(Subject.id).order_by(Subject.id.desc())) or 0) + 1
            for start in range(0, need, 20_000):
                n = min(20_000, need - start)
                ids = range(base + start, base + start + n)
                vecs = (mu + sd * rng.standard_normal((n, real.shape[1]))).astype(np.float32)
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                s.execute(insert(Subject), [
                    {"id": i, "external_id": f"syn-{i}", "name": f"synthetic {i}",
                     "collection_id": coll.id} for i in ids])  # fmt: skip
                s.execute(insert(Photo), [
                    {"id": 10**8 + i, "sha256": f"{i:064x}", "subject_id": i,
                     "collection_id": coll.id, "extra": {}} for i in ids])  # fmt: skip
                s.execute(insert(FaceRow), [
                    {"id": 10**8 + i, "photo_id": 10**8 + i, "subject_id": i,
                     "collection_id": coll.id, "face_index": 0, "is_subject": True,
                     "x1": 0, "y1": 0, "x2": 1, "y2": 1, "landmarks": [],
                     "detector_score": 0.0, "quality": 1.0, "quality_reasons": [],
                     "model_id": g.descriptor.model_id, "vector": v.tobytes()}
                    for i, v in zip(ids, vecs, strict=True)])  # fmt: skip
        _ = Collection  # imported for clarity of what is written
    with Gallery.open(data, pipeline=PipelineOptions(backend=Backend(backend))) as g:
        assert g.index.count == total  # repaired from SQL on open


def bench_search(
    data: Path, sizes: list[int], backend: str, probes: list[Path]
) -> list[dict[str, Any]]:
    """Latency of a whole search (decode, detect, embed, index, SQL) and of the index alone."""
    from facetrace.config import Backend, PipelineOptions
    from facetrace.gallery.directory import Gallery
    from facetrace.imaging import load_image
    from facetrace.index import set_search_threads

    set_search_threads(1)
    rows = []
    pixels = [load_image(p).pixels for p in probes]
    for size in sizes:
        _pad_gallery(data, size, backend)
        with Gallery.open(data, pipeline=PipelineOptions(backend=Backend(backend))) as g:
            g.search(pixels[0], force=True)  # warm up models
            full = []
            for px in pixels:
                t0 = time.perf_counter()
                g.search(px, force=True)
                full.append(time.perf_counter() - t0)
            faces = [g.pipeline.analyse(px) for px in pixels]
            vecs = np.stack([f[0].vector for f in faces if f])
            idx = []
            for v in vecs:
                t0 = time.perf_counter()
                g.index.search(v[None, :], 40)
                idx.append(time.perf_counter() - t0)
            sv = []
            for v in vecs:
                t0 = time.perf_counter()
                g.search_vectors(v[None, :], k=10)
                sv.append(time.perf_counter() - t0)
        rows.append({
            "gallery_faces": size,
            "search_photo_p50_ms": round(1000 * float(np.median(full)), 1),
            "search_vector_p50_ms": round(1000 * float(np.median(sv)), 2),
            "index_only_p50_ms": round(1000 * float(np.median(idx)), 2),
        })  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1000, help="photos for the ingest benchmark")
    ap.add_argument("--backend", default="onnx")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--parts", default="ingest,search,eval", help="any of ingest,search,eval")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    cores = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="facetrace-bench-"))
    try:
        # the engine issue's baseline (dlib's own descriptor, one process) beside the default
        configs = [("dlib", 1), (args.backend, 1), (args.backend, cores)]
        if "ingest" not in parts:
            configs = configs[-1:]
        ingest_rows = [bench_ingest(args.limit, b, w, tmp) for b, w in configs]
        if "ingest" in parts:
            write_ingest(ingest_rows, args)
        if "search" in parts:
            probes = sorted((faces_dir() / "webphotos13" / "identities").glob("*/*.jpg"))[:20]
            sizes = [int(s) for s in args.sizes.split(",")]
            rows = bench_search(Path(ingest_rows[-1]["data"]), sizes, args.backend, probes)
            write_search(rows, args)
        if "eval" in parts:
            bench_eval(args.backend, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_ingest(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    base = rows[0]["photos_per_s"]
    body = ["| backend | workers | photos | faces | seconds | photos/s | vs dlib, 1 worker |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        body.append(f"| {r['backend']} | {r['workers']} | {r['photos']} | {r['faces']} | "
                    f"{r['seconds']} | {r['photos_per_s']} | "
                    f"{r['photos_per_s'] / base:.2f}x |")  # fmt: skip
    cmd = (f"python -m benchmarks.bench_engine --parts ingest --limit {args.limit} "
           f"--backend {args.backend}")  # fmt: skip
    write_section("engine-ingest", "Ingest speed (first LFW photos by sorted folder)", cmd,
                  "\n".join(body))  # fmt: skip
    print("\n".join(body))


def write_search(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    body = ["Probes: 20 full-size webphotos13 photos. Gallery: the ingested LFW faces, "
            "padded with synthetic vectors drawn from the real vectors' per-dimension mean "
            "and spread, renormalised. One FAISS thread per search.", "",
            "| gallery faces | photo search p50 (ms) | vector search + SQL p50 (ms) "
            "| index only p50 (ms) |", "|---|---|---|---|"]  # fmt: skip
    for r in rows:
        body.append(f"| {r['gallery_faces']} | {r['search_photo_p50_ms']} | "
                    f"{r['search_vector_p50_ms']} | {r['index_only_p50_ms']} |")  # fmt: skip
    cmd = f"python -m benchmarks.bench_engine --parts search --backend {args.backend}"
    write_section("engine-search", "Search latency against gallery size (flat index)", cmd,
                  "\n".join(body))  # fmt: skip
    print("\n".join(body))


def bench_eval(backend: str, tmp: Path) -> None:
    lfw = faces_dir() / "lfw"
    data = tmp / "eval-data"
    secs_l, lfw_res = _cli("--data", str(data), "--backend", backend, "eval", "lfw",
                           "--pairs", str(lfw / "pairs.txt"), "--images", str(lfw / "images"),
                           "--json")  # fmt: skip
    body = [
        "| set | figure | value |", "|---|---|---|",
        f"| LFW ({lfw_res['folds']} folds, {lfw_res['pairs']} pairs) | mean accuracy | "
        f"{100 * lfw_res['accuracy']:.2f} % ± {100 * lfw_res['std']:.2f} (std over folds) |",
        f"| | images without a detected face | {lfw_res['no_face_detected']} of "
        f"{lfw_res['images']} (centred box used) |",
        f"| | time | {secs_l:.0f} s |",
    ]  # fmt: skip
    for name, images in (("LFW half", lfw / "images"), ("AT&T ORL", faces_dir() / "att_orl"),
                         ("webphotos13", faces_dir() / "webphotos13" / "identities")):  # fmt: skip
        secs, r = _cli("--data", str(data), "--backend", backend, "eval", "identify",
                       "--images", str(images), "--json")  # fmt: skip

        def pct(v: float | None) -> str:
            return "n/a" if v is None else f"{100 * v:.2f} %"

        body += [
            f"| {name} open-set 1:N (gallery {r['gallery_size']}, {r['mated_probes']} mated / "
            f"{r['nonmated_probes']} non-mated probes) | rank-1 / rank-10 | "
            f"{pct(r['rank1'])} / {pct(r['rank10'])} |",
            f"| | FNIR at FPIR 0.01 / 0.001 | {pct(r['fnir_at_fpir_0.01'])} / "
            f"{pct(r['fnir_at_fpir_0.001'])} |",
            f"| | time | {secs:.0f} s |",
        ]
    write_section("accuracy", "Accuracy", f"facetrace --backend {backend} eval lfw|identify ...",
                  "\n".join(body))  # fmt: skip
    print("\n".join(body))


if __name__ == "__main__":
    main()

"""Face descriptor speed: dlib's own (dlib-bin, no BLAS) vs ours on ONNX Runtime.

Both run side by side in one process on the same aligned chips, at batch 1 and batch
32, with ONNX Runtime on 1 intra-op thread (the per-core comparison) and on all cores.

    python -m benchmarks.bench_embed [--faces DIR] [--repeats N]

Prints a Markdown table and returns the numbers as a dict from :func:`run`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks.common import write_section
from facetrace.vision.dlib_onnx import DlibEmbedder, OnnxDlibEmbedder
from facetrace.vision.ort import OrtRuntime

Chips = npt.NDArray[np.uint8]


def load_chips(faces: Path, n: int = 32) -> Chips:
    """``n`` dlib-aligned 150x150 chips from ``faces/aligned_chips`` (repeated if fewer)."""
    paths = sorted((faces / "aligned_chips").rglob("*.jpg"))
    if not paths:
        raise SystemExit(f"no aligned chips under {faces / 'aligned_chips'}")
    chips = [np.asarray(Image.open(p).convert("RGB").resize((150, 150))) for p in paths]
    return np.stack([chips[i % len(chips)] for i in range(n)])


def _ms_per_face(fn: Callable[[Chips], Any], chips: Chips, batch: int, repeats: int) -> float:
    """Median over ``repeats`` of the time to embed ``chips`` in batches of ``batch``."""
    fn(chips[:batch])  # warm up (lazy load, allocator, ORT kernels)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(chips), batch):
            fn(chips[i : i + batch])
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(chips)


def run(faces: Path | None = None, *, repeats: int = 3, n_chips: int = 32) -> dict[str, Any]:
    """Time dlib and ONNX Runtime descriptors; return ms per face for each setting.

    Returns:
        ``{"ms_per_face": {(backend, threads, batch): ms}, "speedup": {...}, "machine":
        str, "cold_start_s": float}`` where backend is ``"dlib"`` or ``"onnx"`` and
        threads is 1, "all" (ONNX Runtime) or "dlib" (dlib's own threading).
    """
    faces = faces or Path(os.environ.get("FACETRACE_FACES", "../shared/faces"))
    chips = load_chips(faces, n_chips)
    results: dict[tuple[str, str, int], float] = {}

    ref = DlibEmbedder(batch_size=32)
    for batch in (1, 32):
        results[("dlib", "dlib", batch)] = _ms_per_face(ref.descriptors, chips, batch, repeats)

    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        OnnxDlibEmbedder(Path(cache)).load()
        cold_start = time.perf_counter() - start
        for threads_label, threads in (("1", 1), ("all", 0)):
            ours = OnnxDlibEmbedder(
                Path(cache), batch_size=32, runtime=OrtRuntime(intra_op_threads=threads)
            )
            for batch in (1, 32):
                results[("onnx", threads_label, batch)] = _ms_per_face(
                    ours.descriptors, chips, batch, repeats
                )

    speedup = {
        f"1 thread, batch {b}": results[("dlib", "dlib", b)] / results[("onnx", "1", b)]
        for b in (1, 32)
    } | {
        f"all threads, batch {b}": results[("dlib", "dlib", b)] / results[("onnx", "all", b)]
        for b in (1, 32)
    }
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return {
        "ms_per_face": results,
        "speedup": speedup,
        "machine": machine,
        "cold_start_s": cold_start,
        "chips": len(chips),
        "repeats": repeats,
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table (ms per face; lower is better)."""
    ms = result["ms_per_face"]
    lines = [
        f"Machine: {result['machine']}; {result['chips']} chips, median of "
        f"{result['repeats']} runs; first load (convert + open): "
        f"{result['cold_start_s']:.1f} s",
        "",
        "| backend | threads | ms/face, batch 1 | ms/face, batch 32 | speed-up vs dlib (1 / 32) |",
        "|---|---|---:|---:|---:|",
    ]
    d1, d32 = ms[("dlib", "dlib", 1)], ms[("dlib", "dlib", 32)]
    lines.append(f"| dlib-bin | dlib's own | {d1:.1f} | {d32:.1f} | 1.0x / 1.0x |")
    for label, name in (("1", "1"), ("all", f"all ({os.cpu_count()})")):
        o1, o32 = ms[("onnx", label, 1)], ms[("onnx", label, 32)]
        lines.append(
            f"| ONNX Runtime | {name} | {o1:.1f} | {o32:.1f} | {d1 / o1:.1f}x / {d32 / o32:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    body = markdown(run(args.faces, repeats=args.repeats))
    write_section(
        "embed",
        "Face descriptor: dlib-bin against ONNX Runtime, side by side on the same chips",
        "python -m benchmarks.bench_embed",
        body,
    )
    print(body)


if __name__ == "__main__":
    main()

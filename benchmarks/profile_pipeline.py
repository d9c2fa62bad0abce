"""Where one photo's time goes, stage by stage, in one process on one core.

Run as ``python -m benchmarks.profile_pipeline [--limit N] [--backend onnx|dlib]``.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.common import faces_dir, write_section
from facetrace.config import Backend, PipelineOptions
from facetrace.engine import FacePipeline
from facetrace.imaging import load_image
from facetrace.vision.quality import assess


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--backend", default="onnx")
    args = ap.parse_args()
    photos = sorted((faces_dir() / "lfw" / "images").glob("*/*.jpg"))[: args.limit]
    cache = Path(".bench/models")
    pipe = FacePipeline(PipelineOptions(backend=Backend(args.backend), cache_dir=cache, threads=1))
    pipe.analyse(load_image(photos[0]).pixels)  # load models
    spent: dict[str, float] = defaultdict(float)
    faces = 0
    for path in photos:
        t0 = time.perf_counter()
        pixels = load_image(path).pixels
        t1 = time.perf_counter()
        boxes = pipe.detector.boxes(pixels)
        t2 = time.perf_counter()
        dets = [pipe.detector.detect_in_box(pixels, b) for b, _ in boxes]
        t3 = time.perf_counter()
        chips = [pipe.chip(pixels, d) for d in dets]
        t4 = time.perf_counter()
        for d, c in zip(dets, chips, strict=True):
            assess(d, c)
        t5 = time.perf_counter()
        if chips:
            pipe.embed_chips(np.stack(chips))
        t6 = time.perf_counter()
        faces += len(chips)
        for name, dt in (("decode", t1 - t0), ("detect (HOG)", t2 - t1), ("landmarks", t3 - t2),
                         ("align", t4 - t3), ("quality", t5 - t4),
                         ("embed (with mirror)", t6 - t5)):  # fmt: skip
            spent[name] += dt
    total = sum(spent.values())
    rows = ["| stage | ms per photo | share |", "|---|---|---|"]
    for name, secs in spent.items():
        rows.append(f"| {name} | {1000 * secs / len(photos):.1f} | {100 * secs / total:.0f} % |")
    rows.append(f"| **total** | **{1000 * total / len(photos):.1f}** | {faces} faces |")
    body = "\n".join(rows)
    cmd = f"python -m benchmarks.profile_pipeline --limit {args.limit} --backend {args.backend}"
    write_section(
        f"profile-{args.backend}",
        f"Where the time goes: one process, one thread ({args.backend} backend, LFW 250x250)",
        cmd,
        body,
    )
    print(body)


if __name__ == "__main__":
    main()

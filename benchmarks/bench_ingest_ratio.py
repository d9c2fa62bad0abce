"""`facetrace ingest` against the plain dlib pipeline, side by side in one run.

    python -m benchmarks.bench_ingest_ratio [--limit 1000] [--rounds 1] [--detectors auto]

On the same first ``--limit`` LFW photos (sorted subject folders, sorted files):

* the reference: a one-process face_recognition-style dlib pipeline (the image read with
  Pillow, dlib's HOG detector with one upsampling, the 5-point shape predictor,
  ``dlib.get_face_chip`` and one ``compute_face_descriptor`` per face), as
  ``face_recognition.face_encodings`` does it;
* ``facetrace ingest`` with default settings (all cores, a fresh data directory, SQLite),
  and with ``--detectors`` naming other detectors (``hog``) to show what ``auto`` costs.

Each runs in a fresh process and is timed end to end (start-up and model loading
included): photos/s, faces, CPU seconds of the process and its workers, and the ratio to
the reference. With ``--rounds N`` the pair runs N times interleaved and the figures are
medians (the machine is shared, so the load changes under a run). The load average
(``uptime``) before and after goes into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import faces_dir, write_section

FACETRACE = [sys.executable, "-m", "facetrace.cli"]

# The reference, run as its own process (``python -c``) so it is timed like the CLI.
REFERENCE = r"""
import json, sys, time
from pathlib import Path

import dlib
import face_recognition_models as m
import numpy as np
from PIL import Image

detector = dlib.get_frontal_face_detector()
shape = dlib.shape_predictor(m.pose_predictor_five_point_model_location())
encoder = dlib.face_recognition_model_v1(m.face_recognition_model_location())
faces = 0
vectors = []
for line in Path(sys.argv[1]).read_text().splitlines():
    image = np.array(Image.open(line).convert("RGB"))  # face_recognition.load_image_file
    for rect in detector(image, 1):
        chip = dlib.get_face_chip(image, shape(image, rect), size=150, padding=0.25)
        vectors.append(np.array(encoder.compute_face_descriptor(chip)))
        faces += 1
print(json.dumps({"faces": faces}))
"""


def lfw_subset(limit: int) -> list[Path]:
    """The first ``limit`` LFW photos: sorted subject folders, sorted files in each."""
    root = faces_dir() / "lfw" / "images"
    out: list[Path] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        out.extend(sorted(sub.glob("*.jpg"))[: limit - len(out)])
        if len(out) >= limit:
            break
    return out


def link_tree(photos: list[Path], dst: Path) -> None:
    """Symlink ``photos`` into ``dst/<subject>/<file>`` (what ``facetrace ingest`` reads)."""
    for p in photos:
        (dst / p.parent.name).mkdir(parents=True, exist_ok=True)
        (dst / p.parent.name / p.name).symlink_to(p)


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the process and its children, stdout) of one run of ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu, proc.stdout


def run_reference(listing: Path) -> dict[str, Any]:
    wall, cpu, out = _timed([sys.executable, "-c", REFERENCE, str(listing)])
    return {"wall": wall, "cpu": cpu, "faces": json.loads(out)["faces"]}


def run_ingest(
    tree: Path, data: Path, detector: str | None, src: str | None = None
) -> dict[str, Any]:
    """``facetrace ingest`` (defaults, all cores) into a fresh ``data``; with ``src``, the
    facetrace package is imported from that source tree instead (an older checkout)."""
    shutil.rmtree(data, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACE_")}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [env.get("PYTHONPATH")])])
    env["FACETRACE_FACES"] = str(faces_dir())
    if detector is not None:
        env["FACETRACE_DETECT__DETECTOR"] = detector
    wall, cpu, out = _timed([*FACETRACE, "--data", str(data), "ingest", str(tree), "--json"], env)
    summary = json.loads(out)
    shutil.rmtree(data, ignore_errors=True)
    return {"wall": wall, "cpu": cpu, "faces": summary["faces_added"], "photos": summary["total"]}


def uptime() -> str:
    out = subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout
    return out.strip().split("load average:")[-1].strip()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved runs of each; medians")
    ap.add_argument("--detectors", default="auto", help="facetrace detectors to run, e.g. auto,hog")
    ap.add_argument(
        "--baseline",
        default=None,
        help="also run ingest from this source tree (e.g. an older checkout's src/)",
    )
    ap.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md")
    args = ap.parse_args()
    photos = lfw_subset(args.limit)
    detectors = [d for d in args.detectors.split(",") if d]
    tmp = Path(tempfile.mkdtemp(prefix="facetrace-ratio-"))
    load_before = uptime()
    runs: dict[str, list[dict[str, Any]]] = {"reference": []}
    try:
        listing = tmp / "photos.txt"
        listing.write_text("\n".join(str(p) for p in photos) + "\n")
        tree = tmp / "photos"
        link_tree(photos, tree)
        for r in range(args.rounds):
            runs["reference"].append(run_reference(listing))
            print(f"round {r + 1}: reference {runs['reference'][-1]}", file=sys.stderr)
            for d in detectors:
                res = run_ingest(tree, tmp / "data", None if d == "auto" else d)
                runs.setdefault(d, []).append(res)
                print(f"round {r + 1}: ingest {d} {res}", file=sys.stderr)
            if args.baseline:
                res = run_ingest(tree, tmp / "data", None, src=args.baseline)
                runs.setdefault("baseline", []).append(res)
                print(f"round {r + 1}: baseline ingest {res}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = uptime()
    n = len(photos)

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    ref_rate = n / med(runs["reference"], "wall")
    ref_cpu = med(runs["reference"], "cpu")
    body = [
        f"Photos: the first {n} LFW photos (sorted folders). Rounds: {args.rounds} "
        "(medians; reference and ingest interleaved). Load average (1, 5, 15 min) before: "
        f"{load_before}; after: {load_after}.",
        "",
        "| pipeline | photos | faces | wall s | photos/s | CPU s | CPU ms / photo "
        "| vs reference (photos/s) | CPU bound |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    labels = {"reference": "reference: dlib HOG (upsample 1) + 5-point chip + 1 descriptor, "
              "1 process",
              "baseline": f"`facetrace ingest` from {args.baseline} (detector auto, "
              f"{os.cpu_count() or 1} workers)"}  # fmt: skip
    cores = os.cpu_count() or 1
    for name, rows in runs.items():
        wall, cpu = med(rows, "wall"), med(rows, "cpu")
        label = labels.get(name, f"`facetrace ingest` (detector {name}, {cores} workers)")
        body.append(
            f"| {label} | {n} | {rows[0]['faces']} | {wall:.1f} | {n / wall:.1f} | {cpu:.1f} "
            f"| {1000 * cpu / n:.1f} | {n / wall / ref_rate:.2f}x "
            f"| {cores * ref_cpu / cpu if name != 'reference' else 1.0:.2f}x |"
        )
    body += [
        "",
        f"CPU bound: what an idle machine allows, {cores} cores x the reference's CPU / the "
        "run's CPU (the reference uses one core, its wall time is then its CPU time; an "
        "ingest cannot beat its CPU spread over every core). Under load the wall ratio "
        "falls below it: the other processes take more from the two-worker ingest than "
        "from the one-process reference.",
    ]
    text = "\n".join(body)
    print(text)
    if not args.no_write:
        cmd = (
            "flock /tmp/facetrace-bench.lock python -m benchmarks.bench_ingest_ratio "
            f"--limit {args.limit} --rounds {args.rounds} --detectors {args.detectors}"
            + (f" --baseline {args.baseline}" if args.baseline else "")
        )
        write_section("ingest-ratio", "Ingest against the plain dlib pipeline", cmd, text)


if __name__ == "__main__":
    main()

"""Memory under a flood of huge photos (issue 11, item 4): ten concurrent searches with a
79-megapixel image against ``facetrace serve``, the server's resident memory sampled
from /proc while they run.

Each run starts a fresh server on an empty gallery, loads the models with one small
search (the baseline is taken after it), resets the kernel's peak-RSS counter, then
sends the ten searches at once. Variants: the default decode budget with a JPEG (decoded
reduced to the detector's size), the same JPEG with the budget opened wide (ten photos,
1,000 MP), and a PNG (never reduced) under the default budget.

    python -m benchmarks.bench_admission            # writes its section of BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image
from tests.live import facetrace_env, make_user, serve_process
from tests.test_admission import SIDE, big_jpeg

from benchmarks.common import faces_dir, write_section
from facetrace.service.accounts import Role

CASE = {"number": "B-1", "purpose": "trace_missing", "legal_basis": "benchmark"}


def big_png(side: int = SIDE) -> bytes:
    image = Image.new("RGB", (side, side), (128, 120, 110))
    image.paste((40, 40, 40), (side // 4, side // 4, side // 2, side // 2))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _status_kb(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:  # the process ended
        return 0
    return 0


def _family(pid: int) -> list[int]:
    """``pid`` and its descendants (the probe-analysing worker processes)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    family, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        family += frontier
    return family


def _rss_kb(pids: list[int], field: str = "VmRSS") -> int:
    return sum(_status_kb(p, field) for p in pids)


@dataclass
class Run:
    label: str
    photo_mb: float
    baseline_mib: float
    peak_mib: float
    hwm_sum_mib: float
    wall_s: float
    codes: dict[int, int]
    load_before: float


def run(label: str, photo: bytes, filename: str, env: dict[str, str], small: Path) -> Run:
    with tempfile.TemporaryDirectory(prefix="bench-admission-") as tmp:
        data = Path(tmp) / "data"
        key = make_user(data, "ines", {Role.INVESTIGATOR}, "Forensics")
        headers = {"Authorization": f"Bearer {key}"}
        with serve_process(data, env=facetrace_env(**env)) as server:
            pid = server.proc.pid
            case = httpx.post(f"{server.base}/api/v1/cases", headers=headers, json=CASE, timeout=60)
            case_id = str(case.json()["id"])

            def search(body: bytes, name: str) -> httpx.Response:
                return httpx.post(
                    f"{server.base}/api/v1/search",
                    headers=headers,
                    data={"case_id": case_id, "force": "true"},
                    files={"image": (name, body, "image/jpeg")},
                    timeout=900,
                )

            for _ in range(2):  # models loaded in the server and both workers: the baseline
                search(small.read_bytes(), small.name)
            family = _family(pid)
            baseline = _rss_kb(family)
            for p in family:  # reset each process's VmHWM
                Path(f"/proc/{p}/clear_refs").write_text("5")
            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    peak[0] = max(peak[0], _rss_kb(_family(pid)))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            load = os.getloadavg()[0]
            start = time.monotonic()
            with ThreadPoolExecutor(10) as pool:
                answers = list(pool.map(lambda _: search(photo, filename), range(10)))
            wall = time.monotonic() - start
            done.set()
            sampler.join()
            hwm = peak[0]
            hwm_sum = _rss_kb(_family(pid), "VmHWM")
    codes: dict[int, int] = {}
    for a in answers:
        codes[a.status_code] = codes.get(a.status_code, 0) + 1
        if a.status_code >= 500:
            print(f"  {a.status_code}: {a.text[:300]}", file=sys.stderr)
    return Run(
        label, len(photo) / 1e6, baseline / 1024, hwm / 1024, hwm_sum / 1024, wall, codes, load
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    small = sorted((faces_dir() / "lfw").rglob("*.jpg"))[0]
    jpeg, png = big_jpeg(), big_png()
    wide = {"FACETRACE_SERVICE__DECODE_MAX_PHOTOS": "10"}
    wide["FACETRACE_SERVICE__DECODE_MAX_MEGAPIXELS"] = "1000"
    variants = [
        ("JPEG 8900x8900, default budget (2 photos, 100 MP)", jpeg, "big.jpg", {}),
        ("JPEG 8900x8900, budget opened wide (10 photos, 1,000 MP)", jpeg, "big.jpg", wide),
        ("PNG 8900x8900 (never reduced), default budget", png, "big.png", {}),
    ]
    runs = []
    for label, photo, name, env in variants:
        print(f"-- {label}", file=sys.stderr)
        r = run(label, photo, name, env, small)
        print(r, file=sys.stderr)
        runs.append(r)
    rows = "\n".join(
        f"| {r.label} | {r.photo_mb:.1f} | {r.baseline_mib:,.0f} | {r.peak_mib:,.0f} | "
        f"{r.peak_mib - r.baseline_mib:,.0f} | {r.hwm_sum_mib:,.0f} | {r.wall_s:.0f} | "
        f"{', '.join(f'{n} x {c}' for c, n in sorted(r.codes.items()))} | {r.load_before:.1f} |"
        for r in runs
    )
    body = f"""
Ten concurrent `POST /api/v1/search` with one 79.2-megapixel photo (an even grey with a
dark square: no face, so each ends in 422 after detection) against `facetrace serve` on
an empty gallery. The probes are analysed in the server's worker processes (one per
core), so memory is the RSS of the server and its workers together: baseline after two
small searches loaded the models everywhere; peak of that sum sampled from /proc every
50 ms; and, as an upper bound, the sum of each process's own peak (VmHWM, reset after
the baseline). The
decode budget (docs/security.md) holds each photo from its header to the end of its
analysis: a JPEG counts as the pixels it is decoded to (1/2 of the side here, 19.8 MP,
since the detector looks at 16 MP), a PNG as its full 79.2 MP while it is decoded, then
reduced to 19.8 MP. MB: the file; growth: peak - base.

| photo, budget | MB | base MiB | peak MiB | growth MiB | HWM sum MiB | wall s | answers | load |
|---|---|---|---|---|---|---|---|---|
{rows}

The issue's probe of the old code (every photo decoded whole at once, before any
admission control): 2.4 GB -> 7.3 GB for the same ten JPEGs.
"""
    if args.no_write:
        print(body)
    else:
        write_section(
            "admission",
            "Admission control: ten concurrent 79-megapixel searches",
            "python -m benchmarks.bench_admission",
            body,
        )


if __name__ == "__main__":
    main()

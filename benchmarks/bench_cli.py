"""CLI start-up: how long ``facetrace`` takes before (and including) small commands.

    python -m benchmarks.bench_cli [--runs 20]

Each command runs ``--runs`` times in a fresh process (after two warm-up runs, so the
page cache holds the files); wall time is the median, CPU is user+system per run. The
data directory is a small gallery of LFW photos built once under ``.bench/cli``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import ROOT, faces_dir, write_section

DATA = ROOT / ".bench" / "cli"
FACETRACE = str(Path(sys.executable).with_name("facetrace"))


def _gallery() -> Path:
    """A data directory holding a few LFW subjects (built on the first run)."""
    if (DATA / "facetrace.db").exists():
        return DATA
    src = faces_dir() / "lfw" / "images"
    photos = DATA.parent / "cli-photos"
    shutil.rmtree(photos, ignore_errors=True)
    for name in sorted(p.name for p in src.iterdir())[:20]:
        shutil.copytree(src / name, photos / name)
    subprocess.run(
        [FACETRACE, "--data", str(DATA), "ingest", str(photos), "--workers", "1"],
        check=True,
        capture_output=True,
    )
    return DATA


def _time(args: list[str], runs: int) -> tuple[float, float, float]:
    """(median wall s, min wall s, mean CPU s) of ``facetrace args``."""
    env = {**os.environ, "COLUMNS": "100"}
    for _ in range(2):
        subprocess.run([FACETRACE, *args], capture_output=True, env=env, check=True)
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([FACETRACE, *args], capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), min(walls), statistics.fmean(cpus)


def _import_ms() -> float:
    """Import time of the CLI module, from ``python -X importtime`` (its last line)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import facetrace.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stderr.strip().splitlines()[-1].split("|")[1]) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    data = str(_gallery())
    load_before = os.getloadavg()[0]
    commands = [
        ("facetrace --help", ["--help"]),
        ("facetrace status --help (start-up with settings)", ["--data", data, "status", "--help"]),
        ("facetrace status (20 subjects)", ["--data", data, "status"]),
        ("facetrace users list", ["--data", data, "users", "list"]),
    ]
    rows = ["| command | median wall | fastest | CPU (user+sys) |", "|---|---:|---:|---:|"]
    for label, argv in commands:
        median, fastest, cpu = _time(argv, args.runs)
        rows.append(f"| `{label}` | {median * 1000:.0f} ms | {fastest * 1000:.0f} ms | "
                    f"{cpu * 1000:.0f} ms |")  # fmt: skip
        print(rows[-1], file=sys.stderr)
    body = (
        "\n".join(rows)
        + f"\n\n`import facetrace.cli.main` (python -X importtime): {_import_ms():.0f} ms. "
        f"{args.runs} runs per command after two warm-up runs; load average "
        f"{load_before:.1f} -> {os.getloadavg()[0]:.1f} (on a busy machine wall time grows "
        "several-fold, CPU time much less). The CLI imports SQL, numerics, "
        "models and the web framework only inside the commands that use them "
        "(tests/cli/test_startup.py); before that change `--help` took 1.4 s. `status` on a "
        "SQLite gallery reads its counts with the stdlib's sqlite3 and the index's manifest "
        "from disk (facetrace.gallery.peek: no SQLAlchemy, numpy or FAISS); opening the "
        "gallery for it took 1.1-1.3 s (1310 ms median, 834 ms CPU at 6123b2e)."
    )
    write_section(
        "cli",
        "CLI start-up",
        f"python -m benchmarks.bench_cli --runs {args.runs}",
        body,
    )


if __name__ == "__main__":
    main()

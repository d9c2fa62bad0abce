"""CLI start-up: how long ``facetrace`` takes before (and including) small commands.

    python -m benchmarks.bench_cli [--runs 20] [--baseline /work/main/src]

Each command runs ``--runs`` times in a fresh process (after two warm-up runs, so the
page cache holds the files); wall time is the median, CPU is user+system per run. The
data directory is a small gallery of LFW photos built once under ``.bench/cli``.
``--baseline SRC`` also runs every command from another checkout's ``src`` (the same
interpreter and packages, ``PYTHONPATH=SRC``), interleaved run by run with this one, so
that both see the same load on a shared machine.
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


def _gallery(src: str | None = None) -> Path:
    """A data directory holding a few LFW subjects, ingested by this checkout (or by the
    checkout ``src``, in a directory of its own: each reads its own schema), built on the
    first run. Remove ``.bench/cli*`` when a migration changes the schema."""
    data = DATA if src is None else DATA.with_name("cli-baseline")
    if (data / "facetrace.db").exists():
        return data
    images = faces_dir() / "lfw" / "images"
    photos = DATA.parent / "cli-photos"
    shutil.rmtree(photos, ignore_errors=True)
    for name in sorted(p.name for p in images.iterdir())[:20]:
        shutil.copytree(images / name, photos / name)
    argv, env = _argv(src, ["--data", str(data), "ingest", str(photos), "--workers", "1"])
    subprocess.run(argv, check=True, capture_output=True, env=env)
    return data


def _argv(src: str | None, args: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``facetrace args``, from ``src`` if given."""
    env = {**os.environ, "COLUMNS": "100"}
    if src is None:
        return [FACETRACE, *args], env
    return [sys.executable, "-m", "facetrace.cli", *args], {**env, "PYTHONPATH": src}


def _time(
    commands: list[tuple[list[str], dict[str, str]]], runs: int
) -> list[tuple[float, float, float]]:
    """(median wall s, min wall s, mean CPU s) of each ``(argv, env)``, their runs
    interleaved."""
    for _ in range(2):
        for argv, env in commands:
            subprocess.run(argv, capture_output=True, env=env, check=True)
    walls: list[list[float]] = [[] for _ in commands]
    cpus: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for i, (argv, env) in enumerate(commands):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, env=env, check=True)
            walls[i].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus[i].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return [
        (statistics.median(w), min(w), statistics.fmean(c))
        for w, c in zip(walls, cpus, strict=True)
    ]


def _import_ms() -> float:
    """Import time of the CLI module, from ``python -X importtime`` (its last line)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import facetrace.cli.main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stderr.strip().splitlines()[-1].split("|")[1]) / 1000


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--baseline", help="another checkout's src, run side by side (e.g. /work/main/src)"
    )
    args = parser.parse_args()
    srcs: list[str | None] = [None] if args.baseline is None else [None, args.baseline]
    galleries = [str(_gallery(src)) for src in srcs]
    uptime_before = _uptime()
    commands = [
        ("facetrace --help", ["--help"]),
        (
            "facetrace status --help (start-up with settings)",
            ["--data", "{data}", "status", "--help"],
        ),
        ("facetrace status (20 subjects)", ["--data", "{data}", "status"]),
        ("facetrace users list", ["--data", "{data}", "users", "list"]),
    ]
    head = "| command | median wall | fastest | CPU (user+sys) |"
    if args.baseline is not None:
        head += " baseline median wall | baseline CPU |"
    rows = [head, "|---" + "|---:" * (head.count("|") - 2) + "|"]
    for label, argv in commands:
        runs = [
            _argv(src, [a.replace("{data}", data) for a in argv])
            for src, data in zip(srcs, galleries, strict=True)
        ]
        results = _time(runs, args.runs)
        median, fastest, cpu = (round(v * 1000) for v in results[0])
        row = f"| `{label}` | {median} ms | {fastest} ms | {cpu} ms |"
        for b_median, _, b_cpu in results[1:]:
            row += f" {b_median * 1000:.0f} ms | {b_cpu * 1000:.0f} ms |"
        rows.append(row)
        print(rows[-1], file=sys.stderr)
    baseline = (
        ""
        if args.baseline is None
        else f" Baseline: the same commands from `{args.baseline}` "
        f"(commit {_commit(args.baseline)}), interleaved run by run with this checkout "
        f"(commit {_commit(str(ROOT))})."
    )
    body = (
        "\n".join(rows)
        + f"\n\n`import facetrace.cli.main` (python -X importtime): {_import_ms():.0f} ms. "
        f"{args.runs} runs per command after two warm-up runs.{baseline} On a busy machine "
        "wall time grows several-fold, CPU time much less.\n\n"
        f"`uptime` before/after: `{uptime_before}` / `{_uptime()}`\n\n"
        "The CLI imports SQL, numerics, models and the web framework only inside the "
        "commands that use them (tests/cli/test_startup.py); before that change `--help` "
        "took 1.4 s. `status` on a SQLite gallery reads its counts with the stdlib's sqlite3 "
        "and the index's manifest from disk (facetrace.gallery.peek: no SQLAlchemy, numpy or "
        "FAISS; opening the gallery for it took 1310 ms median, 834 ms CPU at 6123b2e), the "
        "data directory and model without pydantic-settings when the environment sets "
        "nothing else (facetrace.config_quick: any other FACETRACE_ setting sends it through "
        "Settings, which validates it), and the options without typer's pydantic adapters "
        "(cli.common.plain_coercion): it loads no pydantic at all (389 ms median, 378 ms "
        "CPU at d146a9a with both)."
    )
    write_section(
        "cli",
        "CLI start-up",
        f"python -m benchmarks.bench_cli --runs {args.runs}"
        + ("" if args.baseline is None else f" --baseline {args.baseline}"),
        body,
    )


def _commit(path: str) -> str:
    proc = subprocess.run(
        ["git", "-C", path, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return proc.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()

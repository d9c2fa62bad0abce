"""Shared benchmark helpers: the machine description and section-wise BENCHMARKS.md updates."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def faces_dir() -> Path:
    """``$FACETRACE_FACES`` or ``../shared/faces``."""
    return Path(os.environ.get("FACETRACE_FACES", ROOT.parent / "shared" / "faces"))


def machine() -> str:
    """CPU model, cores, memory and Python, for the record."""
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        m = re.search(r"Model name:\s*(.+)", out)
        if m:
            cpu = m.group(1).strip()
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def write_section(name: str, title: str, command: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md, leaving the others alone."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{start}\n## {title}\n\nCommand: `{command}`  \nMachine: {machine()}  \n"
        f"Measured: {stamp}\n\n{body.strip()}\n{end}"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    if start in text and end in text:
        pre, rest = text.split(start, 1)
        _, post = rest.split(end, 1)
        text = pre + block + post
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)

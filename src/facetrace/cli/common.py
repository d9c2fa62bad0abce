"""What every ``facetrace`` command shares: the resolved context, the consoles, the
progress bar, strict JSON output and the one-line error exit."""

from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from facetrace.config import Settings
from facetrace.engine import PipelineOptions

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)


@dataclass
class Context:
    """What the callback resolved from options and environment, handed to commands."""

    settings: Settings
    options: PipelineOptions

    def gallery(self) -> Any:
        from facetrace.gallery.directory import Gallery

        return Gallery.open(
            self.settings.data,
            database_url=self.settings.database_url,
            pipeline=self.options,
            index_kind=self.settings.index_kind,
            index_params=self.settings.index_params(),
        )


def fail(exc: Exception, code: int = 1) -> typer.Exit:
    # escaped: a message may hold brackets ("[.db]"); soft-wrapped: one line, however long
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def workers_for(n: int | None, settings: Settings) -> int:
    """``n`` if positive, else the configured worker count, else the core count."""
    return n if n and n > 0 else (settings.workers or os.cpu_count() or 1)


class RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


def progress_bar() -> Progress:
    """A progress bar on stderr with count, rate and time left."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def dump(obj: Any) -> None:
    """Strict JSON on stdout: NaN and infinities become null, other objects strings."""
    sys.stdout.write(json.dumps(clean(obj), indent=2, default=str, allow_nan=False) + "\n")


def clean(obj: Any) -> Any:
    """Replace NaN and infinities by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean(v) for v in obj]
    return obj


def counter(bar: Progress, label: str) -> Any:
    """A ``progress(done, total)`` callback that drives a new task of ``bar``."""
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update

"""What every ``facetrace`` command shares: the error boundary, the resolved context, the
consoles, the progress bar and strict JSON output.

Imports here are light on purpose (typer, rich's console, the stdlib): ``facetrace
--help`` loads this module and nothing heavier; each command imports what it needs.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from facetrace.errors import DataDirInUse, FacetraceError, ManifestError

if TYPE_CHECKING:
    from rich.progress import Progress

    from facetrace.config import PipelineOptions, Settings
    from facetrace.config_quick import QuickSettings
    from facetrace.gallery.directory import Gallery

S = TypeVar("S", bound="Settings")

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)

# Exit status of a refused command: 2 for an unusable manifest or folder (as for a usage
# error: nothing was read), 3 for a data directory another process owns (the service:
# nothing was done, do it through the service or stop it), else 1.
EXIT_CODES: tuple[tuple[type[FacetraceError], int], ...] = ((ManifestError, 2), (DataDirInUse, 3))


def exit_code(exc: FacetraceError) -> int:
    """The exit status for a domain error (see :data:`EXIT_CODES`)."""
    return next((code for cls, code in EXIT_CODES if isinstance(exc, cls)), 1)


def report(exc: FacetraceError) -> None:
    """The error as one line on stderr (escaped: a message may hold brackets, "[.db]";
    soft-wrapped: one line however long)."""
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)


class ErrorBoundary(TyperGroup):
    """The command's one error boundary: a :class:`~facetrace.errors.FacetraceError` from
    the callback or any command becomes one line on stderr and an exit status, never a
    traceback. Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FacetraceError as exc:
            report(exc)
            raise typer.Exit(exit_code(exc)) from exc

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        plain_coercion(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None:
            plain_coercion(command.get_params(ctx))
        return name, command, rest


def plain_coercion(params: list[Any]) -> None:
    """Let ``params`` (the callback's options and the command's) coerce plain values
    without pydantic.

    Typer (0.2x) converts each option value through a pydantic ``TypeAdapter`` built on
    first use: importing pydantic and building them is about a fifth of ``facetrace
    status``'s start-up. A flag's ``bool``, a ``str``, a :class:`~pathlib.Path` (typer's
    own checks of the path still apply) or an :class:`~enum.Enum` choice needs no pydantic;
    :class:`_PlainParam` converts those and hands anything else (or a value it cannot
    convert, so the error message stays typer's) to typer's own coercion. Another
    typer, without this internal hook, simply keeps its own (tests/cli/test_startup.py
    notices: status then loads pydantic)."""
    try:
        from typer._coercion import RuntimeParam, build_runtime_param
        from typer._param_types import coerce_cli_choice, coerce_cli_path
    except ImportError:
        return

    class _PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            ann, info = self.annotation, self.parameter_info
            if ann is bool and isinstance(value, bool):
                return value
            if isinstance(value, str) and isinstance(ann, type) and info.parser is None:
                if ann is str:
                    return value
                if issubclass(ann, Path) and info.path_type is None:
                    return coerce_cli_path(ann(value), info, path_type=ann, param=param, ctx=ctx)
                if issubclass(ann, Enum):
                    try:
                        return coerce_cli_choice(
                            value, choices=tuple(ann), case_sensitive=info.case_sensitive
                        )
                    except ValueError:
                        pass  # typer's own error message
            typer_own = build_runtime_param(param.type_descriptor)
            return typer_own._coerce_value(value, param=param, ctx=ctx)

    for param in params:
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_runtime_param", False) is not None:
            continue  # not typer's parameter, or its coercion already built
        ann = desc.annotation
        if ann in (bool, str, Path) or (isinstance(ann, type) and issubclass(ann, Enum)):
            param._runtime_param = _PlainParam(parameter_info=desc.parameter_info, annotation=ann)


@dataclass
class Context:
    """What the callback resolved from the options, handed to commands: the options'
    overrides, and the settings (environment plus overrides) read on first use."""

    overrides: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        """:class:`~facetrace.config.Settings` from the environment and the options; a bad
        value is one line (a :class:`~facetrace.errors.FacetraceError`)."""
        from facetrace.config import Settings

        return load_settings(Settings, self.overrides)

    def quick_settings(self) -> QuickSettings | None:
        """The data directory and model without building :attr:`settings` (no pydantic),
        or ``None`` when the environment or the options set anything else that
        ``Settings`` would validate (:func:`facetrace.config_quick.quick_settings`): the
        caller then uses :attr:`settings`."""
        from facetrace.config_quick import quick_settings

        return quick_settings(self.overrides)

    @property
    def options(self) -> PipelineOptions:
        """The face pipeline's options (:meth:`facetrace.config.Settings.pipeline_options`)."""
        return self.settings.pipeline_options()

    @contextmanager
    def gallery(self, *, write: str | None = None, audited: bool = False) -> Iterator[Gallery]:
        """The data directory's gallery for the command's run, searches on the configured
        thread count.

        ``write`` names a command that changes the gallery: it holds the directory's
        owner lock for its run, and is refused (exit 3) while the service or another
        writer holds it. Without it the gallery is opened read-only: it may run beside
        the service and never saves the index. ``audited``: the database is bound to the
        audit key (created on first use), for commands that write audit entries."""
        from facetrace.gallery.directory import Gallery
        from facetrace.gallery.owner import OwnerLock
        from facetrace.index import set_search_threads

        set_search_threads(self.settings.search_threads)
        with ExitStack() as stack:
            if write is not None:
                stack.enter_context(OwnerLock(self.settings.data, command=write))
            key = self._audit_key() if audited else None
            gallery = stack.enter_context(
                Gallery.open(
                    self.settings.data,
                    database_url=self.settings.database_url,
                    pipeline=self.options,
                    index_kind=self.settings.index_kind,
                    index_params=self.settings.index_params(),
                    read_only=write is None,
                )
            )
            if key is not None:
                from facetrace.service import audit

                # a reader changes nothing until it appends (which seals an unkeyed log)
                (audit.bind if write else audit.bind_key)(gallery.database, key)
            yield gallery

    def _audit_key(self) -> bytes:
        from facetrace.service.audit_key import key_path, load_key

        return load_key(key_path(self.settings.data, self.settings.audit_key_file))


def load_settings(cls: type[S], overrides: dict[str, Any]) -> S:
    """``cls`` (:class:`~facetrace.config.Settings` or a subclass) from the environment
    and ``overrides``; a validation error becomes one line naming the variables."""
    from pydantic import ValidationError

    from facetrace.config import settings_error

    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise FacetraceError(settings_error(exc)) from exc


def workers_for(n: int | None, settings: Settings) -> int:
    """``n`` if positive, else the configured worker count, else the core count."""
    return n if n and n > 0 else (settings.workers or os.cpu_count() or 1)


def progress_bar() -> Progress:
    """A progress bar on stderr with count, rate and time left."""
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

    class RateColumn(ProgressColumn):
        """Items per second (rich's own speed column counts bytes)."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:.1f}/s")

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


def counter(bar: Progress, label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that drives a new task of ``bar``."""
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


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

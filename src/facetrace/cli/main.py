"""The ``facetrace`` command: a thin Typer layer over the library.

Machine-readable results (``--json``) go to stdout; progress and warnings to stderr.
"""

from __future__ import annotations

import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from facetrace.cli import eval as eval_commands
from facetrace.cli import gallery, index, service
from facetrace.cli.common import Context, fail
from facetrace.config import Settings, settings_error
from facetrace.engine import PipelineOptions
from facetrace.errors import FacetraceError
from facetrace.index import set_search_threads
from facetrace.vision.models import Backend

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


class BackendChoice(StrEnum):
    dlib = "dlib"
    onnx = "onnx"


@app.callback()
def main(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Data directory (env FACETRACE_DATA).", show_default=False),
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="SQL URL instead of SQLite in the data directory."),
    ] = None,
    model: Annotated[
        str, typer.Option(help="'dlib-resnet-v1' or a path to an ArcFace-style .onnx model.")
    ] = "dlib-resnet-v1",
    backend: Annotated[
        BackendChoice, typer.Option(help="Runtime for the dlib descriptor.")
    ] = BackendChoice.onnx,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """facetrace: face search for identifying the dead and tracing the missing."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    overrides: dict[str, Any] = {}
    if data is not None:
        overrides["data"] = data
    if database_url is not None:
        overrides["database_url"] = database_url
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise fail(FacetraceError(settings_error(exc))) from exc
    set_search_threads(settings.search_threads)
    options = PipelineOptions(
        model=model,
        backend=Backend(backend.value),
        min_face_px=settings.detect.min_face_px,
        max_detect_pixels=settings.detect.max_detect_pixels,
        cache_dir=settings.data / "models",
    )
    ctx.obj = Context(settings=settings, options=options)


gallery.register(app)
eval_commands.register(app)
index.register(app)
service.register(app)


if __name__ == "__main__":
    app()

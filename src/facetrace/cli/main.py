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

from facetrace.cli import duplicates, gallery, grouping, index, service
from facetrace.cli import eval as eval_commands
from facetrace.cli.common import Context, ErrorBoundary

HELP = (
    "facetrace: search a face gallery for the people in a photo or video, with "
    "calibrated false-match rates.\n\n"
    "Machine-readable results (--json) go to stdout; progress and warnings to stderr."
)
app = typer.Typer(cls=ErrorBoundary, no_args_is_help=True, add_completion=False, help=HELP)


class BackendChoice(StrEnum):
    """The values of :class:`facetrace.config.Backend` (kept here so that ``--help`` needs
    no settings import)."""

    dlib = "dlib"
    onnx = "onnx"


class DetectorChoice(StrEnum):
    """The values of :class:`facetrace.config.DetectorKind`."""

    hog = "hog"
    cnn = "cnn"
    auto = "auto"


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
        str | None,
        typer.Option(
            help="'dlib-resnet-v1' (default) or a path to an ArcFace-style .onnx model "
            "(env FACETRACE_PIPELINE__MODEL).",
            show_default=False,
        ),
    ] = None,
    backend: Annotated[
        BackendChoice | None,
        typer.Option(
            help="Runtime for the dlib descriptor, onnx (default) or dlib "
            "(env FACETRACE_PIPELINE__BACKEND).",
            show_default=False,
        ),
    ] = None,
    detector: Annotated[
        DetectorChoice | None,
        typer.Option(
            help="Face detector: hog (fast, frontal faces), cnn (dlib's CNN: turned, tilted "
            "and cut faces, ~4.5x the cost) or auto (default: HOG, then the CNN where it "
            "pays) (env FACETRACE_DETECT__DETECTOR).",
            show_default=False,
        ),
    ] = None,
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
    pipeline = {"model": model, "backend": None if backend is None else backend.value}
    if any(v is not None for v in pipeline.values()):
        # merged with FACETRACE_PIPELINE__* by pydantic-settings, options winning
        overrides["pipeline"] = {k: v for k, v in pipeline.items() if v is not None}
    if detector is not None:
        # merged with FACETRACE_DETECT__* (min_face_px, ...) by pydantic-settings
        overrides["detect"] = {"detector": detector.value}
    # the settings are read when a command first needs them, so that a command's
    # --help never pays for pydantic and the environment
    ctx.obj = Context(overrides=overrides)


gallery.register(app)
grouping.register(app)
duplicates.register(app)
eval_commands.register(app)
index.register(app)
service.register(app)


if __name__ == "__main__":
    app()

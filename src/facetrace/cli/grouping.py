"""``facetrace group FOLDER``: group the faces of unlabelled photos into people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from facetrace.cli.common import Context, dump, err, out, progress_bar, workers_for


def group(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder of photos (searched recursively).")],
    output: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (default: FOLDER-groups next to FOLDER)."),
    ] = None,
    fmr: Annotated[
        float,
        typer.Option(
            help="Target false-match rate of a link between two faces; sets the score "
            "threshold from the model's calibration table.",
        ),
    ] = 5e-5,
    algorithm: Annotated[
        str, typer.Option(help="average (default), components, whispers, leiden or density.")
    ] = "average",
    min_quality: Annotated[
        float, typer.Option(help="Faces below this quality are listed but not grouped.")
    ] = 0.3,
    sheets: Annotated[bool, typer.Option(help="Write a contact sheet per group.")] = True,
    workers: Annotated[int | None, typer.Option(help="Processes (default: core count).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
) -> None:
    """Which photos show the same person? Writes groups.csv, groups.json and contact sheets."""
    from facetrace.grouping.folder import group_folder, write_report

    c: Context = ctx.obj
    target = output or folder.resolve().parent / f"{folder.resolve().name}-groups"
    with progress_bar() as bar:
        task = bar.add_task("faces", total=None)

        def progress(_stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        report = group_folder(
            folder,
            options=c.options,
            workers=workers_for(workers, c.settings),
            fmr=fmr,
            method=algorithm,
            min_quality=min_quality,
            progress=progress,
        )
    written = write_report(report, target, sheets=sheets)
    for photo, reason in report.skipped:
        err.print(f"skipped {photo}: {reason}", highlight=False)
    if as_json:
        dump(report.as_dict())
        return
    s = report.summary()
    out.print(
        f"{s['faces']} faces in {s['photos']} photos: {s['groups']} groups of 2 or more "
        f"({s['faces_in_groups']} faces), {s['alone']} faces alone, {s['low_quality']} below "
        f"quality {min_quality}, {s['skipped_photos']} photos without a usable face. "
        f"Threshold {report.threshold:.4f} (false-match rate {fmr:g} or stricter, "
        f"{report.algorithm}). "
        f"Report: {written['json'].parent}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``group`` to the main ``facetrace`` command."""
    app.command()(group)

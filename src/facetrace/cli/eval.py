"""``facetrace eval lfw`` and ``eval identify``: accuracy on labelled data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.common import Context, clean, counter, dump, err, out, progress_bar, workers_for

eval_app = typer.Typer(no_args_is_help=True, help="Measure accuracy on labelled data.")

OUTPUT_HELP = (
    "Write the result as JSON to this file and, beside it, its figures as PNG and SVG: "
    "NAME-det (false negatives against false positives, log axes){cmc}, one line per "
    "configuration (lever) measured."
)


def _check_output(output: Path | None, *, with_cmc: bool) -> None:
    """Refuse an output that cannot be written before any photo is embedded."""
    if output is not None:
        from facetrace.eval.plots import check_output

        check_output(output, with_cmc=with_cmc)


def _write_output(result: dict[str, Any], output: Path, *, title: str) -> list[Path]:
    """The JSON file, then its figures (matplotlib loads here only)."""
    import json

    from facetrace.errors import InvalidRequest
    from facetrace.eval.plots import write_figures

    text = json.dumps(clean(result), indent=2, default=str, allow_nan=False) + "\n"
    try:
        output.write_text(text)
    except OSError as exc:
        raise InvalidRequest(f"cannot write {output}: {exc.strerror or exc}") from exc
    return [output, *write_figures(result, output, title=title)]


def _report_written(paths: list[Path]) -> None:
    for path in paths:
        err.print(f"wrote {path}")


@eval_app.command("lfw")
def eval_lfw(
    ctx: typer.Context,
    pairs: Annotated[Path, typer.Option(help="LFW pairs.txt")],
    images: Annotated[Path, typer.Option(help="Folder with Name/Name_0001.jpg")],
    workers: Annotated[int | None, typer.Option()] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help=OUTPUT_HELP.format(cmc=""), show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """LFW verification: mean accuracy over folds, each fold's threshold from the others.

    With --output, the JSON goes to that file with a DET curve (FNMR against FMR) beside
    it; pairs have no ranks, so there is no CMC curve for verification."""
    from facetrace.eval.lfw import evaluate_lfw

    c: Context = ctx.obj
    _check_output(output, with_cmc=False)
    with progress_bar() as bar:
        res = evaluate_lfw(
            pairs,
            images,
            options=c.options,
            workers=workers_for(workers, c.settings),
            progress=counter(bar, "embed"),
        )
    written = (
        _write_output(res, output, title=f"LFW verification, {res['pairs']} pairs")
        if output
        else []
    )
    if as_json:
        dump(res)
        _report_written(written)
        return
    _report_written(written)
    out.print(
        f"LFW {res['folds']} folds, {res['pairs']} pairs: accuracy {100 * res['accuracy']:.2f}% "
        f"± {100 * res['std']:.2f} (std over folds)"
    )
    out.print(
        f"no face detected in {res['no_face_detected']} of {res['images']} images: "
        f"{res['no_face_policy']}; unreadable: {len(res['unreadable_images'])}"
    )


@eval_app.command("identify")
def eval_identify(
    ctx: typer.Context,
    images: Annotated[Path, typer.Option(help="Folder per subject.")],
    seed: Annotated[int, typer.Option(help="Seed of the enrolled/held-out split.")] = 0,
    enrol: Annotated[
        int, typer.Option(min=1, help="Photos enrolled per subject (its first N).")
    ] = 1,
    probe_from: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Probes are each subject's photos from this number on (default: --enrol); "
            "compare 1 and 3 enrolled photos on the same probes with --probe-from 3.",
            show_default=False,
        ),
    ] = None,
    templates: Annotated[
        bool,
        typer.Option(
            help="Let the gallery's search use each subject's template (quality-weighted "
            "mean of its faces) alongside its faces, as a gallery does; --no-templates "
            "searches single faces only (both are measured under 'levers')."
        ),
    ] = True,
    cohort: Annotated[
        Path | None,
        typer.Option(
            help="Re-score the top candidates by AS-norm against this cohort (.npz from "
            "'facetrace calibrate --cohort-out'; needed when FACETRACE_SEARCH__SCORE=asnorm); "
            "its people must not be in IMAGES.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option()] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help=OUTPUT_HELP.format(cmc=" and NAME-cmc (hit rate against rank)"),
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open-set 1:N: rank-1/rank-10 hit rates and FNIR at FPIR 0.1, 0.01 and 0.001.

    Every configuration the same embeddings allow is measured too (cosine on faces only;
    templates when --enrol is above 1; AS-norm with --cohort; both): "levers" in the
    JSON, one line each in the figures written with --output."""
    from facetrace.config import ScoreKind
    from facetrace.errors import FacetraceError
    from facetrace.eval.identify import evaluate_identify
    from facetrace.scoring.asnorm import read_cohort

    c: Context = ctx.obj
    _check_output(output, with_cmc=True)
    if probe_from is not None and probe_from < enrol:
        raise FacetraceError(f"--probe-from ({probe_from}) must be at least --enrol ({enrol})")
    loaded = None
    if cohort is not None:
        try:
            loaded = read_cohort(cohort.read_bytes(), what=str(cohort))
        except (OSError, ValueError) as exc:
            raise FacetraceError(f"cannot read the cohort {cohort}: {exc}") from exc
    elif c.options.score == ScoreKind.ASNORM:
        raise FacetraceError(
            "AS-norm needs a cohort of people outside the evaluation: --cohort FILE "
            "(made by 'facetrace calibrate --cohort-out'); no cohort ships with facetrace"
        )
    with progress_bar() as bar:
        res = evaluate_identify(
            images,
            options=c.options,
            workers=workers_for(workers, c.settings),
            seed=seed,
            enrol=enrol,
            probe_from=probe_from,
            templates=templates,
            cohort=loaded,
            progress=counter(bar, "embed"),
        )
    title = (
        f"{images.name}, gallery {res['gallery_size']} subjects, {res['mated_probes']} mated "
        f"and {res['nonmated_probes']} non-mated probes"
    )
    written = _write_output(res, output, title=title) if output else []
    if as_json:
        dump(res)
        _report_written(written)
        return
    _report_written(written)

    def pct(v: float | None) -> str:
        return "n/a (too few non-mated probes)" if v is None else f"{100 * v:.2f}%"

    by_photos = ", ".join(
        f"{n} photo{'s' if n != '1' else ''}: {k}"
        for n, k in res["subjects_by_enrolled_photos"].items()
    )
    out.print(
        f"gallery {res['gallery_size']} subjects ({by_photos}), mated probes "
        f"{res['mated_probes']}, non-mated probes {res['nonmated_probes']}; score "
        f"{res['score']}{', templates' if res['templates'] else ''}"
    )
    out.print(f"rank-1 {pct(res['rank1'])}, rank-10 {pct(res['rank10'])}")
    for f in ("0.1", "0.01", "0.001"):
        out.print(f"FNIR at FPIR {f}: {pct(res[f'fnir_at_fpir_{f}'])}")
    for f, g in res.get("gallery_threshold", {}).items():
        out.print(
            f"the gallery's threshold for FPIR {f}: {g['threshold']}, here FPIR "
            f"{pct(g['measured_fpir'])} and FNIR {pct(g['fnir'])}"
        )
    if len(res["levers"]) > 1:
        out.print("each configuration on the same probes:")
        for lever in res["levers"]:
            mark = " (as run)" if lever["configured"] else ""
            out.print(
                f"  {lever['label']}{mark}: rank-1 {pct(lever['rank1'])}, FNIR at FPIR 0.01 "
                f"{pct(lever['fnir_at_fpir_0.01'])}"
            )


def register(app: typer.Typer) -> None:
    """Add ``eval`` to the main ``facetrace`` command."""
    app.add_typer(eval_app, name="eval")

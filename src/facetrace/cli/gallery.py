"""The ``facetrace`` command: a thin Typer layer over the library.

Machine-readable results (``--json``) go to stdout; progress and warnings to stderr.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
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
from rich.table import Table
from rich.text import Text

from facetrace.config import Settings, settings_error
from facetrace.engine import FacePipeline, PipelineOptions
from facetrace.errors import FacetraceError
from facetrace.index import set_search_threads
from facetrace.vision.models import Backend

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
eval_app = typer.Typer(no_args_is_help=True, help="Measure accuracy on labelled data.")
app.add_typer(eval_app, name="eval")
index_app = typer.Typer(no_args_is_help=True, help="Inspect or rebuild the vector index.")
app.add_typer(index_app, name="index")

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True)
log = logging.getLogger("facetrace")


@dataclass
class Context:
    """What the callback resolved from options and environment, handed to commands."""

    settings: Settings
    options: PipelineOptions

    def gallery(self) -> Any:
        from facetrace.gallery import Gallery

        return Gallery.open(
            self.settings.data,
            database_url=self.settings.database_url,
            pipeline=self.options,
            index_kind=self.settings.index_kind,
            index_params=self.settings.index_params(),
        )


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
        raise _fail(FacetraceError(settings_error(exc))) from exc
    set_search_threads(settings.search_threads)
    options = PipelineOptions(
        model=model,
        backend=Backend(backend.value),
        min_face_px=settings.detect.min_face_px,
        max_detect_pixels=settings.detect.max_detect_pixels,
        cache_dir=settings.data / "models",
    )
    ctx.obj = Context(settings=settings, options=options)


def _fail(exc: Exception, code: int = 1) -> typer.Exit:
    # escaped: a message may hold brackets ("[.db]"); soft-wrapped: one line, however long
    err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _workers(n: int | None, settings: Settings) -> int:
    return n if n and n > 0 else (settings.workers or os.cpu_count() or 1)


class _RateColumn(ProgressColumn):
    """Items per second (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.1f}/s")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _dump(obj: Any) -> None:
    """Strict JSON on stdout: NaN and infinities become null, other objects strings."""
    sys.stdout.write(json.dumps(_clean(obj), indent=2, default=str, allow_nan=False) + "\n")


def _clean(obj: Any) -> Any:
    """Replace NaN and infinities by None so the JSON is strict."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


@app.command()
def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the gallery holds, which model and which index."""
    c: Context = ctx.obj
    try:
        with c.gallery() as g:
            info = g.status()
    except FacetraceError as exc:
        raise _fail(exc) from exc
    if as_json:
        _dump(info)
        return
    table = Table(title=f"facetrace gallery in {info['data_dir']}", show_header=False)
    for key in ("database", "model", "collections", "subjects", "photos", "faces",
                "indexed_faces", "tombstones"):  # fmt: skip
        table.add_row(key, str(info[key]))
    idx = info["index"]
    table.add_row("index", ", ".join(f"{k}={v}" for k, v in idx.items()))
    cal = info["calibration"]
    table.add_row("calibration", cal["source"] if cal else "none (raw thresholds)")
    out.print(table)


@app.command()
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A folder per subject, or a CSV/JSONL manifest.")],
    collection: Annotated[
        str, typer.Option(help="Collection for rows that name none.")
    ] = "default",
    legal_basis: Annotated[str, typer.Option(help="Legal basis for rows that name none.")] = "",
    workers: Annotated[int | None, typer.Option(help="Processes (default: core count).")] = None,
    allow_deleted: Annotated[
        bool, typer.Option(help="Re-ingest photos that were deleted before.")
    ] = False,
    report: Annotated[Path | None, typer.Option(help="CSV of skipped photos.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Add photos to the gallery. Resumable: run it again after an interruption."""
    from facetrace.ingest import collect_items
    from facetrace.ingest import ingest as run_ingest

    c: Context = ctx.obj
    try:
        items = collect_items(path, collection=collection, legal_basis=legal_basis)
    except FacetraceError as exc:
        raise _fail(exc, 2) from exc
    if report is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = c.settings.data / "reports" / f"ingest-{stamp}.csv"
    try:
        with c.gallery() as g, _progress() as bar:
            task = bar.add_task("ingest", total=len(items))

            def progress(done: int, total: int, _summary: Any) -> None:
                bar.update(task, completed=done)

            summary = run_ingest(
                g,
                items,
                workers=_workers(workers, c.settings),
                allow_deleted=allow_deleted,
                report_path=report,
                progress=progress,
            )
    except FacetraceError as exc:
        raise _fail(exc) from exc
    data = summary.as_dict()
    if as_json:
        _dump(data)
        return
    err.print(
        f"{data['total']} photos: {data['photos_added']} added with {data['faces_added']} faces, "
        f"{data['already_present']} already present, {data['skipped']} skipped "
        f"({data['photos_per_second']} photos/s)"
    )
    for reason, n in data["skipped_by_reason"].items():
        err.print(f"  skipped, {reason}: {n}")
    if summary.report_path:
        err.print(f"  skipped photos are listed in {summary.report_path}")


def _load_pixels(path: Path) -> Any:
    from facetrace.imaging import load_image

    return load_image(path).pixels


@app.command()
def search(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument(help="The probe photo.")],
    k: Annotated[int, typer.Option("-k", help="Candidates per face.", min=1, max=1000)] = 10,
    face: Annotated[int | None, typer.Option(help="Search only face N (0 = largest).")] = None,
    fpir: Annotated[
        float | None, typer.Option(help="Target false-positive identification rate.")
    ] = None,
    min_quality: Annotated[float | None, typer.Option(help="Refuse faces below this.")] = None,
    force: Annotated[bool, typer.Option(help="Search low-quality faces anyway.")] = False,
    collection: Annotated[
        list[str] | None, typer.Option(help="Restrict to these collections.")
    ] = None,
    show_below: Annotated[
        bool, typer.Option(help="Also list candidates below the threshold, marked.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search every face of a photo against the gallery (1:N)."""
    c: Context = ctx.obj
    s = c.settings.search
    try:
        pixels = _load_pixels(photo)
        with c.gallery() as g:
            results = g.search(
                pixels,
                k=k,
                face=face,
                force=force,
                min_quality=s.min_quality if min_quality is None else min_quality,
                fpir=s.fpir if fpir is None else fpir,
                collections=collection or None,
                include_below=show_below,
            )
    except FacetraceError as exc:
        raise _fail(exc) from exc
    if as_json:
        _dump({"photo": str(photo), "faces": [r.as_dict() for r in results]})
        return
    for r in results:
        q = r.face.quality
        reasons = ", ".join(str(x) for x in q.reasons) or "none"
        err.print(
            f"\nface {r.face_index} at {r.face.detection.box.as_list()}: quality {q.score:.2f} "
            f"(warnings: {reasons}); threshold {r.threshold:.3f}"
        )
        if r.no_candidate:
            out.print("  no candidate: nobody in the gallery scores above the threshold")
        rows = list(r.candidates) + list(r.below_threshold)
        if not rows:
            continue
        t = Table("rank", "score", "est. false-match rate", "subject", "name", "collection",
                  "legal basis", "source", "photo")  # fmt: skip
        for cand in rows:
            i = cand.info
            mark = "" if cand.above_threshold else " (below threshold)"
            t.add_row(
                str(cand.rank),
                f"{cand.score:.3f}{mark}",
                f"{cand.false_match_rate:.2g}",
                i.subject_external_id,
                i.subject_name,
                i.collection,
                i.legal_basis,
                i.source_url or i.source_title,
                i.photo_path,
            )
        out.print(t)
    err.print(
        "\nCandidates are leads for a trained reviewer, not identifications; "
        "confirm by other means (fingerprints, DNA, dental records, documents)."
    )


@app.command()
def verify(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="First photo.")],
    b: Annotated[str, typer.Argument(help="Second photo, or a subject id in the gallery.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare two photos, or a photo and a gallery subject (1:1)."""
    c: Context = ctx.obj
    try:
        with c.gallery() as g:
            pix_a = _load_pixels(a)
            if Path(b).is_file():
                result = g.verify(pix_a, _load_pixels(Path(b)))
            else:
                result = g.verify(pix_a, b)
    except FacetraceError as exc:
        raise _fail(exc) from exc
    if as_json:
        _dump(result.as_dict())
        return
    d = result.as_dict()
    out.print(
        f"score {d['score']:.3f} (threshold {d['threshold']:.3f}): {d['decision']}; "
        f"estimated false-match rate {d['false_match_rate']:.2g}"
    )


@app.command()
def calibrate(
    ctx: typer.Context,
    images: Annotated[Path, typer.Option(help="Labelled folder-per-subject photos.")],
    workers: Annotated[int | None, typer.Option()] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the table here instead of the gallery.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure score -> false-match rate on impostor pairs of a labelled set."""
    from facetrace.calibration import fit_calibration, impostor_scores, save_calibration
    from facetrace.eval.embedding import embed_photos
    from facetrace.ingest import scan_folder

    c: Context = ctx.obj
    try:
        items = scan_folder(images)
        if not items:
            raise FacetraceError(f"{images}: no photos in subject folders")
        with _progress() as bar:
            task = bar.add_task("embed", total=len(items))
            vecs = embed_photos(
                [i.path for i in items],
                options=c.options,
                workers=_workers(workers, c.settings),
                progress=lambda d, _t: bar.update(task, completed=d),
            )
        import numpy as np

        keep = [i for i, v in enumerate(vecs) if v.vector is not None]
        matrix = np.stack([vecs[i].vector for i in keep]).astype(np.float32)  # type: ignore[misc]
        labels = np.array([items[i].provenance.subject_id for i in keep])
        scores = impostor_scores(matrix, labels)
        cal = fit_calibration(
            scores,
            model_id=FacePipeline(c.options).model_id,
            source=f"{images.name}: {len(keep)} photos, {len(set(labels))} subjects",
        )
        if output is not None:
            save_calibration(cal, output)
        else:
            with c.gallery() as g:
                g.set_calibration(cal)
    except (FacetraceError, ValueError) as exc:
        raise _fail(exc) from exc
    summary = {
        "impostor_pairs": cal.impostor_pairs,
        "source": cal.source,
        **{f"threshold_at_fmr_{f:g}": cal.threshold_for_fmr(f) for f in (1e-3, 1e-4, 1e-5, 1e-6)},
    }
    if as_json:
        _dump(summary)
    else:
        for key, val in summary.items():
            out.print(f"{key}: {val}")


class DeleteWhat(StrEnum):
    subject = "subject"
    photo = "photo"
    collection = "collection"


@app.command()
def delete(
    ctx: typer.Context,
    what: Annotated[DeleteWhat, typer.Argument(help="subject, photo or collection")],
    ident: Annotated[str, typer.Argument(help="Subject id, photo id or SHA-256, collection name")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove vectors and metadata, leaving tombstones so the photos are not re-ingested."""
    c: Context = ctx.obj
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete {what.value} {ident!r}?", abort=True)
    try:
        with c.gallery() as g:
            fn = {
                DeleteWhat.subject: g.delete_subject,
                DeleteWhat.photo: g.delete_photo,
                DeleteWhat.collection: g.delete_collection,
            }[what]
            n = fn(ident)
    except FacetraceError as exc:
        raise _fail(exc) from exc
    err.print(f"deleted {what.value} {ident!r}: {n} faces removed")


@app.command()
def embed(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every face of a photo with box, quality and vector (compare backends with --backend)."""

    c: Context = ctx.obj
    try:
        pipeline = FacePipeline(c.options)
        faces = pipeline.analyse(_load_pixels(photo))
    except FacetraceError as exc:
        raise _fail(exc) from exc
    data: dict[str, Any] = {
        "photo": str(photo),
        "model": pipeline.model_id,
        "backend": str(c.options.backend),
        "faces": [
            {
                "box": f.detection.box.as_list(),
                "detector_score": f.detection.score,
                "landmarks": f.detection.landmarks.as_array().round(2).tolist(),
                "quality": f.quality.score,
                "quality_reasons": [str(r) for r in f.quality.reasons],
                "vector": [float(x) for x in f.vector],
            }
            for f in faces
        ],
    }
    if as_json:
        _dump(data)
    else:
        for i, f in enumerate(faces):
            out.print(f"face {i}: box {f.detection.box.as_list()} quality {f.quality.score:.2f}")


def _eval_progress(bar: Progress, label: str) -> Any:
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update


@index_app.command("status")
def index_status(ctx: typer.Context) -> None:
    """The index's kind, parameters and size, and the kind recommended for that size (JSON)."""
    from facetrace.index.factory import choose_kind

    c: Context = ctx.obj
    try:
        with c.gallery() as g:
            settings = g.index.settings()
            info = {"index": settings, "recommended_kind": choose_kind(g.index.count)}
    except FacetraceError as exc:
        raise _fail(exc) from exc
    _dump(info)


@index_app.command("rebuild")
def index_rebuild(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Option(help="flat, hnsw (hnsw32, hnsw64...), ivf-sq8, ivf-sq8-raw or auto.")
    ] = "auto",
    shards: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="hnsw only: graphs searched side by side (default one per core, up to 4); "
            "1 trades latency for throughput on a busy server.",
        ),
    ] = None,
) -> None:
    """Rebuild the index from the SQL store as KIND; the old one stays until the new is saved."""
    c: Context = ctx.obj
    params = {} if shards is None else {"shards": shards}
    try:  # the build itself runs FAISS on every core (Gallery._build_index)
        with c.gallery() as g:
            err.print(f"rebuilding the index of {g.index.count} faces as {kind}...")
            settings = g.rebuild_index(kind, **params)
    except FacetraceError as exc:
        raise _fail(exc) from exc
    _dump({"index": settings})


@eval_app.command("lfw")
def eval_lfw(
    ctx: typer.Context,
    pairs: Annotated[Path, typer.Option(help="LFW pairs.txt")],
    images: Annotated[Path, typer.Option(help="Folder with Name/Name_0001.jpg")],
    workers: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """LFW verification: mean accuracy over folds, each fold's threshold from the others."""
    from facetrace.eval.lfw import evaluate_lfw

    c: Context = ctx.obj
    try:
        with _progress() as bar:
            res = evaluate_lfw(
                pairs,
                images,
                options=c.options,
                workers=_workers(workers, c.settings),
                progress=_eval_progress(bar, "embed"),
            )
    except FacetraceError as exc:
        raise _fail(exc) from exc
    if as_json:
        _dump(res)
        return
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
    workers: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open-set 1:N: rank-1/rank-10 hit rates and FNIR at FPIR 0.01 and 0.001."""
    from facetrace.eval.identify import evaluate_identify

    c: Context = ctx.obj
    try:
        with _progress() as bar:
            res = evaluate_identify(
                images,
                options=c.options,
                workers=_workers(workers, c.settings),
                seed=seed,
                progress=_eval_progress(bar, "embed"),
            )
    except FacetraceError as exc:
        raise _fail(exc) from exc
    if as_json:
        _dump(res)
        return

    def pct(v: float | None) -> str:
        return "n/a (too few non-mated probes)" if v is None else f"{100 * v:.2f}%"

    out.print(
        f"gallery {res['gallery_size']}, mated probes {res['mated_probes']}, "
        f"non-mated probes {res['nonmated_probes']}"
    )
    out.print(f"rank-1 {pct(res['rank1'])}, rank-10 {pct(res['rank10'])}")
    for f in ("0.01", "0.001"):
        out.print(f"FNIR at FPIR {f}: {pct(res[f'fnir_at_fpir_{f}'])}")


# --- service commands (issue 4): serve, users, audit verify, cases purge ---------------
from facetrace.cli_service import register  # noqa: E402

register(app)


if __name__ == "__main__":
    app()

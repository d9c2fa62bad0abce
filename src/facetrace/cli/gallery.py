"""Gallery commands: ``status``, ``ingest``, ``search``, ``verify``, ``calibrate``,
``delete`` and ``embed``, thin wrappers over :mod:`facetrace.gallery`."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from facetrace.cli.common import Context, dump, err, out, progress_bar, workers_for
from facetrace.errors import FacetraceError, InvalidRequest

if TYPE_CHECKING:
    from facetrace.calibration import ModeChoice
    from facetrace.config import SearchMode
    from facetrace.gallery.directory import DeleteKind, Gallery
    from facetrace.service.shell import SearchGrounds


def status(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """What the gallery holds, which model and which index."""
    from rich.table import Table

    from facetrace.gallery.peek import peek_status

    c: Context = ctx.obj
    # the counts and the index manifest read directly when that gives the same answer
    # (no SQLAlchemy, numpy or FAISS: a fraction of the start-up); else open the gallery.
    # Settings (pydantic) are built only when the environment sets more than the data
    # directory and the model, or the quick read cannot answer: every other value is
    # validated before anything else is read
    quick = c.quick_settings()
    if quick is not None:
        info = peek_status(quick.data, model=quick.model, database_url=None)
    else:
        s = c.settings
        info = peek_status(s.data, model=c.options.model, database_url=s.database_url)
    if info is None:
        with c.gallery() as g:
            info = g.status()
    if as_json:
        dump(info)
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
    from sqlalchemy.orm import Session

    from facetrace.gallery.ingest import Batch, collect_items
    from facetrace.gallery.ingest import ingest as run_ingest
    from facetrace.imaging import ImageLimits
    from facetrace.pool import MIN_ITEMS_FOR_POOL, PhotoPool
    from facetrace.service import audit
    from facetrace.service.accounts import SYSTEM
    from facetrace.store.db import transaction

    c: Context = ctx.obj
    items = collect_items(path, collection=collection, legal_basis=legal_basis)
    if report is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        report = c.settings.data / "reports" / f"ingest-{stamp}.csv"
    source = {"via": "cli", "os_user": _os_user(), "source": str(path)}
    n_workers = workers_for(workers, c.settings)
    with ExitStack() as stack:
        pool = None
        if n_workers > 1 and len(items) >= MIN_ITEMS_FOR_POOL:
            # started before the gallery opens, so that the workers import meanwhile
            pool = stack.enter_context(PhotoPool(c.options, ImageLimits(), n_workers))
        g = stack.enter_context(c.gallery(write="ingest", audited=True))
        bar = stack.enter_context(progress_bar())
        task = bar.add_task("ingest", total=len(items))

        def progress(done: int, total: int, _summary: Any) -> None:
            bar.update(task, completed=done)

        def on_batch(session: Session, batch: Batch) -> None:
            # each committed batch is audited in its own transaction, as the service's
            # imports are: what is in the gallery is in the log
            audit.append(
                session,
                actor=SYSTEM.username,
                action=audit.Action.IMPORT_BATCH,
                target=f"collection:{collection}",
                detail={
                    **source,
                    "batch": batch.number,
                    "photos": batch.photos,
                    "photos_added": batch.photos_added,
                    "faces_added": batch.faces_added,
                    "skipped": batch.skipped,
                    "done": batch.done,
                    "total": batch.total,
                },
            )

        summary = run_ingest(
            g,
            items,
            workers=n_workers,
            allow_deleted=allow_deleted,
            report_path=report,
            progress=progress,
            on_batch=on_batch,
            pool=pool,
        )
        with transaction(g.sessions) as s:
            audit.append(
                s,
                actor=SYSTEM.username,
                action=audit.Action.IMPORT,
                target=f"collection:{collection}",
                detail={
                    **source,
                    "state": "done",
                    "photos_added": summary.photos_added,
                    "faces_added": summary.faces_added,
                    "already_present": summary.already_present,
                    "skipped": len(summary.skipped),
                },
            )
    data = summary.as_dict()
    if as_json:
        dump(data)
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


def _os_user() -> str:
    """Who ran the command, as the operating system knows them (for the audit log)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _load_pixels(path: Path) -> Any:
    from facetrace.imaging import load_image

    return load_image(path).pixels


def search(
    ctx: typer.Context,
    probe: Annotated[Path, typer.Argument(help="The probe photo or video.")],
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
    mode: Annotated[
        ModeOption | None,
        typer.Option(
            help="identification (only people above the threshold; 'no candidate' when "
            "nobody is), investigation (the -k most similar people, no threshold) or auto "
            "(chosen by the gallery's size). Default: FACETRACE_SEARCH__MODE (auto).",
            show_default=False,
        ),
    ] = None,
    sample_fps: Annotated[
        float | None,
        typer.Option(
            help="Video: frames looked at per second (env FACETRACE_VIDEO__SAMPLE_FPS).",
            min=0.01,
            max=60,
            show_default=False,
        ),
    ] = None,
    crops: Annotated[
        Path | None, typer.Option(help="Video: write each person's key-frame crops here.")
    ] = None,
    case: Annotated[
        str | None,
        typer.Option(
            "--case", help="Case number (required on a service's gallery).", show_default=False
        ),
    ] = None,
    purpose: Annotated[
        str | None,
        typer.Option(
            help="identify_deceased, identify_detained, trace_missing or "
            "verify_identity (required on a service's gallery).",
            show_default=False,
        ),
    ] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option(
            help="Legal basis of the search (required on a service's gallery).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Search every face of a photo, or every person of a video, against the gallery (1:N).

    A video is sampled, its faces tracked through each shot and the tracks of one person
    merged; each person is searched once, with a template of their best frames.

    Every search is in the audit log under your OS user; on a service's gallery it needs
    --case, --purpose and --legal-basis, as a search on the web does.
    """
    from facetrace.imaging import is_video

    c: Context = ctx.obj
    s = c.settings.search
    fpir = s.fpir if fpir is None else fpir
    why = _Why(case, purpose, legal_basis)
    policy = s.mode_policy()
    requested = _requested_mode(mode)
    if is_video(probe):
        if face is not None or min_quality is not None or force:
            raise InvalidRequest(
                "--face, --min-quality and --force apply to photos: every person of a "
                "video is searched, with a template of their best frames"
            )
        _search_video(c, probe, k=k, fpir=fpir, collections=collection, show_below=show_below,
                      sample_fps=sample_fps, crops=crops, as_json=as_json,
                      why=why, mode=requested)  # fmt: skip
        return
    if sample_fps is not None or crops is not None:
        raise InvalidRequest(f"{probe}: --sample-fps and --crops apply to videos only")
    pixels = _load_pixels(probe)
    with c.gallery(audited=True) as g:
        grounds = why.grounds(g)
        results = g.search(
            pixels,
            k=k,
            face=face,
            force=force,
            min_quality=s.min_quality if min_quality is None else min_quality,
            fpir=fpir,
            collections=collection or None,
            include_below=show_below,
            mode=requested,
            policy=policy,
        )
        how = results[0].mode if results else None
        _record_search(
            g, probe, grounds, faces=len(results),
            candidates=sum(len(r.candidates) for r in results), k=k, collections=collection,
            mode=how,
        )  # fmt: skip
    if as_json:
        dump(
            {
                "photo": str(probe),
                "mode": None if how is None else str(how.mode),
                "mode_choice": None if how is None else how.as_dict(),
                "faces": [r.as_dict() for r in results],
            }
        )
        return
    from facetrace.config import SearchMode

    if how is not None:
        out.print(mode_words(how))
    for r in results:
        q = r.face.quality
        reasons = ", ".join(str(x) for x in q.reasons) or "none"
        limit = (
            f"threshold {r.threshold:.3f}"
            if how is None or how.mode == SearchMode.IDENTIFICATION
            else f"no threshold (identification's would be {r.threshold:.3f})"
        )
        err.print(
            f"\nface {r.face_index} at {r.face.detection.box.as_list()}: quality {q.score:.2f} "
            f"(warnings: {reasons}); {limit}"
        )
        _print_candidates(r.no_candidate, list(r.candidates) + list(r.below_threshold), how)
    err.print(REVIEW_NOTICE)


class ModeOption(StrEnum):
    """--mode (the CLI's copy of facetrace.config.ModeSetting: the settings module loads
    pydantic, too heavy for the CLI's start-up)."""

    auto = "auto"
    identification = "identification"
    investigation = "investigation"


def _requested_mode(mode: ModeOption | None) -> SearchMode | None:
    """--mode as the gallery takes it: None lets the settings' policy choose."""
    from facetrace.config import SearchMode

    return None if mode is None or mode == ModeOption.auto else SearchMode(mode.value)


def mode_words(how: ModeChoice) -> str:
    """The mode of a search and why, in one line a reviewer understands."""
    from facetrace.config import SearchMode

    n = how.gallery_subjects
    if how.mode == SearchMode.INVESTIGATION:
        head = (
            "mode: investigation: the most similar people in the gallery, listed for review "
            "whatever their score (no threshold); the person may not be among them"
        )
    else:
        head = (
            "mode: identification: only people above the threshold are candidates; "
            "'no candidate' when nobody is"
        )
    if how.chosen_by == "request":
        why = "as asked (--mode)"
    elif how.chosen_by == "setting":
        why = "set by FACETRACE_SEARCH__MODE"
    elif how.investigation_from is None:
        why = (
            f"gallery of {n:,} subjects; no size for the investigation mode is known (no "
            "measured miss rate in the calibration table; FACETRACE_SEARCH__"
            "INVESTIGATION_FROM_SUBJECTS sets one)"
        )
    else:
        side = "at or above" if n >= how.investigation_from else "below"
        source = "set" if how.switch_source == "setting" else "from the calibration table"
        why = (
            f"gallery of {n:,} subjects, {side} the {how.investigation_from:,} from which "
            f"investigation is chosen ({source})"
        )
    miss = (
        ""
        if how.expected_fnir is None
        else f"; at this size the threshold would miss about {100 * how.expected_fnir:.0f}% "
        "of the people who are in the gallery"
    )
    return f"{head}. {why}{miss}."


@dataclass(frozen=True)
class _Why:
    """The --case, --purpose and --legal-basis of a search, as given."""

    case: str | None
    purpose: str | None
    legal_basis: str | None

    def grounds(self, g: Gallery) -> SearchGrounds | None:
        """Checked against the gallery (required on a service's), before any model runs."""
        from facetrace.service.shell import search_grounds

        with g.reads() as s:
            return search_grounds(
                s, case_number=self.case, purpose=self.purpose, legal_basis=self.legal_basis
            )


def _record_search(
    g: Gallery,
    probe: Path,
    grounds: SearchGrounds | None,
    *,
    faces: int,
    candidates: int,
    k: int,
    collections: list[str] | None,
    mode: ModeChoice | None = None,
) -> None:
    """The search in the audit log: the probe's SHA-256, its mode, what was found, and
    why."""
    import hashlib

    from facetrace.service import shell
    from facetrace.service.audit import Action
    from facetrace.store.db import transaction

    digest = hashlib.sha256()
    with probe.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    detail: dict[str, Any] = {"faces": faces, "candidates": candidates, "k": k}
    if mode is not None:
        detail["mode"] = str(mode.mode)
        detail["mode_chosen_by"] = mode.chosen_by
    if collections:
        detail["collections"] = list(collections)
    if grounds is not None:
        detail.update(grounds.as_dict())
    with transaction(g.sessions) as s:
        shell.record(s, action=Action.SEARCH, target=f"probe:{digest.hexdigest()}", detail=detail)


REVIEW_NOTICE = (
    "\nCandidates are leads for a trained reviewer, not identifications; "
    "confirm by other means (fingerprints, DNA, dental records, documents)."
)


def _print_candidates(no_candidate: bool, rows: list[Any], how: ModeChoice | None = None) -> None:
    from rich.table import Table

    from facetrace.config import SearchMode

    investigating = how is not None and how.mode == SearchMode.INVESTIGATION
    if no_candidate:
        out.print(
            "  no candidate: the gallery has nobody to list (none in the collections searched)"
            if investigating
            else "  no candidate: nobody in the gallery scores above the threshold"
        )
    if not rows:
        return
    t = Table("rank", "score", "est. false-match rate", "subject", "name", "collection",
              "legal basis", "source", "photo")  # fmt: skip
    for cand in rows:
        i = cand.info
        mark = "" if investigating or cand.above_threshold else " (below threshold)"
        t.add_row(
            str(cand.rank),
            f"{cand.score:.3f}{mark}",
            f"{cand.false_match_rate:.2g}",
            i.subject_external_id,
            i.subject_name,
            i.provenance.collection,
            i.provenance.legal_basis,
            i.provenance.source_url or i.provenance.source_title,
            i.photo_path,
        )
    out.print(t)


def _timecode(seconds: float) -> str:
    """``m:ss.s`` for a time in a video."""
    m, s = divmod(seconds, 60.0)
    return f"{int(m)}:{s:04.1f}"


def _search_video(
    c: Context,
    path: Path,
    *,
    k: int,
    fpir: float,
    collections: list[str] | None,
    show_below: bool,
    sample_fps: float | None,
    crops: Path | None,
    as_json: bool,
    why: _Why,
    mode: SearchMode | None = None,
) -> None:
    from facetrace.gallery.video import search_video, write_crops
    from facetrace.video import VideoOptions, video_limits

    changes = (
        {} if sample_fps is None else {"sample_fps": sample_fps, "long_sample_fps": sample_fps}
    )
    options = VideoOptions.from_settings(c.settings.video, **changes)
    with c.gallery(audited=True) as g, progress_bar() as bar:
        grounds = why.grounds(g)
        task = bar.add_task("video (s)", total=None)

        def progress(p: Any) -> None:
            bar.update(task, completed=round(p.video_s, 1), total=round(p.duration_s, 1))

        result = search_video(
            g,
            path,
            options=options,
            limits=video_limits(c.settings.video),
            k=k,
            fpir=fpir,
            collections=collections or None,
            include_below=show_below,
            progress=progress,
            mode=mode,
            policy=c.settings.search.mode_policy(),
        )
        how = result.persons[0].mode if result.persons else None
        _record_search(
            g, path, grounds, faces=len(result.persons),
            candidates=sum(len(pr.candidates) for pr in result.persons), k=k,
            collections=collections, mode=how,
        )  # fmt: skip
    written = write_crops(result, crops) if crops is not None else None
    if as_json:
        dump(
            {
                "video": str(path),
                "mode": None if how is None else str(how.mode),
                **result.summary(),
                "persons": [pr.as_dict(written) for pr in result.persons],
            }
        )
        return
    info = result.summary()
    err.print(
        f"{path.name}: {info['duration_s']:.1f} s, {info['width']}x{info['height']} "
        f"{info['codec']}; {info['frames_sampled']} frames looked at ({info['sample_fps']:g}/s), "
        f"{info['shots']} shots, {info['faces_seen']} faces, {len(result.persons)} persons "
        f"({info['speed']:.2f}x real time)"
    )
    if how is not None:
        out.print(mode_words(how))
    for pr in result.persons:
        p = pr.person
        when = ", ".join(f"{_timecode(a)}-{_timecode(b)}" for a, b in p.intervals)
        best = p.thumbnail
        err.print(
            f"\nperson {p.number}: on screen {when} ({p.seconds:.1f} s, {p.faces} faces, "
            f"{len(p.tracks)} tracks); best frame {best.frame_index} at "
            f"{_timecode(best.timestamp_s)} box {best.box.as_list()}; threshold {pr.threshold:.3f}"
        )
        if written is not None:
            files = [str(written[(p.number, i)]) for i in range(len(p.key_frames))]
            err.print(f"  key frames: {', '.join(files)}")
        _print_candidates(pr.no_candidate, list(pr.candidates) + list(pr.below_threshold), how)
    if written is None:
        err.print("\n(--crops DIR writes each person's key frames)")
    err.print(REVIEW_NOTICE)


def verify(
    ctx: typer.Context,
    a: Annotated[Path, typer.Argument(help="First photo.")],
    b: Annotated[str, typer.Argument(help="Second photo, or a subject id in the gallery.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Compare two photos, or a photo and a gallery subject (1:1)."""
    c: Context = ctx.obj
    with c.gallery() as g:
        pix_a = _load_pixels(a)
        other = _load_pixels(Path(b)) if Path(b).is_file() else b  # a photo or a subject id
        result = g.verify(pix_a, other)
    if as_json:
        dump(result.as_dict())
        return
    d = result.as_dict()
    out.print(
        f"score {d['score']:.3f} (threshold {d['threshold']:.3f}): {d['decision']}; "
        f"estimated false-match rate {d['false_match_rate']:.2g}"
    )


def calibrate(
    ctx: typer.Context,
    images: Annotated[Path, typer.Option(help="Labelled folder-per-subject photos.")],
    workers: Annotated[int | None, typer.Option()] = None,
    output: Annotated[
        Path | None, typer.Option(help="Write the table here instead of the gallery.")
    ] = None,
    cohort_out: Annotated[
        Path | None,
        typer.Option(
            help="Also make an AS-norm cohort of about a fifth of the people (chosen by a "
            "hash of the name) and write it here (.npz; the gallery keeps a copy when its "
            "tables are stored there); the tables are then fitted on the other people only. "
            "Without it there is no AS-norm table: no cohort ships with facetrace.",
            show_default=False,
        ),
    ] = None,
    asnorm_output: Annotated[
        Path | None,
        typer.Option(
            help="Write the AS-norm table here (default: with the raw table: the gallery, "
            "or beside --output as NAME-asnorm.json).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Measure score -> false-match rate on impostor pairs of a labelled set, for the raw
    cosine and, with --cohort-out, for AS-norm scores against a cohort carved from the
    set (its people are then left out of both tables)."""
    from dataclasses import replace

    import numpy as np

    from facetrace.calibration import (
        fit_calibration,
        fit_template_calibration,
        impostor_scores,
        mated_curve,
        mated_scores,
        save_calibration,
    )
    from facetrace.engine import FacePipeline
    from facetrace.eval.embedding import embed_photos
    from facetrace.gallery.ingest import scan_folder
    from facetrace.scoring.asnorm import (
        Cohort,
        impostor_scores_normalised,
        in_cohort,
        save_cohort,
    )

    c: Context = ctx.obj
    items = scan_folder(images)
    if not items:
        raise FacetraceError(f"{images}: no photos in subject folders")
    with progress_bar() as bar:
        task = bar.add_task("embed", total=len(items))
        vecs = embed_photos(
            [i.path for i in items],
            options=c.options,
            workers=workers_for(workers, c.settings),
            progress=lambda d, _t: bar.update(task, completed=d),
        )
    keep = [i for i, v in enumerate(vecs) if v.vector is not None]
    if not keep:
        raise FacetraceError(f"{images}: no face was found in any photo")
    matrix = np.stack([vecs[i].vector for i in keep]).astype(np.float32)  # type: ignore[misc]
    labels = np.array([items[i].record.subject_id for i in keep])
    quality = np.array([vecs[i].quality for i in keep], dtype=np.float64)
    pipeline = FacePipeline(c.options)
    model_id = pipeline.model_id
    cohort: Cohort | None = None
    if cohort_out is not None:
        chosen = np.array([in_cohort(str(n)) for n in labels])
        if chosen.sum() < 50 or (~chosen).sum() < 50:
            raise InvalidRequest(f"{images}: too few people to carve a cohort from")
        cohort = Cohort(
            model_id,
            matrix[chosen],
            top_k=min(200, int(chosen.sum())),
            source=f"{images.name}: {int(chosen.sum())} photos of "
            f"{len(set(labels[chosen]))} subjects",
        )
        save_cohort(cohort, cohort_out)
        matrix, labels, quality = matrix[~chosen], labels[~chosen], quality[~chosen]
    source = f"{images.name}: {len(labels)} photos, {len(set(labels))} subjects"
    try:
        cal = fit_calibration(impostor_scores(matrix, labels), model_id=model_id, source=source)
        norm = (
            None
            if cohort is None
            else fit_calibration(
                impostor_scores_normalised(matrix, labels, cohort),
                model_id=model_id,
                source=f"{source}; AS-norm, cohort {cohort.source}",
            )
        )
    except ValueError as exc:  # too few impostor pairs: a property of the photo set
        raise InvalidRequest(f"{images}: {exc}") from exc
    try:  # subject templates' own tables, so their scores keep honest false-match rates
        templates = fit_template_calibration(
            matrix, labels, quality=quality, model_id=model_id, source=source
        )
    except ValueError:
        templates = None  # too few people with several photos: the packaged tables stay
    # the same set's same-person pairs: how many people in the gallery a threshold misses,
    # from which the gallery sizes its switch to the investigation mode
    mates = mated_scores(matrix, labels)
    cal = replace(
        cal,
        mated=mated_curve(mates),
        mated_source=f"{source}: {mates.size} same-person pairs" if mates.size >= 100 else "",
    )
    if asnorm_output is None and output is not None:
        asnorm_output = output.with_name(output.stem + "-asnorm.json")
    if output is not None:
        save_calibration(cal, output)
        if templates is not None:
            output.with_name(output.stem + "-template.json").write_text(
                json.dumps(templates.to_json(), separators=(",", ":")) + "\n"
            )
    if norm is not None and asnorm_output is not None:
        save_calibration(norm, asnorm_output)
    if output is None:
        with c.gallery(write="calibrate") as g:
            g.set_calibration(cal)
            if templates is not None:
                g.set_template_calibration(templates)
            if norm is not None and cohort is not None and asnorm_output is None:
                g.set_cohort(cohort)
                g.set_calibration(norm, key="calibration_asnorm")
    summary = {
        "impostor_pairs": cal.impostor_pairs,
        "source": cal.source,
        **{f"threshold_at_fmr_{f:g}": cal.threshold_for_fmr(f) for f in (1e-3, 1e-4, 1e-5, 1e-6)},
        "mated_pairs": int(mates.size),
        "investigation_from_subjects": cal.investigation_from(
            c.settings.search.fpir, c.settings.search.identification_max_fnir
        ),
        "asnorm": None if norm is None else norm.source,
        "template_tables": None if templates is None else sorted(templates.tables),
    }
    if as_json:
        dump(summary)
    else:
        for key, val in summary.items():
            out.print(f"{key}: {val}")


class DeleteWhat(StrEnum):
    subject = "subject"
    photo = "photo"
    collection = "collection"


def delete(
    ctx: typer.Context,
    what: Annotated[DeleteWhat, typer.Argument(help="subject, photo or collection")],
    ident: Annotated[str, typer.Argument(help="Subject id, photo id or SHA-256, collection name")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    collection: Annotated[
        str | None,
        typer.Option(help="The subject's collection (needed when several hold its id)."),
    ] = None,
) -> None:
    """Remove vectors and metadata, leaving tombstones so the photos are not re-ingested."""
    c: Context = ctx.obj
    if not yes and sys.stdin.isatty():
        typer.confirm(f"Delete {what.value} {ident!r}?", abort=True)
    from facetrace.service import audit
    from facetrace.service.accounts import SYSTEM
    from facetrace.store.db import transaction

    with c.gallery(write="delete", audited=True) as g:
        # the rows and the audit entry commit together; then the index forgets the faces
        with transaction(g.sessions) as s:
            kind: DeleteKind = what.value  # the same three names
            ids = g.remove_rows(s, kind=kind, target=ident, collection=collection)
            audit.append(
                s,
                actor=SYSTEM.username,
                action=audit.Action.DELETE,
                target=f"{what.value}:{ident}",
                detail={
                    "via": "cli",
                    "os_user": _os_user(),
                    "collection": collection,
                    "faces_removed": len(ids),
                },
            )
        n = g.forget(ids)
    err.print(f"deleted {what.value} {ident!r}: {n} faces removed")


def embed(
    ctx: typer.Context,
    photo: Annotated[Path, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Every face of a photo with box, quality and vector (compare backends with --backend)."""

    from facetrace.engine import FacePipeline

    c: Context = ctx.obj
    pipeline = FacePipeline(c.options)
    faces = pipeline.analyse(_load_pixels(photo))
    data: dict[str, Any] = {
        "photo": str(photo),
        "model": pipeline.model_id,
        "backend": str(c.options.backend),
        "detector": str(c.options.detector),
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
        dump(data)
    else:
        for i, f in enumerate(faces):
            out.print(f"face {i}: box {f.detection.box.as_list()} quality {f.quality.score:.2f}")


def register(app: typer.Typer) -> None:
    """Add the gallery commands to the main ``facetrace`` command."""
    for command in (status, ingest, search, verify, calibrate, delete, embed):
        app.command()(command)

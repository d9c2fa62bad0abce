"""``facetrace duplicates``: possible duplicate subjects of the gallery, and the reviewed
actions on them (``merge``, ``undo``, ``different``, ``merges``). The same service
functions as the web page, acting as the shell's operator (audited as ``system``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from facetrace.cli.common import Context, dump, err, out

if TYPE_CHECKING:
    from facetrace.gallery.directory import Gallery
    from facetrace.gallery.duplicates import DuplicatePair

duplicates_app = typer.Typer(
    help="Possible duplicate subjects: list them (no subcommand), merge, undo, mark different.",
    invoke_without_command=True,
)

Note = Annotated[str, typer.Option("--note", help="Why (kept in the audit log).")]


class _Finder:
    """The service's duplicate finder over an opened gallery, limited to some collections."""

    def __init__(self, gallery: Gallery, names: Sequence[str] | None) -> None:
        self.gallery = gallery
        self.names = names

    def find_duplicates(
        self, *, collections: frozenset[int] | None, fmr: float
    ) -> list[DuplicatePair]:
        from facetrace.gallery.duplicates import find_duplicates

        if self.names is not None:
            with self.gallery.session() as s:
                from facetrace.store import repo

                wanted = frozenset(repo.collection_ids(s, self.names))
            collections = wanted if collections is None else collections & wanted
        return find_duplicates(self.gallery, collections=collections, fmr=fmr)


@duplicates_app.callback()
def duplicates(
    ctx: typer.Context,
    fmr: Annotated[
        float,
        typer.Option(help="Target false-match rate of a face pair (sets the score threshold)."),
    ] = 1e-4,
    collection: Annotated[
        list[str] | None, typer.Option(help="Only these collections (repeat the option).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Pairs of subjects that probably show one person, best first."""
    if ctx.invoked_subcommand is not None:
        return
    from facetrace.service import duplicates as service
    from facetrace.service.accounts import SYSTEM

    c: Context = ctx.obj
    with c.gallery(audited=True) as g, g.sessions() as s:
        pairs = service.list_proposals(s, actor=SYSTEM, finder=_Finder(g, collection), fmr=fmr)
        s.commit()
    if as_json:
        dump([p.as_dict() for p in pairs])
        return
    if not pairs:
        out.print("No possible duplicates.")
        return
    for p in pairs:
        out.print(
            f"group {p.group}: subject {p.a.id} {p.a.external_id!r} ({p.a.collection}) ~ "
            f"subject {p.b.id} {p.b.external_id!r} ({p.b.collection}): mean score "
            f"{p.score:.3f}, best {p.best_score:.3f}, {p.face_pairs}/{p.pairs} face pairs",
            highlight=False,
        )
    err.print(
        "merge with: facetrace duplicates merge SOURCE_ID TARGET_ID --note '...'; "
        "or: facetrace duplicates different ID ID --note '...'"
    )


def _run(ctx: typer.Context, action: str, command: str | None, **kwargs: Any) -> Any:
    """``action`` of the duplicates service; ``command`` names a change (it then holds
    the data directory's owner lock), None a read."""
    from facetrace.service import duplicates as service
    from facetrace.service.accounts import SYSTEM

    c: Context = ctx.obj
    with c.gallery(write=command, audited=True) as g, g.sessions() as s:
        result = getattr(service, action)(s, actor=SYSTEM, **kwargs)
        s.commit()
        return result


@duplicates_app.command("merge")
def merge(
    ctx: typer.Context,
    source: Annotated[int, typer.Argument(help="Subject id whose photos move.")],
    target: Annotated[int, typer.Argument(help="Subject id that keeps them.")],
    note: Note = "",
) -> None:
    """Merge subject SOURCE into TARGET (its photos keep their provenance); undoable."""
    row = _run(ctx, "merge", "duplicates merge", source_id=source, target_id=target, note=note)
    dump({"merge": row.id, "photos_moved": len(row.photo_ids), "faces_moved": len(row.face_ids)})


@duplicates_app.command("undo")
def undo(
    ctx: typer.Context,
    merge_id: Annotated[int, typer.Argument(help="The merge to undo.")],
    note: Note = "",
) -> None:
    """Undo a merge: its photos go back to the subject they came from."""
    row = _run(ctx, "undo", "duplicates undo", merge_id=merge_id, note=note)
    dump({"merge": row.id, "photos_moved_back": len(row.photo_ids)})


@duplicates_app.command("different")
def different(
    ctx: typer.Context,
    a: Annotated[int, typer.Argument(help="A subject id.")],
    b: Annotated[int, typer.Argument(help="The other subject id.")],
    note: Note = "",
) -> None:
    """Record that two subjects are different people: never proposed again."""
    _run(ctx, "mark_different", "duplicates different", subject_a=a, subject_b=b, note=note)
    dump({"different": [a, b]})


@duplicates_app.command("merges")
def merges(ctx: typer.Context) -> None:
    """The latest merges, newest first (JSON)."""
    rows = _run(ctx, "recent_merges", None)
    dump(
        [
            {
                "merge": m.id,
                "source": {"id": m.source.id, "external_id": m.source.external_id},
                "target": {"id": m.target.id, "external_id": m.target.external_id},
                "photos": m.photos,
                "merged_by": m.merged_by,
                "merged_at": m.merged_at,
                "note": m.note,
                "undone_by": m.undone_by,
                "undone_at": m.undone_at,
            }
            for m in rows
        ]
    )


def register(app: typer.Typer) -> None:
    """Add ``duplicates`` to the main ``facetrace`` command."""
    app.add_typer(duplicates_app, name="duplicates")

"""``facetrace index status`` and ``index rebuild``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.cli.common import Context, dump, err

index_app = typer.Typer(no_args_is_help=True, help="Inspect or rebuild the vector index.")


@index_app.command("status")
def index_status(ctx: typer.Context) -> None:
    """The index's kind, parameters, size and health (for Milvus: the server's version,
    load state and latency), and the kind recommended for that size (JSON). While the
    service rebuilds a lost index in the background: that rebuild's progress (state,
    faces done of total, started); afterwards the last one's outcome as "last_rebuild"."""
    from facetrace.index.factory import choose_kind

    c: Context = ctx.obj
    last = _last_rebuild(c)
    if last is not None and last.get("state") == "building":
        dump({"rebuild": last})  # opening the gallery now would start a second rebuild
        return
    with c.gallery() as g:
        settings = g.index.settings()
        info = {
            "index": settings,
            "health": g.index_health(),
            "recommended_kind": choose_kind(g.index.count),
        }
    if last is not None:
        info["last_rebuild"] = last
    dump(info)


def _last_rebuild(c: Context) -> dict[str, Any] | None:
    """What another process (the service) wrote of its background rebuild of a lost
    index: its progress while it builds, else how it ended. A rebuild whose process is
    gone while it said "building" was interrupted (the next open starts it again)."""
    from facetrace.gallery.directory import REBUILD_STATUS_FILE

    path = Path(c.settings.data) / REBUILD_STATUS_FILE
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict):
        return None
    if status.get("state") == "building":
        try:
            os.kill(int(status["pid"]), 0)  # alive?
        except (OSError, ValueError, KeyError, TypeError):
            status["state"] = "interrupted"
    return status


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
    # the build itself runs FAISS on every core (Gallery._build_index)
    with c.gallery(write="index rebuild") as g:
        err.print(f"rebuilding the index of {g.index.count} faces as {kind}...")
        settings = g.rebuild_index(kind, **params)
    dump({"index": settings})


def register(app: typer.Typer) -> None:
    """Add ``index`` to the main ``facetrace`` command."""
    app.add_typer(index_app, name="index")

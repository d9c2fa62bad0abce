"""The ``facetrace`` command. Placeholder on the service branch until the engine's CLI
lands in main; then only the ``register`` call below is kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from facetrace.config import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@dataclass
class Context:
    """Settings resolved from options and environment."""

    settings: Settings


@app.callback()
def main(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data", help="Data directory.")] = None,
    database_url: Annotated[str | None, typer.Option("--database-url")] = None,
) -> None:
    """facetrace: face search for identifying the dead and tracing the missing."""
    overrides: dict[str, Any] = {
        k: v for k, v in {"data": data, "database_url": database_url}.items() if v
    }
    ctx.obj = Context(settings=Settings(**overrides))


# --- service commands (issue 4) ---
from facetrace.cli_service import register  # noqa: E402

register(app)

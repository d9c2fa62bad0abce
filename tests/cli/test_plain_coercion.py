"""The CLI's options are coerced without pydantic where that is plain
(:func:`facetrace.cli.common.plain_coercion`), with the values and error messages typer's
own coercion gives: the same app is run under the error boundary and under a bare
TyperGroup, and both must answer alike."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from facetrace.cli.common import ErrorBoundary

runner = CliRunner()


class Colour(StrEnum):
    red = "red"
    blue = "blue"


def _app(cls: type[TyperGroup]) -> typer.Typer:
    app = typer.Typer(cls=cls)

    @app.callback()
    def main(
        ctx: typer.Context,
        data: Annotated[Path | None, typer.Option()] = None,
        name: Annotated[str | None, typer.Option()] = None,
        colour: Annotated[Colour | None, typer.Option()] = None,
        loud: Annotated[bool, typer.Option("--loud")] = False,
    ) -> None:
        """root"""
        ctx.obj = {"data": data, "name": name, "colour": colour, "loud": loud}

    @app.command()
    def show(
        ctx: typer.Context,
        folder: Annotated[Path, typer.Argument(exists=True, file_okay=False)],
        count: Annotated[int, typer.Option(min=1)] = 1,
        shade: Annotated[Colour, typer.Option(case_sensitive=False)] = Colour.red,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        values = {**ctx.obj, "folder": folder, "count": count, "shade": shade, "json": as_json}
        typer.echo(json.dumps({k: [type(v).__name__, str(v)] for k, v in values.items()}))

    return app


@pytest.mark.parametrize(
    "args",
    [
        ["show", "."],
        ["--data", "a/b", "--name", "x y", "--colour", "blue", "--loud", "show", ".", "--json"],
        ["show", ".", "--count", "3", "--shade", "BLUE"],
        ["--colour", "green", "show", "."],  # not a choice
        ["--colour", "RED", "show", "."],  # case-sensitive by default
        ["show", "/nonexistent/folder"],  # typer's own path checks
        ["show", __file__],  # a file where a folder is asked
        ["show", ".", "--count", "0"],  # below min: typer's own (pydantic) coercion
        ["show", ".", "--count", "two"],
        ["show", "--help"],
        ["--help"],
    ],
)
def test_same_as_typer(args: list[str]) -> None:
    ours = runner.invoke(_app(ErrorBoundary), args)
    typers = runner.invoke(_app(TyperGroup), args)
    assert (ours.exit_code, ours.output) == (typers.exit_code, typers.output)
    assert ours.exception is None or isinstance(ours.exception, SystemExit)


def test_the_values_are_plain() -> None:
    res = runner.invoke(_app(ErrorBoundary), ["--data", "a", "--colour", "blue", "show", "."])
    assert res.exit_code == 0, res.output
    values = json.loads(res.stdout)
    assert values["data"] == ["PosixPath", "a"]
    assert values["colour"] == ["Colour", "blue"]
    assert values["name"] == ["NoneType", "None"]
    assert values["folder"] == ["PosixPath", "."]

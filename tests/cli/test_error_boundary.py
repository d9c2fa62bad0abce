"""The CLI's one error boundary (:class:`facetrace.cli.common.ErrorBoundary`): a domain
error anywhere becomes one line on stderr and an exit status, never a traceback."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import facetrace.cli
from facetrace.cli.common import ErrorBoundary
from facetrace.cli.main import app
from facetrace.errors import FacetraceError, ImageError, InvalidRequest, ManifestError

runner = CliRunner()


def _app_raising(exc: Exception) -> typer.Typer:
    """A one-command app under the boundary whose command (in a sub-group) raises ``exc``."""
    root = typer.Typer(cls=ErrorBoundary)
    group = typer.Typer()

    @root.callback()
    def main() -> None:
        """root"""

    @group.command("go")
    def go() -> None:
        raise exc

    root.add_typer(group, name="sub")
    return root


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (FacetraceError("nothing to do"), 1),
        (ImageError("p.jpg", "not an image [.db]"), 1),
        (ManifestError("m.csv", 3, "missing 'path'"), 2),
        (InvalidRequest("bad input"), 1),
    ],
)
def test_a_domain_error_is_one_line_and_a_status(exc: FacetraceError, code: int) -> None:
    res = runner.invoke(_app_raising(exc), ["sub", "go"])
    assert res.exit_code == code
    assert res.stderr == f"error: {exc}\n"  # brackets kept, not read as markup
    assert res.stdout == ""


def test_a_bug_is_not_swallowed() -> None:
    res = runner.invoke(_app_raising(KeyError("oops")), ["sub", "go"])
    assert res.exit_code == 1
    assert isinstance(res.exception, KeyError)


def test_bad_settings_in_the_callback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACETRACE_SEARCH__FPIR", "2")
    res = runner.invoke(app, ["--data", str(tmp_path), "status"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: invalid settings: FACETRACE_SEARCH__FPIR")
    assert res.stderr.count("\n") == 1


def test_a_real_command_refusal(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,subject_id\n")
    res = runner.invoke(app, ["--data", str(tmp_path), "ingest", str(tmp_path / "m.csv")])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "no rows" in res.stderr
    assert res.stderr.count("\n") == 1


def test_no_command_catches_domain_errors_itself() -> None:
    """The boundary is the only handler: no ``except FacetraceError`` in the commands."""
    root = Path(facetrace.cli.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is not None:
                names = {n.id for n in ast.walk(node.type) if isinstance(n, ast.Name)}
                assert "FacetraceError" not in names or path.name == "common.py", path.name

"""The layer rule of design.md, checked on the source: a module imports only from its own
layer or below. Every ``import`` statement counts, including those inside functions and
under ``TYPE_CHECKING`` (a deferred import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import facetrace

PACKAGE = Path(facetrace.__file__).resolve().parent

# Bottom up. A module may import a module of its own rank or lower, never higher.
RANKS: list[tuple[str, int]] = [
    ("facetrace", 0),  # the package itself (__version__)
    ("facetrace.errors", 0),
    ("facetrace.types", 0),
    ("facetrace.config", 0),
    ("facetrace.config_quick", 0),  # the data directory and model without pydantic
    ("facetrace.fields", 0),
    ("facetrace.imaging", 0),
    ("facetrace.rwlock", 0),  # the index's readers-writer lock
    ("facetrace.vision", 1),
    ("facetrace.index", 1),
    ("facetrace.store", 1),
    ("facetrace.engine", 2),
    ("facetrace.calibration", 2),
    ("facetrace.scoring", 2),  # subject templates, AS-norm: pure numpy
    ("facetrace.pool", 2),
    ("facetrace.inference", 2),  # face analysis for request threads, on worker processes
    ("facetrace.grouping", 2),  # graph, clustering, constraints: pure, on the index
    ("facetrace.grouping.folder", 3),  # 'facetrace group FOLDER': photos in, report out
    ("facetrace.gallery", 3),
    ("facetrace.video", 3),  # search by video: frames -> tracks -> persons (no SQL)
    ("facetrace.eval", 3),
    ("facetrace.service", 4),
    # HTTP plumbing shared by api/ and web/; it knows neither of them
    ("facetrace.server.state", 5),
    ("facetrace.server.deps", 5),
    ("facetrace.server.problems", 5),
    ("facetrace.server.ratelimit", 5),
    ("facetrace.server.proxies", 5),
    ("facetrace.server.health", 5),
    ("facetrace.api", 6),
    ("facetrace.web", 6),
    ("facetrace.server", 7),  # the composition root (server/app.py)
    ("facetrace.cli", 8),
]

# Peers of one rank that must not import each other.
SEPARATE = [("facetrace.api", "facetrace.web")]

# Third-party packages that belong to a layer: web frameworks only from the HTTP layers up,
# the CLI framework only in the CLI.
THIRD_PARTY_MIN_RANK = {
    "fastapi": 5,
    "starlette": 5,
    "jinja2": 5,
    "uvicorn": 7,
    "typer": 8,
    "matplotlib": 3,  # the evaluation's figures (facetrace.eval.plots), never below
}


def _rank(module: str) -> tuple[int, str]:
    """The rank of ``module`` and the layer prefix that gave it (the longest match)."""
    best = ("", -1)
    for prefix, rank in RANKS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best[0]):
            best = (prefix, rank)
    if best[1] < 0:
        raise AssertionError(f"{module} is in no layer: add it to RANKS in {__file__}")
    return best[1], best[0]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(text: str, module: str, *, is_package: bool) -> list[tuple[int, str]]:
    """(line, imported module) of every import in the source, relative ones resolved."""
    tree = ast.parse(text)
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # "from facetrace.service import cases" imports facetrace.service.cases
            for alias in node.names:
                found.append((node.lineno, f"{base}.{alias.name}" if base else alias.name))
    return found


def _violations(module: str, text: str, *, is_package: bool = False) -> list[str]:
    """Every import in ``text`` (the source of ``module``) that breaks the rule."""
    rank, layer = _rank(module)
    out = []
    for line, target in _imports(text, module, is_package=is_package):
        where = f"{module}:{line}"
        top = target.split(".")[0]
        if top == "facetrace":
            if target == "facetrace.__version__":
                continue
            target_rank, target_layer = _rank(target)
            if target_rank > rank:
                out.append(f"{where}: {module} ({layer}) imports {target} ({target_layer})")
            for a, b in SEPARATE:
                if (layer, target_layer) in {(a, b), (b, a)}:
                    out.append(f"{where}: {module} imports {target}; {a} and {b} are separate")
        elif top in THIRD_PARTY_MIN_RANK and rank < THIRD_PARTY_MIN_RANK[top]:
            out.append(f"{where}: {module} ({layer}) imports {top}")
    return out


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_layer_table_covers_every_module() -> None:
    for path in SOURCES:
        _rank(_module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_layer_or_below(path: Path) -> None:
    module = _module_name(path)
    assert _violations(module, path.read_text(), is_package=path.name == "__init__.py") == []


def test_the_check_catches_an_upward_import() -> None:
    """The checker itself, on sources that break the rule (and one that keeps it)."""
    bad = {
        "facetrace.service.bad": "from fastapi import UploadFile\n",
        "facetrace.service.bad2": "from facetrace.web import render\n",
        "facetrace.service.bad3": "from facetrace.server.deps import Db\n",
        "facetrace.api.routes.bad": "from facetrace.web.render import page\n",
        "facetrace.web.bad": "from ..api import router\n",
        "facetrace.engine": "def f() -> None:\n    from facetrace.service import cases\n",
        "facetrace.store.bad": "from facetrace.gallery.directory import Gallery\n",
        "facetrace.api.bad": "from facetrace.server.app import create_app\n",
        "facetrace.gallery.bad": "import typer\n",
    }
    for module, text in bad.items():
        assert _violations(module, text), module
    ok = "from facetrace.service import searches\nfrom facetrace.server.deps import Db\n"
    assert _violations("facetrace.api.routes.ok", ok) == []

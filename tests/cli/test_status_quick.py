"""``facetrace status`` reads a SQLite gallery without opening it (facetrace.gallery.peek)
and prints exactly what the opened gallery reports; when the quick read cannot be sure
(the index behind SQL, a database URL, an index file SQL does not describe) it opens
the gallery. Both routes are compared on a real gallery: the default one takes the
quick read, ``--database-url`` naming the same SQLite file forces the full one."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery.directory import INDEX_FILE, Gallery
from facetrace.gallery.peek import peek_status
from tests.galleries import ENROLLED

runner = CliRunner()


def _status(data: Path, *args: str, full: bool = False) -> str:
    url = ["--database-url", f"sqlite:///{(data / 'facetrace.db').resolve()}"] if full else []
    res = runner.invoke(app, ["--data", str(data), *url, "status", *args])
    assert res.exit_code == 0, res.stderr
    return res.stdout


def _peek(data: Path) -> dict[str, object] | None:
    return peek_status(data, model="dlib-resnet-v1", database_url=None)


def _same_both_ways(data: Path) -> dict[str, object]:
    quick, full = _status(data, "--json"), _status(data, "--json", full=True)
    assert json.loads(quick) == json.loads(full)
    assert _status(data) == _status(data, full=True)  # the table, character for character
    info: dict[str, object] = json.loads(quick)
    return info


def test_quick_status_is_the_gallerys_status(gallery_dir: Path) -> None:
    peeked = _peek(gallery_dir)
    assert peeked is not None  # the quick read answers for a saved, consistent gallery
    with Gallery.open(gallery_dir, read_only=True) as g:
        opened = g.status()
    assert peeked == opened
    info = _same_both_ways(gallery_dir)
    assert info["indexed_faces"] == info["index"]["count"] > 0  # type: ignore[index]
    assert info["calibration"] is not None


def test_after_a_delete_and_a_calibration_both_ways_agree(gallery_dir: Path) -> None:
    res = runner.invoke(
        app, ["--data", str(gallery_dir), "delete", "subject", ENROLLED[0], "--yes"]
    )
    assert res.exit_code == 0, res.stderr
    with Gallery.open(gallery_dir) as g:
        cal = g.calibration()
        assert cal is not None
        g.set_calibration(replace(cal, source="the operator's own table"))
    info = _same_both_ways(gallery_dir)
    assert info["calibration"] == {
        "source": "the operator's own table",
        "impostor_pairs": cal.impostor_pairs,
    }
    assert _peek(gallery_dir) is not None


def test_index_behind_sql_falls_back_to_the_gallery(gallery_dir: Path) -> None:
    index = gallery_dir / INDEX_FILE
    before = _status(gallery_dir, "--json", full=True)
    # an index file SQL does not describe (another mtime): opening repairs it first
    st = index.stat()
    os.utime(index, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert _peek(gallery_dir) is None
    assert _same_both_ways(gallery_dir) == json.loads(before)
    # no index file at all: the gallery rebuilds it from SQL (in memory: it is a reader)
    index.unlink()
    assert _peek(gallery_dir) is None
    assert json.loads(_status(gallery_dir, "--json")) == json.loads(before)


def test_a_database_url_or_another_model_is_not_peeked(gallery_dir: Path) -> None:
    url = f"sqlite:///{(gallery_dir / 'facetrace.db').resolve()}"
    assert peek_status(gallery_dir, model="dlib-resnet-v1", database_url=url) is None
    assert peek_status(gallery_dir, model="arcface.onnx", database_url=None) is None
    assert _peek(gallery_dir / "missing") is None

"""``facetrace index status|rebuild``: switching index kinds keeps the gallery's answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from tests.galleries import ENROLLED

runner = CliRunner()


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), *args])
    return res.exit_code, res.stdout, res.stderr


def test_index_status_reports_kind_and_recommendation(gallery_dir: Path) -> None:
    code, out, _ = run(gallery_dir, "index", "status")
    assert code == 0, out
    info = json.loads(out)
    assert info["index"]["kind"] == "flat" and info["recommended_kind"] == "flat"
    assert info["index"]["count"] == len(ENROLLED) * 2 + 3


@pytest.mark.parametrize("kind", ["hnsw", "ivf-sq8", "flat"])
def test_rebuild_switches_kind_and_keeps_results(
    gallery_dir: Path, probe_of: dict[str, Path], kind: str
) -> None:
    with Gallery.open(gallery_dir) as g:
        ids_before = sorted(g.index.ids().tolist())
    code, out, _ = run(gallery_dir, "index", "rebuild", "--kind", kind)
    assert code == 0, out
    assert json.loads(out)["index"]["kind"] == kind
    with Gallery.open(gallery_dir) as g:  # reopened from the saved index, not rebuilt
        assert g.index.settings()["kind"] == kind
        assert sorted(g.index.ids().tolist()) == ids_before
        probe = g.pipeline.analyse(load_image(probe_of[ENROLLED[1]]).pixels)[0]
        results = g.search_vectors(probe.vector[None, :], k=3, fpir=0.5)
        _, above, below = results[0]
        assert (above or below)[0].info.subject_external_id == ENROLLED[1]


def test_rebuild_refuses_unknown_kind(gallery_dir: Path) -> None:
    code, _, err = run(gallery_dir, "index", "rebuild", "--kind", "annoy")
    assert code == 1 and "unknown index kind" in err
    with Gallery.open(gallery_dir) as g:
        assert g.index.settings()["kind"] == "flat"


def test_rebuild_sets_the_hnsw_shard_count(gallery_dir: Path, probe_of: dict[str, Path]) -> None:
    code, out, err = run(gallery_dir, "index", "rebuild", "--kind", "hnsw", "--shards", "3")
    assert code == 0, err
    assert json.loads(out)["index"]["shards"] == 3
    with Gallery.open(gallery_dir) as g:  # the count is saved with the index
        assert g.index.settings()["shards"] == 3
        probe = g.pipeline.analyse(load_image(probe_of[ENROLLED[2]]).pixels)[0]
        _, above, below = g.search_vectors(probe.vector[None, :], k=3, fpir=0.5)[0]
        assert (above or below)[0].info.subject_external_id == ENROLLED[2]


def test_rebuild_refuses_shards_for_other_kinds(gallery_dir: Path) -> None:
    code, _, err = run(gallery_dir, "index", "rebuild", "--kind", "ivf-sq8", "--shards", "2")
    assert code == 1 and "shards" in err and "Traceback" not in err
    with Gallery.open(gallery_dir) as g:
        assert g.index.settings()["kind"] == "flat"


def test_new_gallery_takes_the_configured_kind(gallery_dir: Path) -> None:
    (gallery_dir / "index.faiss").unlink()
    with Gallery.open(gallery_dir, index_kind="hnsw16") as g:
        assert g.index.settings()["kind"] == "hnsw" and g.index.settings()["m"] == 16
        assert g.index.count == len(ENROLLED) * 2 + 3

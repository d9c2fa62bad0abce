"""Ray ingestion on a local Ray instance: same gallery as the local path, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.store import repo

from ..counts import assert_counts_exact
from ..dbutil import database_url

ray = pytest.importorskip("ray", reason="the ray extra is not installed")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A small local Ray instance (2 CPUs, 256 MB object store), shut down afterwards.

    Ray waits fixed times for its GCS server and raylet to come up; on this 2-core
    machine either has been seen to time out now and then (the raylet under load, the
    GCS port file once on an idle machine), so start-up is tried three times.
    """
    for attempt in (1, 2, 3):
        try:
            ray.init(
                num_cpus=2,
                object_store_memory=256 * 2**20,
                include_dashboard=False,
                log_to_driver=False,
            )
            break
        except Exception as exc:  # Ray raises a bare Exception on a start-up timeout
            ray.shutdown()
            if attempt == 3 or "timed out" not in str(exc).lower():
                raise
    yield
    ray.shutdown()


def repo_collection_id(g: Gallery, name: str) -> int:
    with g.sessions() as s:
        return repo.collection_ids(s, [name])[0]


def _faces(data: Path) -> tuple[int, list[str]]:
    """Photos stored and the subject of every indexed face."""
    with Gallery.open(data) as g, g.sessions() as s:
        ids = {int(i) for i in repo.searchable_ids(s)}
        info = repo.face_info(s, ids)
        return repo.counts(s)["photos"], sorted(i.subject_external_id for i in info.values())


def test_ray_ingest_matches_local_and_resumes(
    local_ray: None, mini_lfw: Path, built_gallery: Path, tmp_path: Path
) -> None:
    from facetrace.gallery.ingest_ray import ingest_ray

    items = scan_folder(mini_lfw, collection="lfw", legal_basis="test")
    data = tmp_path / "ray"
    with Gallery.open(data) as g:
        # resumability: a first run that stopped after three photos
        ingest(g, items[:3])
        summary = ingest_ray(g, items, batch_size=2, concurrency=2)
    assert summary.already_present == 3
    assert summary.photos_added == len(items) - 3 and not summary.skipped
    assert _faces(data) == _faces(built_gallery)  # the same photos and subjects
    with Gallery.open(data) as g:
        again = ingest_ray(g, items, concurrency=2)
        assert again.photos_added == 0 and again.already_present == len(items)
        # the vectors found their way into the index, searchable, tagged with their collection
        with g.sessions() as s:
            assert sorted(g.index.ids().tolist()) == sorted(repo.searchable_ids(s).tolist())
            truth = repo.searchable_groups(s)
            assert_counts_exact(s)  # kept by the database with every batch
        ids, groups = g.index.id_groups()
        assert sorted(zip(ids.tolist(), groups.tolist(), strict=True)) == sorted(
            zip(truth[0].tolist(), truth[1].tolist(), strict=True)
        )
        assert set(groups.tolist()) == {repo_collection_id(g, "lfw")}


@pytest.mark.slow
@pytest.mark.pg
def test_ray_ingest_into_postgresql_and_milvus_lite(
    local_ray: None, mini_lfw: Path, tmp_path: Path
) -> None:
    """The cluster path in miniature: metadata to PostgreSQL, vectors to Milvus (Lite)."""
    from facetrace.gallery.ingest_ray import ingest_ray

    items = scan_folder(mini_lfw, collection="lfw", legal_basis="test")[:4]
    params = {"uri": str(tmp_path / "vectors.db"), "collection": "faces"}
    with database_url("pg", tmp_path) as url:
        g = Gallery.open(
            tmp_path / "data", database_url=url, index_kind="milvus", index_params=params
        )
        try:
            summary = ingest_ray(g, items, concurrency=2)
            assert summary.photos_added == 4
            assert g.index.settings()["kind"] == "milvus" and g.index.count == 4
            with g.sessions() as s:
                assert sorted(g.index.ids().tolist()) == sorted(repo.searchable_ids(s).tolist())
                assert sum(assert_counts_exact(s).values()) == 4
        finally:
            g.close()
            close = getattr(g.index, "close", None)
            if close is not None:
                close()

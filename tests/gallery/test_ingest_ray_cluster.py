"""Ray ingest on a real two-node cluster into PostgreSQL and the Milvus server, with a
node killed half-way (slow: a cluster, a server and a few hundred photos twice).

The cluster is a head and a joined node on this machine (``tests/ray_cluster.py``),
one CPU each, so the pipeline runs on both. Once some photos are stored, the node the
driver is not attached to is killed with SIGKILL (raylet, workers, object store). The
run either finishes on the surviving node or fails; ``ingest_ray`` run again resumes
(photos already in SQL are skipped). The gallery must end with exactly the photos,
subjects and indexed faces of a clean local run of the same photos, each face once in
Milvus, tagged with its collection.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import IngestSummary, ingest, scan_folder
from facetrace.store import repo
from facetrace.store.models import Photo
from tests.counts import assert_counts_exact
from tests.dbutil import database_url
from tests.milvus_server import CollectionPool
from tests.ray_cluster import NODE_IP, driver_node, kill_node, ray_cluster, wait_for_nodes

ray = pytest.importorskip("ray", reason="the ray extra is not installed")
log = logging.getLogger(__name__)
# a clean run and a cluster run of ~200 photos: minutes on 2 idle cores, more when loaded
pytestmark = [pytest.mark.slow, pytest.mark.pg, pytest.mark.timeout(2400)]

N_SUBJECTS = 60  # about 200 photos of the LFW half


def _tree(faces_dir: Path, root: Path) -> Path:
    """Symlinks to every photo of the first subjects with at least two photos."""
    src = faces_dir / "lfw" / "images"
    chosen = [d for d in sorted(src.iterdir()) if len(list(d.glob("*.jpg"))) >= 2]
    for d in chosen[:N_SUBJECTS]:
        (root / d.name).mkdir(parents=True)
        for photo in sorted(d.glob("*.jpg"))[:6]:
            (root / d.name / photo.name).symlink_to(photo)
    return root


def _content(g: Gallery) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(photo sha256, subject) of every photo, and (subject, face index) of every
    indexed face's photo: what a clean run and the killed-and-resumed one must share."""
    with g.sessions() as s:
        photos = sorted(
            (p.sha256, p.subject.external_id if p.subject else "") for p in s.scalars(select(Photo))
        )
        ids = repo.searchable_ids(s)
        assert sum(assert_counts_exact(s).values()) == ids.size  # kept with every batch
        info = repo.face_info(s, {int(i) for i in ids})
        faces = sorted((i.subject_external_id, i.photo_sha256) for i in info.values())
    return photos, faces


def test_killed_node_then_resume_matches_a_clean_run(
    faces_dir: Path, tmp_path: Path, milvus_pool: CollectionPool
) -> None:
    from facetrace.gallery.ingest_ray import connect_ray, ingest_ray

    items = scan_folder(_tree(faces_dir, tmp_path / "photos"), collection="lfw")
    assert len(items) >= 150
    log.info("clean local run of %d photos", len(items))
    with Gallery.open(tmp_path / "clean") as clean:
        reference = ingest(clean, items, workers=2)
        want = _content(clean)
    assert reference.photos_added > 100

    params = {"uri": milvus_pool.uri, "collection": milvus_pool.take(128)}
    with database_url("pg", tmp_path) as url, ray_cluster(tmp_path / "ray") as cluster:
        log.info("cluster up at %s", cluster.address)
        connect_ray(cluster.address, attempts=3, timeout=60, node_ip_address=NODE_IP)
        try:
            wait_for_nodes(2, timeout=120)
            victim = next(n for n in cluster.nodes if n is not driver_node(cluster))
            g = Gallery.open(
                tmp_path / "data", database_url=url, index_kind="milvus", index_params=params
            )
            try:
                outcome: dict[str, Any] = {}

                def first_run() -> None:
                    try:
                        outcome["summary"] = ingest_ray(g, items, batch_size=4, concurrency=2)
                    except Exception as exc:  # the dead node may fail the whole run
                        outcome["error"] = exc

                runner = threading.Thread(target=first_run, daemon=True)
                runner.start()
                deadline = time.monotonic() + 600
                while time.monotonic() < deadline and runner.is_alive():
                    with g.sessions() as s:
                        stored = s.scalar(select(func.count()).select_from(Photo)) or 0
                    if stored >= len(items) // 4:
                        break
                    time.sleep(0.5)
                assert runner.is_alive(), f"the run ended before the kill: {outcome}"
                log.info("killing %s after %d photos", victim.name, stored)
                kill_node(victim)
                runner.join(timeout=900)
                assert not runner.is_alive(), "the run hung after the node died"
                with g.sessions() as s:
                    stored = s.scalar(select(func.count()).select_from(Photo)) or 0
                assert stored < len(items) or "summary" in outcome
                log.info("first run: %s; %d photos stored; resuming", outcome, stored)
                # resumed on what is left of the cluster: only the photos not yet stored
                again: IngestSummary = ingest_ray(g, items, batch_size=4, concurrency=1)
                assert again.already_present >= stored
                assert _content(g) == want
                with g.sessions() as s:
                    truth, groups = repo.searchable_groups(s)
                ids, tags = g.index.id_groups()
                assert ids.size == truth.size, "a face is missing from Milvus or is there twice"
                assert sorted(zip(ids.tolist(), tags.tolist(), strict=True)) == sorted(
                    zip(truth.tolist(), groups.tolist(), strict=True)
                )
            finally:
                g.close()
        finally:
            ray.shutdown()
    milvus_pool.give_back(str(params["collection"]), 128)

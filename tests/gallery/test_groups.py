"""Collection filters are group filters: faces carry their collection's id in the index,
the tags come back from SQL whenever the index is lost or predates them."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import faiss
import numpy as np
import numpy.typing as npt
import pytest

from facetrace.gallery.directory import INDEX_FILE, Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.imaging import load_image
from facetrace.store import repo

PRESS = "Ari_Fleischer"  # not in the built gallery: enrolled here into a second collection


@pytest.fixture()
def two_collections(gallery_dir: Path, faces_dir: Path, tmp_path: Path) -> Path:
    """The built gallery ("lfw") plus two photos of PRESS in a collection "press"."""
    tree = tmp_path / "press" / PRESS
    tree.mkdir(parents=True)
    for photo in sorted((faces_dir / "lfw" / "images" / PRESS).glob("*.jpg"))[:2]:
        shutil.copy(photo, tree / photo.name)
    with Gallery.open(gallery_dir) as g:
        summary = ingest(g, scan_folder(tree.parent, collection="press", legal_basis="test"))
    assert summary.photos_added == 2, summary.skipped
    return gallery_dir


@pytest.fixture(scope="module")
def press_probe(faces_dir: Path) -> Path:
    return sorted((faces_dir / "lfw" / "images" / PRESS).glob("*.jpg"))[2]


def _probe_vector(g: Gallery, photo: Path) -> npt.NDArray[np.float32]:
    return g.pipeline.analyse(load_image(photo).pixels)[0].vector[None, :]


def _found(
    g: Gallery, vector: npt.NDArray[np.float32], collections: list[str] | None
) -> list[tuple[str, str]]:
    """(subject, collection) of every candidate, above or below the threshold."""
    _, above, below = g.search_vectors(
        vector, k=10, fpir=0.5, selector=g.selector_for(collections), include_below=True
    )[0]
    return [(c.info.subject_external_id, c.info.provenance.collection) for c in above + below]


def _check_filters(g: Gallery, vector: npt.NDArray[np.float32]) -> None:
    anywhere = _found(g, vector, None)
    assert anywhere[0] == (PRESS, "press")
    press = _found(g, vector, ["press"])
    assert press and all(c == "press" for _, c in press) and press[0][0] == PRESS
    lfw = _found(g, vector, ["lfw"])
    assert lfw and all(c == "lfw" for _, c in lfw) and PRESS not in {s for s, _ in lfw}
    assert _found(g, vector, ["no-such-collection"]) == []


def _tags_match_sql(g: Gallery) -> None:
    ids, groups = g.index.id_groups()
    with g.sessions() as s:
        truth_ids, truth_groups = repo.searchable_groups(s)
    assert dict(zip(ids.tolist(), groups.tolist(), strict=True)) == dict(
        zip(truth_ids.tolist(), truth_groups.tolist(), strict=True)
    )


def test_collection_filter_is_a_group_filter(two_collections: Path, press_probe: Path) -> None:
    with Gallery.open(two_collections) as g:
        selector = g.selector_for(["press", "lfw"])
        assert selector is not None and selector.allow is None and not selector.deny
        with g.sessions() as s:
            assert selector.groups == frozenset(repo.collection_ids(s, ["lfw", "press"]))
        _tags_match_sql(g)
        _check_filters(g, _probe_vector(g, press_probe))


def test_collection_filter_survives_losing_the_index(
    two_collections: Path, press_probe: Path
) -> None:
    (two_collections / INDEX_FILE).unlink()
    with Gallery.open(two_collections) as g:  # rebuilt from SQL, tags included
        _tags_match_sql(g)
        _check_filters(g, _probe_vector(g, press_probe))


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf-sq8"])
def test_index_saved_before_groups_is_repaired_not_refused(
    two_collections: Path, press_probe: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = two_collections / INDEX_FILE
    with Gallery.open(two_collections) as g:
        if kind != "flat":  # HNSW as one graph: what it was before shards
            g.rebuild_index(kind, **({"shards": 1} if kind == "hnsw" else {}))
        with g.sessions() as s:
            ids, vectors = repo.vectors_for(s, repo.searchable_ids(s), 128)
    if kind == "flat":  # what the flat backend wrote before: a bare FAISS ID map
        old = faiss.IndexIDMap2(faiss.IndexFlatIP(128))
        old.add_with_ids(vectors, ids)
        path.unlink()
        faiss.write_index(old, str(path))
    else:  # the same bundle without its group parts
        meta = json.loads(path.read_text())
        meta["params"].pop("shards", None)
        for part in ("groups", "group_ids"):
            if part in meta["files"]:
                (path.parent / meta["files"].pop(part)).unlink()
        path.write_text(json.dumps(meta))
    with (
        caplog.at_level(logging.WARNING, logger="facetrace.gallery.directory"),
        Gallery.open(two_collections) as g,
    ):
        assert g.index.settings()["kind"] == kind  # repaired in place, not rebuilt
        assert f"{ids.size} retagged" in caplog.text
        _tags_match_sql(g)
        _check_filters(g, _probe_vector(g, press_probe))
    with Gallery.open(two_collections) as g:  # the repair was saved: nothing left to do
        assert g.reconcile() == {"added": 0, "removed": 0, "regrouped": 0}


def test_deleting_a_collection_empties_its_filter(two_collections: Path, press_probe: Path) -> None:
    with Gallery.open(two_collections) as g:
        vector = _probe_vector(g, press_probe)
        assert _found(g, vector, ["press"])
        assert g.delete_collection("press") == 2
        assert _found(g, vector, ["press"]) == []
        assert _found(g, vector, None)[0][0] != PRESS
        lfw = _found(g, vector, ["lfw"])
        assert lfw and all(c == "lfw" for _, c in lfw)

"""Gallery behaviour on real faces: ingest, search, verify, delete, consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.config import PipelineOptions
from facetrace.errors import DeletedPhoto, LowQualityFace, ModelMismatch, NoFaceFound, NotFound
from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.imaging import load_image
from facetrace.store.repo import PhotoRecord
from tests.galleries import DISTRACTORS, ENROLLED


def test_status_counts(gallery: Gallery) -> None:
    st = gallery.status()
    assert st["subjects"] == len(ENROLLED) + len(DISTRACTORS)
    assert st["photos"] == 2 * len(ENROLLED) + len(DISTRACTORS)
    assert st["faces"] >= st["photos"]
    assert st["indexed_faces"] == st["photos"]
    assert st["index"]["count"] == st["indexed_faces"]
    assert st["model"] == "dlib-resnet-v1+flip"


def test_reingest_adds_nothing(gallery: Gallery, mini_lfw: Path) -> None:
    before = gallery.status()
    summary = ingest(gallery, scan_folder(mini_lfw, collection="lfw"))
    assert summary.photos_added == 0
    assert summary.already_present == summary.total
    assert gallery.status()["faces"] == before["faces"]


@pytest.mark.parametrize("name", ENROLLED)
def test_search_finds_enrolled_subject_first(
    gallery: Gallery, probe_of: dict[str, Path], name: str
) -> None:
    results = gallery.search(load_image(probe_of[name]).pixels, k=5, force=True)
    assert len(results) >= 1
    top = results[0]
    assert top.candidates, f"{name}: no candidate above {top.threshold}"
    first = top.candidates[0]
    assert first.info.subject_external_id == name
    assert (first.info.provenance.collection, first.info.provenance.legal_basis) == ("lfw", "test")
    assert 0 < first.false_match_rate < 1e-3
    # candidates are distinct subjects in descending score order
    subjects = [c.info.subject_id for c in top.candidates]
    assert len(subjects) == len(set(subjects))
    scores = [c.score for c in top.candidates]
    assert scores == sorted(scores, reverse=True)


def test_search_from_a_server_thread_uses_the_search_thread_count(
    gallery: Gallery, probe_of: dict[str, Path]
) -> None:
    """The web server searches from its own worker threads, which OpenMP starts at one
    thread per core; the gallery gives each the configured count first."""
    import threading

    import faiss

    from facetrace.index import set_search_threads

    set_search_threads(1)
    pixels = load_image(probe_of[ENROLLED[0]]).pixels
    seen: dict[str, object] = {}

    def worker() -> None:
        seen["results"] = gallery.search(pixels, k=3, force=True)
        seen["threads"] = faiss.omp_get_max_threads()

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["threads"] == 1
    assert seen["results"]


def test_unenrolled_person_gets_no_candidate(gallery: Gallery, faces_dir: Path) -> None:
    photo = sorted((faces_dir / "lfw" / "images" / "Ari_Fleischer").glob("*.jpg"))[0]
    results = gallery.search(load_image(photo).pixels, force=True, include_below=True)
    assert results[0].no_candidate
    assert results[0].below_threshold, "the closest faces are still listed when asked"
    assert all(c.score < results[0].threshold for c in results[0].below_threshold)


def test_stricter_fpir_raises_threshold(gallery: Gallery) -> None:
    assert gallery.threshold(0.001) > gallery.threshold(0.1)


def test_collection_filter(gallery: Gallery, probe_of: dict[str, Path]) -> None:
    pixels = load_image(probe_of[ENROLLED[0]]).pixels
    assert gallery.search(pixels, force=True, collections=["lfw"])[0].candidates
    empty = gallery.search(pixels, force=True, collections=["other"], include_below=True)[0]
    assert empty.no_candidate and not empty.below_threshold


def test_no_face_raises(gallery: Gallery) -> None:
    grey = np.full((200, 200, 3), 128, dtype=np.uint8)
    with pytest.raises(NoFaceFound):
        gallery.search(grey)


def test_low_quality_probe_refused_unless_forced(
    gallery: Gallery, probe_of: dict[str, Path]
) -> None:
    pixels = load_image(probe_of[ENROLLED[1]]).pixels
    dark = (pixels.astype(np.float32) * 0.12).astype(np.uint8)
    with pytest.raises(LowQualityFace) as info:
        gallery.search(dark, min_quality=0.5)
    assert "too_dark" in info.value.reasons
    assert gallery.search(dark, min_quality=0.5, force=True)


def test_verify_photo_and_subject(gallery: Gallery, probe_of: dict[str, Path]) -> None:
    a = load_image(probe_of[ENROLLED[0]]).pixels
    same = gallery.verify(a, ENROLLED[0])
    other = gallery.verify(a, ENROLLED[1])
    assert same.same and not other.same
    assert same.score > other.score
    assert same.false_match_rate < other.false_match_rate
    with pytest.raises(NotFound):
        gallery.verify(a, "nobody-with-this-id")


def test_delete_subject_leaves_tombstone(
    gallery: Gallery, mini_lfw: Path, probe_of: dict[str, Path]
) -> None:
    name = ENROLLED[2]
    removed = gallery.delete_subject(name)
    assert removed == 2
    pixels = load_image(probe_of[name]).pixels
    hits = gallery.search(pixels, force=True, include_below=True)[0]
    assert all(c.info.subject_external_id != name for c in hits.candidates + hits.below_threshold)
    assert gallery.index.count == gallery.status()["indexed_faces"]
    summary = ingest(gallery, scan_folder(mini_lfw / ".." / mini_lfw.name))
    assert summary.photos_added == 0
    assert len(summary.skipped) == 2 and all("deleted" in r for _, r in summary.skipped)
    summary = ingest(gallery, scan_folder(mini_lfw), allow_deleted=True)
    assert summary.photos_added == 2


def test_delete_collection_and_photo(gallery: Gallery) -> None:
    sha = gallery.status()  # photos exist
    assert sha["photos"] > 0
    with gallery.session() as s:
        from sqlalchemy import select

        from facetrace.store.models import Photo

        first = s.scalars(select(Photo)).first()
        assert first is not None
        photo_sha = first.sha256
    assert gallery.delete_photo(photo_sha) >= 1
    with pytest.raises(NotFound):
        gallery.delete_photo(photo_sha)
    gallery.delete_collection("lfw")
    st = gallery.status()
    assert (st["photos"], st["faces"], st["subjects"], st["index"]["count"]) == (0, 0, 0, 0)
    assert st["tombstones"] == 2 * len(ENROLLED) + len(DISTRACTORS)


def test_index_repaired_from_sql(gallery_dir: Path) -> None:
    with Gallery.open(gallery_dir) as g:
        truth = sorted(g.index.ids().tolist())
        # an index "ahead" of SQL: a face id SQL does not know
        g.index.add(np.array([999_999]), np.ones((1, 128), dtype=np.float32) / np.sqrt(128))
        g.save_index()
    with Gallery.open(gallery_dir) as g:
        assert sorted(g.index.ids().tolist()) == truth
    (gallery_dir / "index.faiss").unlink()  # an index lost entirely
    with Gallery.open(gallery_dir) as g:
        assert sorted(g.index.ids().tolist()) == truth
    (gallery_dir / "index.faiss").write_bytes(b"garbage")  # a corrupt one
    with Gallery.open(gallery_dir) as g:
        assert sorted(g.index.ids().tolist()) == truth


def test_gallery_refuses_another_model(gallery_dir: Path) -> None:
    with pytest.raises(ModelMismatch):
        Gallery.open(gallery_dir, pipeline=PipelineOptions(model="/tmp/other-model.onnx"))


def test_add_photo_refuses_foreign_vectors(gallery: Gallery, probe_of: dict[str, Path]) -> None:
    face = gallery.pipeline.analyse(load_image(probe_of[ENROLLED[0]]).pixels)[0]
    from dataclasses import replace

    alien = replace(face, model_id="arcface:w600k_r50")
    with pytest.raises(ModelMismatch):
        gallery.add_photo(
            sha256="0" * 64,
            width=10,
            height=10,
            faces=[alien],
            subject_face=0,
            record=PhotoRecord(subject_id="x"),
        )
    assert gallery.status()["photos"] == 2 * len(ENROLLED) + len(DISTRACTORS)


def test_deleted_photo_refused_by_add_photo(gallery: Gallery) -> None:
    with gallery.session() as s:
        from sqlalchemy import select

        from facetrace.store.models import Photo

        photo = s.scalars(select(Photo)).first()
        assert photo is not None
        sha = photo.sha256
    gallery.delete_photo(sha)
    with pytest.raises(DeletedPhoto):
        gallery.add_photo(
            sha256=sha,
            width=1,
            height=1,
            faces=[],
            subject_face=None,
            record=PhotoRecord(subject_id="x"),
        )


def test_delete_survives_a_crash_before_the_index_is_saved(gallery_dir: Path) -> None:
    g = Gallery.open(gallery_dir)
    before = set(g.index.ids().tolist())
    assert g.delete_subject(ENROLLED[4]) == 2
    doomed = before - set(g.index.ids().tolist())
    assert len(doomed) == 2
    # no close(): the process "dies" with the index file still holding the faces
    with Gallery.open(gallery_dir) as again:
        ids = set(again.index.ids().tolist())
        assert again.index.count == again.status()["indexed_faces"]
        with again.session() as s:
            from sqlalchemy import select

            from facetrace.store.models import FaceRow

            live = set(s.scalars(select(FaceRow.id).where(FaceRow.is_subject.is_(True))))
        assert ids == live
    assert not doomed & ids
    g.engine.dispose()

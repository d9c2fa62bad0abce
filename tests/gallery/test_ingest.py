"""Manifests, folders, bad input, and resuming after kill -9."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facetrace.errors import ManifestError
from facetrace.gallery.directory import Gallery
from facetrace.gallery.ingest import ingest, read_manifest, scan_folder
from facetrace.imaging import load_image
from facetrace.types import Provenance


def _counts(g: Gallery) -> tuple[int, int, int]:
    st = g.status()
    return st["photos"], st["faces"], st["index"]["count"]


def test_csv_manifest_records_provenance(tmp_path: Path, faces_dir: Path) -> None:
    photo = faces_dir / "webphotos13" / "identities" / "id01" / "img1.jpg"
    manifest = tmp_path / "m.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        header = "path subject_id subject_name source_url source_title collection"
        w.writerow([*header.split(), "captured_date", "legal_basis", "metadata"])
        first = [str(photo), "P-1", "Person One", "https://records.example/1", "Record 1"]
        w.writerow([*first, "missing-2022", "2021-05-01", "Art. 6(1)(e) GDPR", '{"case": "A7"}'])
    with Gallery.open(tmp_path / "data") as g:
        summary = ingest(g, read_manifest(manifest))
        assert summary.photos_added == 1
        from facetrace.imaging import load_image

        hit = g.search(load_image(photo).pixels, force=True)[0].candidates[0].info
    assert hit.subject_external_id == "P-1"
    assert hit.subject_name == "Person One"
    assert hit.provenance == Provenance(
        collection="missing-2022",
        legal_basis="Art. 6(1)(e) GDPR",
        source_url="https://records.example/1",
        source_title="Record 1",
        captured_date="2021-05-01",
    )


def test_jsonl_manifest_box_picks_the_subject_face(tmp_path: Path, faces_dir: Path) -> None:
    group = faces_dir / "webphotos13" / "multi_face" / "selfie-many-people.jpg"
    with Gallery.open(tmp_path / "data") as g:
        faces = g.pipeline.analyse(load_image(group).pixels)
        assert len(faces) >= 3
        target = faces[2].detection.box  # not the largest
        manifest = tmp_path / "m.jsonl"
        manifest.write_text(
            json.dumps({"path": str(group), "subject_id": "S", "box": target.as_list()}) + "\n"
        )
        ingest(g, read_manifest(manifest))
        with g.session() as s:
            from sqlalchemy import select

            from facetrace.store.models import FaceRow

            rows = s.scalars(select(FaceRow).order_by(FaceRow.face_index)).all()
        assert len(rows) == len(faces), "every face of the photo is stored"
        chosen = [r for r in rows if r.is_subject]
        assert len(chosen) == 1
        assert [chosen[0].x1, chosen[0].y1, chosen[0].x2, chosen[0].y2] == target.as_list()


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.jsonl", '{"path": "x.jpg", "subject_id": "1"}\n{not json\n', "a.jsonl:2"),
        ("b.jsonl", '{"path": "x.jpg"}\n', "subject_id"),
        ("c.csv", "path,subject_id\nx.jpg,1,extra\n", "c.csv:2"),
        ("d.csv", "file,who\nx.jpg,1\n", "header"),
        ("e.jsonl", '{"path": "x.jpg", "subject_id": "1", "box": "1,2"}\n', "box"),
        ("f.jsonl", '{"path": "x.jpg", "subject_id": "1", "colour": "red"}\n', "unknown"),
        ("g.txt", "x.jpg\n", ".csv"),
        ("h.csv", "", "header"),
    ],
)
def test_malformed_manifest_changes_nothing(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    manifest = tmp_path / name
    manifest.write_text(text)
    with pytest.raises(ManifestError, match=message.replace(".", r"\.")):
        read_manifest(manifest)


def test_bad_files_are_skipped_and_reported(tmp_path: Path, faces_dir: Path) -> None:
    root = tmp_path / "photos" / "subject"
    root.mkdir(parents=True)
    good = faces_dir / "lfw" / "images" / "Abdoulaye_Wade" / "Abdoulaye_Wade_0001.jpg"
    shutil.copy(good, root / "good.jpg")
    (root / "empty.jpg").write_bytes(b"")
    (root / "text.jpg").write_text("not an image")
    (root / "half.jpg").write_bytes(good.read_bytes()[:2000])
    from PIL import Image

    Image.new("RGB", (300, 300), (90, 90, 90)).save(root / "noface.png")
    report = tmp_path / "report.csv"
    with Gallery.open(tmp_path / "data") as g:
        summary = ingest(g, scan_folder(tmp_path / "photos"), report_path=report)
        assert summary.photos_added == 1
        assert len(summary.skipped) == 4
        assert _counts(g)[0] == 1
    rows = list(csv.DictReader(report.open()))
    reasons = {Path(r["path"]).name: r["reason"] for r in rows}
    assert set(reasons) == {"empty.jpg", "text.jpg", "half.jpg", "noface.png"}
    assert reasons["noface.png"] == "no face found"
    assert all("ImageError" in reasons[n] for n in ("empty.jpg", "text.jpg", "half.jpg"))


def test_parallel_ingest_equals_serial(tmp_path: Path, mini_lfw: Path) -> None:
    with Gallery.open(tmp_path / "a") as a:
        ingest(a, scan_folder(mini_lfw), workers=1)
        serial = _counts(a)
    with Gallery.open(tmp_path / "b") as b:
        ingest(b, scan_folder(mini_lfw), workers=2)
        assert _counts(b) == serial


KILL_SCRIPT = """
import sys
from pathlib import Path
from facetrace.gallery.directory import Gallery
from facetrace.imaging import load_image
from facetrace.gallery.ingest import ingest, scan_folder
with Gallery.open(Path(sys.argv[1])) as g:
    ingest(g, scan_folder(Path(sys.argv[2])), workers=1,
           progress=lambda d, t, s: print(d, flush=True))
"""


@pytest.mark.parametrize("kill_after", [3, 9])
def test_kill_9_then_resume_matches_a_clean_run(
    tmp_path: Path, mini_lfw: Path, built_gallery: Path, kill_after: int
) -> None:
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(data), str(mini_lfw)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        if int(line) >= kill_after or time.monotonic() > deadline:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Gallery.open(data) as g:
        partial = _counts(g)
        assert partial[0] < 13, "the kill came before the end"
        ingest(g, scan_folder(mini_lfw))
        resumed = _counts(g)
    with Gallery.open(built_gallery) as clean:
        assert resumed == _counts(clean)


def test_a_batch_stores_each_photo_with_its_own_subject_collection_and_faces(
    tmp_path: Path,
) -> None:
    """add_photos writes a batch in multi-row INSERTs: every photo still gets its own
    subject (looked up once per batch, the same external id in two collections being two
    subjects), its faces in order, and only its subject face indexed."""
    import hashlib

    import numpy as np
    from sqlalchemy import select

    from facetrace.gallery.directory import NewPhoto
    from facetrace.store.models import FaceRow, Photo, Subject
    from facetrace.store.repo import PhotoRecord
    from tests.gallery.crash_worker import fake_face

    rng = np.random.default_rng(7)
    with Gallery.open(tmp_path / "data") as g:
        model = g.descriptor.model_id

        def photo(tag: str, prov: PhotoRecord, n_faces: int, subject: int | None) -> NewPhoto:
            faces = tuple(fake_face(rng, model) for _ in range(n_faces))
            sha = hashlib.sha256(tag.encode()).hexdigest()
            return NewPhoto(sha, 100, 100, faces, subject, prov)

        batch = [
            photo("a", PhotoRecord("P1", provenance=Provenance("c1")), 2, 1),
            photo("b", PhotoRecord("P1", "Ann", provenance=Provenance("c1")), 1, 0),
            photo("c", PhotoRecord("P1", provenance=Provenance("c2", legal_basis="L2")), 3, None),
            photo("a", PhotoRecord("P9", provenance=Provenance("c1")), 1, 0),  # same bytes as a
        ]
        results = g.add_photos(batch)
        assert [r.duplicate for r in results] == [False, False, False, True]
        assert [len(r.face_ids) for r in results] == [2, 1, 3, 0]
        with g.reads() as s:
            subjects = {
                (sub.collection.name, sub.external_id): sub for sub in s.scalars(select(Subject))
            }
            assert sorted(subjects) == [("c1", "P1"), ("c2", "P1")]
            assert subjects[("c1", "P1")].name == "P1"  # created from the first photo
            for r, p in zip(results[:3], batch[:3], strict=True):
                row = s.get(Photo, r.photo_id)
                assert row is not None and row.sha256 == p.sha256
                assert row.subject_id == subjects[(p.record.provenance.collection, "P1")].id
                faces = [s.get(FaceRow, i) for i in r.face_ids]
                assert [f.face_index for f in faces if f] == list(range(len(p.faces)))
                assert [f.is_subject for f in faces if f] == [
                    i == p.subject_face for i in range(len(p.faces))
                ]
                for f, face in zip(faces, p.faces, strict=True):
                    assert f is not None and f.photo_id == r.photo_id
                    assert np.frombuffer(f.vector, dtype=np.float32).tolist() == (
                        face.vector.tolist()
                    )
            assert s.get(Photo, results[2].photo_id).legal_basis == "L2"  # type: ignore[union-attr]
        assert g.index.count == 2  # the subject faces of a and b; c names none
        # a later batch finds the stored subject instead of making another
        later = g.add_photos([photo("d", PhotoRecord("P1", provenance=Provenance("c1")), 1, 0)])
        with g.reads() as s:
            row = s.get(Photo, later[0].photo_id)
            assert row is not None and row.subject_id == subjects[("c1", "P1")].id
            assert len(s.scalars(select(Subject)).all()) == 2


def test_pool_ingest_stores_the_faces_and_vectors_of_the_in_process_pipeline(
    tmp_path: Path, faces_dir: Path
) -> None:
    """The pool's workers (one ONNX Runtime thread per model, the batch written in
    multi-row INSERTs) store the same boxes and, within float tolerance, the same
    mirrored-chip vectors as the pipeline run here with its default threads, on LFW
    photos that take each of the auto detector's paths: HOG alone, HOG with CNN crops
    round a near miss, the CNN over the whole photo after two HOG faces, and after none."""
    import numpy as np
    from sqlalchemy import select

    from facetrace.config import PipelineOptions
    from facetrace.engine import FacePipeline
    from facetrace.store.models import FaceRow, Photo

    lfw = faces_dir / "lfw" / "images"
    names = [
        "Aaron_Sorkin/Aaron_Sorkin_0001.jpg",
        "Abdullah_Gul/Abdullah_Gul_0011.jpg",
        "Abdullah_Gul/Abdullah_Gul_0008.jpg",
        "Abdoulaye_Wade/Abdoulaye_Wade_0003.jpg",
    ]
    src = tmp_path / "photos"
    for name in names:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).symlink_to(lfw / name)
    cache = tmp_path / "data" / "models"
    here = FacePipeline(PipelineOptions(cache_dir=cache))
    expected = {}
    for name in names:
        faces = here.analyse(load_image(lfw / name).pixels)
        expected[name.split("/")[1]] = faces
    assert [len(f) for f in expected.values()] == [1, 2, 3, 1]  # each path found its faces
    with Gallery.open(tmp_path / "data") as g:
        summary = ingest(g, scan_folder(src), workers=2)
        assert summary.photos_added == 4
        with g.reads() as s:
            for photo in s.scalars(select(Photo)):
                rows = s.scalars(
                    select(FaceRow).where(FaceRow.photo_id == photo.id).order_by(FaceRow.face_index)
                ).all()
                want = expected[Path(photo.path).name]
                assert [(r.x1, r.y1, r.x2, r.y2) for r in rows] == [
                    (f.detection.box.x1, f.detection.box.y1, f.detection.box.x2, f.detection.box.y2)
                    for f in want
                ]
                for r, f in zip(rows, want, strict=True):
                    got = np.frombuffer(r.vector, dtype=np.float32)
                    assert np.allclose(got, f.vector, atol=1e-5)


def test_an_ingest_worker_gets_the_photo_and_imports_no_sql(
    tmp_path: Path, faces_dir: Path
) -> None:
    """A pool worker is sent only each photo's path and box (its record stays with the
    parent) and what it runs imports neither SQLAlchemy nor the store: half a second
    less of start-up in every worker."""
    from facetrace.config import PipelineOptions
    from facetrace.gallery.photo import Analysed, PhotoJob
    from facetrace.imaging import ImageLimits
    from facetrace.pool import map_photos
    from tests.gallery.sql_probe import analyse_and_report

    photo = faces_dir / "lfw" / "images" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    got = list(
        map_photos(
            analyse_and_report,
            [PhotoJob(photo)] * 4,
            options=PipelineOptions(cache_dir=tmp_path),
            limits=ImageLimits(),
            workers=2,
        )
    )
    assert all(isinstance(r, Analysed) and len(r.faces) == 1 for r, _ in got)
    assert [sql for _, sql in got] == [[]] * 4

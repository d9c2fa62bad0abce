"""Subject templates in the gallery: written with the faces (ingest, delete), repaired
from SQL on open, searched with collection filters, on real LFW photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import delete, select, update

from facetrace.gallery.directory import TEMPLATES_CHECKED_KEY, Gallery
from facetrace.gallery.ingest import ingest, scan_folder
from facetrace.scoring.templates import subject_template
from facetrace.store import repo
from facetrace.store.models import FaceRow, GalleryMeta, SubjectTemplate
from tests.galleries import DISTRACTORS, ENROLLED, subject_id


def _templates(g: Gallery) -> dict[int, list[SubjectTemplate]]:
    """SQL's templates by subject id."""
    out: dict[int, list[SubjectTemplate]] = {}
    with g.session() as s:
        for t in s.scalars(select(SubjectTemplate).order_by(SubjectTemplate.id)):
            out.setdefault(t.subject_id, []).append(t)
    return out


def _faces(g: Gallery, sid: int) -> tuple[list[int], np.ndarray, list[float]]:
    with g.session() as s:
        rows = list(
            s.scalars(
                select(FaceRow)
                .where(FaceRow.subject_id == sid, FaceRow.is_subject.is_(True))
                .order_by(FaceRow.id)
            )
        )
    vecs = np.stack([np.frombuffer(r.vector, dtype=np.float32) for r in rows])
    return [r.id for r in rows], vecs, [r.quality for r in rows]


def _sid(g: Gallery, name: str) -> int:
    with g.session() as s:
        return subject_id(s, name)


def test_ingest_keeps_the_template_of_every_subject_with_several_faces(gallery: Gallery) -> None:
    held = _templates(gallery)
    for name in ENROLLED:  # two photos each: one template of both faces
        sid = _sid(gallery, name)
        ids, vecs, quality = _faces(gallery, sid)
        assert len(ids) == 2 and sid in held, name
        (t,) = held[sid]
        assert t.face_ids == ids and t.n_faces == 2
        want = subject_template(vecs, quality, max_centroids=1)[0]
        np.testing.assert_allclose(np.frombuffer(t.vector, dtype=np.float32), want, atol=1e-6)
    for name in DISTRACTORS:  # one photo: its face is its own template
        assert _sid(gallery, name) not in held
    # the in-memory template index holds exactly SQL's templates
    assert gallery.templates.count == sum(len(v) for v in held.values()) == len(ENROLLED)


def test_a_new_photo_and_a_delete_rewrite_the_subjects_template(
    gallery: Gallery, probe_of: dict[str, Path], tmp_path: Path
) -> None:
    name = ENROLLED[0]
    sid = _sid(gallery, name)
    (tmp_path / "more" / name).mkdir(parents=True)
    shutil.copy(probe_of[name], tmp_path / "more" / name / "third.jpg")
    summary = ingest(gallery, scan_folder(tmp_path / "more", collection="lfw"))
    assert summary.photos_added == 1
    ids, vecs, quality = _faces(gallery, sid)
    (t,) = _templates(gallery)[sid]
    assert len(ids) == 3 and t.face_ids == ids
    np.testing.assert_allclose(
        np.frombuffer(t.vector, dtype=np.float32),
        subject_template(vecs, quality, max_centroids=1)[0],
        atol=1e-6,
    )
    # searching the third photo's vector finds the template of three faces
    hit = gallery.templates.search(vecs[2:3], 1, None)[0][0]
    assert hit.subject_id == sid and hit.n_faces == 3

    gallery.delete_photo(_photo_of(gallery, ids[0]))
    (t,) = _templates(gallery)[sid]
    assert t.face_ids == ids[1:]  # the deleted face is in no template
    gallery.delete_photo(_photo_of(gallery, ids[1]))
    assert sid not in _templates(gallery)  # one face left: no template
    gallery.delete_subject(ENROLLED[1], collection="lfw")
    assert _sid_or_none(gallery, ENROLLED[1]) is None
    assert gallery.templates.count == len(_flat(_templates(gallery))) == len(ENROLLED) - 2
    # no template the index returns averages a face SQL no longer holds
    with gallery.session() as s:
        alive = set(repo.searchable_ids(s).tolist())
    probe = vecs[1:2]
    for hit in gallery.templates.search(probe, 10, None)[0]:
        assert set(hit.face_ids) <= alive


def _photo_of(g: Gallery, face_id: int) -> str:
    with g.session() as s:
        return str(s.scalars(select(FaceRow.photo_id).where(FaceRow.id == face_id)).one())


def _sid_or_none(g: Gallery, name: str) -> int | None:
    try:
        return _sid(g, name)
    except Exception:
        return None


def _flat(held: dict[int, list[SubjectTemplate]]) -> list[SubjectTemplate]:
    return [t for ts in held.values() for t in ts]


def test_the_repair_on_open_rebuilds_templates_sql_lost_or_got_wrong(gallery_dir: Path) -> None:
    with Gallery.open(gallery_dir) as g:
        before = {sid: (ts[0].face_ids, ts[0].vector) for sid, ts in _templates(g).items()}
        wade, sandler = _sid(g, ENROLLED[0]), _sid(g, ENROLLED[1])
        with g.sessions.begin() as s:  # as a version without templates would leave it
            s.execute(delete(GalleryMeta).where(GalleryMeta.key == TEMPLATES_CHECKED_KEY))
            s.execute(delete(SubjectTemplate).where(SubjectTemplate.subject_id == wade))
            s.execute(
                update(SubjectTemplate)
                .where(SubjectTemplate.subject_id == sandler)
                .values(face_ids=[1, 2], vector=np.zeros(128, np.float32).tobytes())
            )
    with Gallery.open(gallery_dir) as g:
        assert g.last_repair["templates"]["subjects"] == 2
        after = {sid: (ts[0].face_ids, ts[0].vector) for sid, ts in _templates(g).items()}
        assert after == before
        assert g.templates.count == len(before)
        # and nothing more to do on the next open
    with Gallery.open(gallery_dir) as g:
        assert g.last_repair["templates"]["subjects"] == 0


def test_a_subject_is_found_by_its_template_where_no_single_face_reaches_the_threshold(
    gallery: Gallery, faces_dir: Path, tmp_path: Path
) -> None:
    """Anna Kournikova's first three LFW photos enrolled: her sixth photo scores below the
    gallery's threshold against each of them, and above it (on the single-face scale, by
    the template tables) against their template. The search names her, says the
    template matched, and shows her best-matching reference photo."""
    from facetrace.imaging import load_image

    name = "Anna_Kournikova"
    photos = sorted((faces_dir / "lfw" / "images" / name).glob("*.jpg"))
    (tmp_path / "anna" / name).mkdir(parents=True)
    for p in photos[:3]:
        shutil.copy(p, tmp_path / "anna" / name / p.name)
    assert ingest(gallery, scan_folder(tmp_path / "anna", collection="lfw")).photos_added == 3
    probe = load_image(photos[5]).pixels

    (faces_only,) = gallery.search(probe, include_below=True, templates=False)
    assert all(c.info.subject_external_id != name for c in faces_only.candidates)
    anna = next(c for c in faces_only.below_threshold if c.info.subject_external_id == name)
    assert anna.template is None and anna.score < faces_only.threshold

    (result,) = gallery.search(probe, include_below=True)
    best = result.candidates[0]
    assert best.info.subject_external_id == name and best.rank == 1
    assert best.matched_by == "template" and best.template is not None
    assert best.template.n_faces == 3 and best.score >= result.threshold
    # the score shown is the template's on the single-face scale: its FMR is the template
    # table's, not the face table's for the raw (higher) cosine
    tables = gallery.template_calibration()
    cal = gallery.calibration()
    assert tables is not None and cal is not None
    assert best.false_match_rate == pytest.approx(
        tables.false_match_rate(best.template.cosine, 3), rel=1e-2
    )
    assert best.false_match_rate > cal.false_match_rate(best.template.cosine)
    # provenance: one of her enrolled photos, the one scoring best alone
    assert Path(best.info.photo_path).name in {p.name for p in photos[:3]}
    assert best.info.face_id == anna.info.face_id
    assert best.as_dict()["matched_by"] == "template"

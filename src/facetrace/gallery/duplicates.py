"""Possible duplicate subjects: records of the gallery that probably show one person.

One pass: the neighbour graph of every indexed face, built with the gallery's own
index (FAISS or Milvus) and cut at the calibrated threshold; the faces of each subject
are must-linked (one record, one person) and every "different people" decision is a
cannot-link, so a pass never proposes a pair a reviewer has ruled out; average linkage
then groups subjects whose faces score high on average. Every pair of subjects in one
group is proposed with its evidence. Nothing is merged here: merging is a reviewed
action of the service (:mod:`facetrace.service.duplicates`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from sqlalchemy import select

from facetrace.grouping.cluster import Algorithm, cluster
from facetrace.grouping.constraints import Constraints
from facetrace.grouping.graph import DEFAULT_K, edge_threshold, knn_graph
from facetrace.index.base import Selector
from facetrace.store import duplicates as links
from facetrace.store import repo
from facetrace.store.models import FaceRow

if TYPE_CHECKING:
    from facetrace.gallery.directory import Gallery

log = logging.getLogger(__name__)

#: Target false-match rate of a face pair for proposing duplicates. Looser than
#: ``facetrace group``'s: a person reviews every proposal, and a missed duplicate keeps
#: splitting that person's photos.
DEFAULT_FMR = 1e-4

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class DuplicatePair:
    """Two subjects that probably show one person, and why.

    ``score`` is the mean cosine score over every pair of their faces (the linkage that
    grouped them), ``false_match_rate`` its estimated FMR in the calibration table;
    ``best_score`` the best single pair, shown side by side (``face_a``/``photo_a``
    of subject ``a``, ``face_b``/``photo_b`` of ``b``); ``face_pairs`` how many of their
    face pairs reach the threshold, of ``pairs``. ``group`` numbers the set of subjects
    the pass put together (a group of three subjects gives three pairs).
    """

    group: int
    a: links.SubjectRef
    b: links.SubjectRef
    score: float
    false_match_rate: float | None
    best_score: float
    face_a: int
    photo_a: int
    face_b: int
    photo_b: int
    face_pairs: int
    pairs: int

    @property
    def across_collections(self) -> bool:
        return self.a.collection_id != self.b.collection_id

    def as_dict(self) -> dict[str, object]:
        """JSON form, for ``facetrace duplicates --json`` and the API."""

        def ref(r: links.SubjectRef, face: int, photo: int) -> dict[str, object]:
            return {
                "id": r.id,
                "external_id": r.external_id,
                "name": r.name,
                "collection": r.collection,
                "face_id": face,
                "photo_id": photo,
            }

        return {
            "group": self.group,
            "a": ref(self.a, self.face_a, self.photo_a),
            "b": ref(self.b, self.face_b, self.photo_b),
            "score": round(self.score, 4),
            "false_match_rate": self.false_match_rate,
            "best_score": round(self.best_score, 4),
            "face_pairs": self.face_pairs,
            "pairs": self.pairs,
            "across_collections": self.across_collections,
        }


@dataclass(frozen=True, slots=True)
class _Faces:
    ids: npt.NDArray[np.int64]
    subjects: npt.NDArray[np.int64]
    photos: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]


def _faces(gallery: Gallery, collections: frozenset[int] | None) -> _Faces:
    """Every indexed face (of a subject) in ``collections`` (None: all), by face id."""
    stmt = select(FaceRow.id, FaceRow.subject_id, FaceRow.photo_id).where(
        FaceRow.is_subject.is_(True), FaceRow.subject_id.is_not(None)
    )
    if collections is not None:
        stmt = stmt.where(FaceRow.collection_id.in_(sorted(collections)))
    with gallery.session() as s:
        rows = np.asarray(s.execute(stmt.order_by(FaceRow.id)).all(), dtype=np.int64)
        rows = rows.reshape(-1, 3)
        found_ids, vectors = repo.vectors_for(s, rows[:, 0], gallery.descriptor.dim)
    order = np.argsort(found_ids)
    at = np.searchsorted(rows[:, 0], found_ids[order])
    return _Faces(rows[at, 0], rows[at, 1], rows[at, 2], vectors[order])


def find_duplicates(
    gallery: Gallery,
    *,
    collections: frozenset[int] | None = None,
    fmr: float = DEFAULT_FMR,
    k: int = DEFAULT_K,
    progress: Progress | None = None,
) -> list[DuplicatePair]:
    """Every pair of subjects that probably show one person, best first.

    Args:
        gallery: the gallery (its index answers the neighbour searches).
        collections: SQL ids of the collections the caller may read; pairs involving
            any other collection are never formed (its faces are not even searched).
            ``None``: every collection.
        fmr: target false-match rate of a face pair (sets the score threshold).
        k: neighbours asked per face.
        progress: called with (faces searched, faces).
    """
    cal = gallery.calibration()
    threshold = edge_threshold(cal, fmr, fallback=gallery.descriptor.verify_threshold)
    faces = _faces(gallery, collections)
    n = faces.ids.size
    if n < 2:
        return []
    selector = None if collections is None else Selector(groups=collections)
    graph = knn_graph(
        gallery.index,
        faces.vectors,
        ids=faces.ids,
        min_score=threshold,
        k=k,
        selector=selector,
        progress=progress,
    )
    # one record, one person: chain each subject's faces together
    order = np.lexsort((faces.ids, faces.subjects))
    same = faces.subjects[order][1:] == faces.subjects[order][:-1]
    must = np.stack([order[:-1][same], order[1:][same]], axis=1)
    first_face: dict[int, int] = {}
    for row, subject in enumerate(faces.subjects.tolist()):
        first_face.setdefault(subject, row)
    with gallery.session() as s:
        decided = links.different_pairs(s)
    cannot = [
        (first_face[a], first_face[b]) for a, b in decided if a in first_face and b in first_face
    ]
    labels = cluster(
        graph,
        Algorithm.AVERAGE,
        threshold=threshold,
        vectors=faces.vectors,
        constraints=Constraints.of(must, cannot),
    )
    pairs = _pairs(gallery, faces, labels, threshold, cal)
    log.info("duplicates: %d faces, %d pairs proposed at %.4f", n, len(pairs), threshold)
    return pairs


def _pairs(
    gallery: Gallery,
    faces: _Faces,
    labels: npt.NDArray[np.int64],
    threshold: float,
    cal: object,
) -> list[DuplicatePair]:
    """The proposals of every group holding two or more subjects."""
    subject_label: dict[int, int] = {}
    for subject, label in zip(faces.subjects.tolist(), labels.tolist(), strict=True):
        subject_label[subject] = label
    by_label: dict[int, list[int]] = {}
    for subject, label in subject_label.items():
        by_label.setdefault(label, []).append(subject)
    groups = [sorted(m) for m in by_label.values() if len(m) >= 2]
    if not groups:
        return []
    with gallery.session() as s:
        refs = links.subject_refs(s, {sid for g in groups for sid in g})
    rows_of: dict[int, npt.NDArray[np.int64]] = {}
    for subject in {sid for g in groups for sid in g}:
        rows_of[subject] = np.flatnonzero(faces.subjects == subject)
    fmr_of = getattr(cal, "false_match_rate", None)
    out: list[DuplicatePair] = []
    for number, members in enumerate(groups, start=1):
        for a, b in combinations(members, 2):
            ra, rb = rows_of[a], rows_of[b]
            scores = faces.vectors[ra] @ faces.vectors[rb].T
            i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
            mean = float(scores.mean())
            out.append(
                DuplicatePair(
                    group=number,
                    a=refs[a],
                    b=refs[b],
                    score=mean,
                    false_match_rate=float(fmr_of(mean)) if fmr_of else None,
                    best_score=float(scores[i, j]),
                    face_a=int(faces.ids[ra[i]]),
                    photo_a=int(faces.photos[ra[i]]),
                    face_b=int(faces.ids[rb[j]]),
                    photo_b=int(faces.photos[rb[j]]),
                    face_pairs=int((scores >= threshold).sum()),
                    pairs=int(scores.size),
                )
            )
    out.sort(key=lambda p: (-p.score, p.a.id, p.b.id))
    return out

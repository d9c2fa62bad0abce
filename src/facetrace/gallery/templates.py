"""Subject templates in the gallery: kept in SQL with the faces, searched from memory.

A subject with several reference faces is also searched as a *template*, the
quality-weighted mean of its faces' vectors (:func:`facetrace.scoring.templates.subject_template`):
the photos' noise averages out, so a mate scores higher against it than against any one
photo (BENCHMARKS.md, "Subject templates").

Design, and why:

* **SQL holds the templates** (``subject_template`` rows), written in the same
  transaction as the change of faces that makes them stale: an import batch
  (:meth:`Gallery.add_photos`), a delete (:meth:`Gallery.remove_rows`), a merge of
  duplicates and its undo (``service/duplicates``). A crash at any moment (kill -9 in the
  middle of a batch) therefore leaves SQL's templates exactly in step with SQL's faces:
  both committed or neither. Rows are replaced, never updated, with ids never reused.
* **One template per subject and collection** (a *part*): a face's collection is its
  group in every index, and a template carries the group of the faces it averages. So a
  search restricted to some collections (a department's scope, ``--collection``) sees
  only templates made of faces it may read; a subject merged across two collections has
  one template per collection, never one mixing faces a reader of one collection may not
  see. A part needs :data:`MIN_FACES` faces (one face's template is the face itself).
* **The template index lives in memory** (exact FAISS, groups as tags), built from SQL's
  rows when the gallery opens and caught up from SQL before a search whenever SQL's
  (highest id, count) of templates changed, by comparing ids. It is never saved, so it
  can never be behind SQL after a crash, whatever the face index's backend (flat, HNSW,
  IVF, Milvus), and changes another process made in SQL (the service's merge) reach it
  without a message. Templates are at most a few per subject, far fewer than faces; at
  10M subjects this index (about 5 GB of vectors) would want its own Milvus collection.
* **Repair on open** compares, per part, SQL's faces (count and sum of ids: one grouped
  query over every face) with what its templates cover, and recomputes the parts that
  differ (a gallery upgraded from before templates, or written by a version that did not
  keep them). It runs once per gallery, recorded in ``gallery_meta``
  (``Gallery.repair_templates``): every write since keeps the two in step.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sqlalchemy.orm import Session

from facetrace.index.base import Selector
from facetrace.index.flat import FlatIndex
from facetrace.rwlock import RWLock
from facetrace.scoring.templates import subject_template
from facetrace.store import templates as rows

log = logging.getLogger(__name__)

MIN_FACES = 2  # a part's faces needed for a template
#: sub-centroids per part when its faces are spread (1: always one mean). One: on LFW
#: (3 photos enrolled) up to 3 sub-centroids gave exactly the figures of one mean at a
#: higher cost (BENCHMARKS.md, "Subject templates in the gallery's search"); galleries
#: spanning decades may differ. Read at each build, so a benchmark can compare them.
CENTROIDS = 1


@dataclass(frozen=True, slots=True)
class TemplateHit:
    """A template found for a probe: its subject, score and the faces it averages."""

    template_id: int
    subject_id: int
    group: int
    score: float
    n_faces: int
    face_ids: tuple[int, ...]


def build(part: rows.PartFaces, *, max_centroids: int | None = None) -> list[rows.NewTemplate]:
    """The template rows of one part: one per sub-centroid of at least two faces (at most
    ``max_centroids``, default :data:`CENTROIDS`)."""
    if part.face_ids.size < MIN_FACES:
        return []
    most = CENTROIDS if max_centroids is None else max_centroids
    cents = subject_template(part.vectors, part.quality, max_centroids=most)
    owner = np.argmax(part.vectors @ cents.T, axis=1) if cents.shape[0] > 1 else None
    out = []
    for c in range(cents.shape[0]):
        members = part.face_ids if owner is None else part.face_ids[owner == c]
        if members.size < MIN_FACES:
            continue  # a centroid of one face is that face, already in the face index
        out.append(
            rows.NewTemplate(
                subject_id=part.subject_id,
                collection_id=part.collection_id,
                centroid=c,
                face_ids=tuple(int(i) for i in members),
                vector=cents[c],
            )
        )
    return out


def refresh(session: Session, subject_ids: Iterable[int]) -> int:
    """Recompute the templates of ``subject_ids`` from their faces now in ``session``
    (call it in the transaction that changed them); returns the templates written."""
    wanted = {int(s) for s in subject_ids}
    if not wanted:
        return 0
    new = [t for part in rows.part_faces(session, wanted) for t in build(part)]
    rows.replace_templates(session, subject_ids=wanted, rows=new)
    return len(new)


def stale_subjects(session: Session) -> set[int]:
    """Subjects whose templates do not cover exactly their faces (per part)."""
    want = rows.face_parts(session, min_faces=MIN_FACES)
    have = rows.template_parts(session)
    stale = {s for (s, c), v in want.items() if have.get((s, c)) != v}
    # a template whose faces now cover less than MIN_FACES, or a gone subject
    stale |= {s for (s, c) in have if (s, c) not in want}
    return stale


def repair(session: Session) -> dict[str, int]:
    """Recompute the templates of every subject they are out of step with."""
    stale = stale_subjects(session)
    written = refresh(session, stale) if stale else 0
    if stale:
        log.warning(
            "subject templates repaired from SQL: %d subjects, %d templates", len(stale), written
        )
    return {"subjects": len(stale), "templates": written}


class TemplateIndex:
    """The gallery's templates in memory: exact inner-product search with group tags."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = FlatIndex(dim)
        self._rows: dict[
            int, tuple[int, int, int, tuple[int, ...]]
        ] = {}  # subject, group, n, faces
        self._signature: tuple[int, int] | None = None
        self._rw = RWLock()
        self._sync = threading.Lock()

    @property
    def count(self) -> int:
        """Templates held."""
        return len(self._rows)

    def sync(self, session: Session) -> dict[str, int]:
        """Catch up with SQL's templates (read in ``session``): nothing to read when SQL's
        (highest id, count) is what was loaded; otherwise the ids are compared."""
        with self._sync:
            sig = rows.signature(session)
            if sig == self._signature:
                return {"added": 0, "removed": 0}
            truth = rows.template_ids(session)
            have = np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))
            gone = np.setdiff1d(have, truth)
            new = rows.template_rows(session, np.setdiff1d(truth, have), self.dim)
            with self._rw.write():
                if gone.size:
                    self._index.remove(int(i) for i in gone)
                    for i in gone:
                        self._rows.pop(int(i), None)
                if new.ids.size:
                    self._index.add(new.ids, new.vectors, new.groups)
                    for j, tid in enumerate(new.ids):
                        self._rows[int(tid)] = (
                            int(new.subject_ids[j]),
                            int(new.groups[j]),
                            int(new.n_faces[j]),
                            new.face_ids[j],
                        )
            self._signature = sig
            return {"added": int(new.ids.size), "removed": int(gone.size)}

    def search(
        self, queries: npt.NDArray[np.float32], k: int, groups: frozenset[int] | None
    ) -> list[list[TemplateHit]]:
        """The top-``k`` templates per query (of ``groups`` only, when given)."""
        if not self._rows:
            return [[] for _ in range(queries.shape[0])]
        selector = None if groups is None else Selector(groups=groups)
        with self._rw.read():
            scores, ids = self._index.search(queries.astype(np.float32), k, selector)
            out: list[list[TemplateHit]] = []
            for row_s, row_i in zip(scores, ids, strict=True):
                hits = []
                for s, tid in zip(row_s, row_i, strict=True):
                    meta = self._rows.get(int(tid))
                    if tid < 0 or meta is None:
                        continue
                    sid, group, n, faces = meta
                    hits.append(TemplateHit(int(tid), sid, group, float(s), n, faces))
                out.append(hits)
        return out

"""The engine as the service uses it: one :class:`facetrace.gallery.directory.Gallery`, opened on
first use and shared by request threads under a lock.

The gallery keeps a vector index in memory and saves it after writes; one lock around
every call keeps searches from seeing an index half-way through an import batch. The
engine's own errors (ImageError, NoFaceFound, LowQualityFace, ...) pass through.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from facetrace.imaging import ImageLimits, decode_image
from facetrace.service.searches import FaceResult, FoundCandidate, ProbeFace, ScoreEvidence

log = logging.getLogger(__name__)

ImportProgress = Callable[[int, int], None]


def _box(values: Any) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = (round(float(v)) for v in values)
    return x1, y1, x2, y2


def _rate(value: Any) -> float | None:
    """The engine's estimated false-match rate, None where it has none (NaN)."""
    rate = float(value)
    return None if math.isnan(rate) else rate


def _probe_face(index: int, face: Any) -> ProbeFace:
    return ProbeFace(
        index=index,
        box=_box(face.detection.box.as_list()),
        quality=float(face.quality.score),
        quality_reasons=tuple(str(r) for r in face.quality.reasons),
        landmarks=tuple((float(x), float(y)) for x, y in face.detection.landmarks.as_array()),
    )


def _candidate(c: Any) -> FoundCandidate:
    i = c.info
    return FoundCandidate(
        rank=int(c.rank),
        score=float(c.score),
        false_match_rate=_rate(c.false_match_rate),
        above_threshold=bool(c.above_threshold),
        subject_external_id=str(i.subject_external_id),
        subject_name=str(i.subject_name),
        face_id=int(i.face_id),
        photo_id=int(i.photo_id),
        box=_box(i.box),
        quality=float(i.quality),
        collection=str(i.collection),
        legal_basis=str(i.legal_basis),
        source_url=str(i.source_url),
        source_title=str(i.source_title),
        captured_date=str(i.captured_date),
    )


class GalleryPort:
    """Implements :class:`facetrace.service.searches.FaceSearcher` and the gallery admin calls.

    Args:
        data_dir: the data directory (index, models cache, SQLite file).
        database_url: SQL URL, or None for SQLite in ``data_dir``.
        k: candidates per face; fpir: the false-positive identification rate that sets
        the threshold; min_quality: probe faces below it need ``force``.
        max_upload_bytes: largest probe accepted.
        index_kind, index_params: the vector index recipe and its parameters (a Milvus
        connection), as for :meth:`facetrace.gallery.Gallery.open`.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str | None,
        k: int,
        fpir: float,
        min_quality: float,
        max_upload_bytes: int,
        index_kind: str = "auto",
        index_params: dict[str, Any] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.index_kind = index_kind
        self.index_params = dict(index_params or {})
        self.database_url = database_url
        self.k = k
        self.fpir = fpir
        self.min_quality = min_quality
        self.limits = ImageLimits(max_bytes=max_upload_bytes)
        self._gallery: Any = None
        self._lock = threading.RLock()

    def gallery(self) -> Any:
        """The opened gallery (models load lazily on its first photo)."""
        with self._lock:
            if self._gallery is None:
                from facetrace.gallery.directory import Gallery

                self._gallery = Gallery.open(
                    self.data_dir,
                    database_url=self.database_url,
                    index_kind=self.index_kind,
                    index_params=self.index_params,
                )
            return self._gallery

    def close(self) -> None:
        """Save the index and release the gallery."""
        with self._lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None

    def find_faces(self, data: bytes, *, source: str) -> tuple[int, int, list[ProbeFace]]:
        """Decode a probe and find its faces (largest first). Raises ImageError, NoFaceFound."""
        from facetrace.errors import NoFaceFound

        image = decode_image(data, source=source, limits=self.limits)
        with self._lock:
            faces = self.gallery().pipeline.analyse(image.pixels)
        if not faces:
            raise NoFaceFound(f"{source}: no face was found in the photo")
        h, w = image.pixels.shape[:2]
        return int(w), int(h), [_probe_face(i, f) for i, f in enumerate(faces)]

    def search_face(
        self,
        data: bytes,
        *,
        source: str,
        face: int,
        force: bool,
        collections: Sequence[str] | None,
    ) -> FaceResult:
        """Search one face of a probe against the gallery (``collections`` limits it)."""
        image = decode_image(data, source=source, limits=self.limits)
        with self._lock:
            results = self.gallery().search(
                image.pixels,
                k=self.k,
                face=face,
                force=force,
                min_quality=self.min_quality,
                fpir=self.fpir,
                collections=list(collections) if collections is not None else None,
                include_below=True,
            )
            evidence = self._evidence()
        r = results[0]
        return FaceResult(
            face=_probe_face(r.face_index, r.face),
            threshold=float(r.threshold),
            candidates=tuple(_candidate(c) for c in r.candidates),
            below_threshold=tuple(_candidate(c) for c in r.below_threshold[:3]),
            evidence=evidence,
        )

    def _evidence(self) -> ScoreEvidence:
        """The calibration's extent and the threshold's inputs (caller holds the lock)."""
        g = self.gallery()
        cal = g.calibration()
        n = int(g.subject_count())
        sizes = sorted({100, 1_000, 10_000, 100_000, 1_000_000, max(n, 1)})
        return ScoreEvidence(
            impostor_pairs=int(cal.impostor_pairs) if cal else None,
            calibration_source=str(cal.source) if cal else "",
            gallery_subjects=n,
            fpir=self.fpir,
            verify_threshold=float(g.descriptor.verify_threshold),
            examples=tuple((s, cal.threshold_for_fpir(self.fpir, s)) for s in sizes) if cal else (),
        )

    def ingest(
        self,
        path: Path,
        *,
        collection: str,
        legal_basis: str,
        progress: ImportProgress,
        allowed_root: Path,
    ) -> dict[str, Any]:
        """Import a folder or manifest into ``collection``; returns the engine's summary.

        Every photo must lie under ``allowed_root`` (an uploaded zip's folder, or the
        configured import root), so a manifest cannot pull in other files of the server;
        rows naming another collection are imported into ``collection`` all the same.
        """
        from facetrace.errors import ManifestError
        from facetrace.gallery.ingest import collect_items, ingest

        root = allowed_root.resolve()
        items = []
        for item in collect_items(path, collection=collection, legal_basis=legal_basis):
            if not item.path.resolve().is_relative_to(root):
                raise ManifestError(str(path.name), None, f"{item.path} is outside {root}")
            items.append(replace(item, provenance=replace(item.provenance, collection=collection)))
        progress(0, len(items))
        with self._lock:
            summary = ingest(
                self.gallery(),
                items,
                workers=1,
                limits=self.limits,
                progress=lambda done, total, _s: progress(done, total),
            )
        return dict(summary.as_dict())

    def delete_subject(self, external_id: str) -> int:
        """Delete a subject (tombstoned); returns faces removed."""
        with self._lock:
            return int(self.gallery().delete_subject(external_id))

    def delete_photo(self, photo_id: int) -> int:
        """Delete a photo (tombstoned); returns faces removed."""
        with self._lock:
            return int(self.gallery().delete_photo(str(photo_id)))

    def delete_collection(self, name: str) -> int:
        """Delete a collection's photos (tombstoned); returns faces removed."""
        with self._lock:
            return int(self.gallery().delete_collection(name))

    def status(self) -> dict[str, Any]:
        """The gallery's counts and model."""
        with self._lock:
            return dict(self.gallery().status())

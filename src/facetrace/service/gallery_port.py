"""The service's gallery: one :class:`facetrace.gallery.directory.Gallery`, opened on first
use and shared by request threads, with the calls the service's imports, deletions and
duplicate finder make on it. Searches do not pass through here: ``service/searches.py``
reads the opened gallery itself (its ``SearchGallery`` protocol).

No lock here spans a call. The gallery guards its in-memory index itself with a
readers-writer lock (:mod:`facetrace.rwlock`): searches read it side by side, and an
import batch or a delete holds it alone only for the step that changes it, so a search
waits for at most one such step, never for an import. The engine's own errors
(ImageError, ManifestError, ...) pass through.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from facetrace.config import PipelineOptions
from facetrace.imaging import ImageLimits
from facetrace.store.db import Database

if TYPE_CHECKING:
    from facetrace.gallery.directory import DeleteKind, Gallery
    from facetrace.gallery.duplicates import DuplicatePair
    from facetrace.gallery.ingest import BatchHook

log = logging.getLogger(__name__)

ImportProgress = Callable[[int, int], None]


_REASON_WORDS = {
    "ImageTooLarge": "the photo is too large",
    "ImageError": "not a usable photo",
    "NoFaceFound": "no face found",
    "LowQualityFace": "the face is of too low quality",
    "ManifestError": "a problem with the manifest",
    "error": "could not be read",
}


def user_words(path: str, reason: str, root: Path) -> tuple[str, str]:
    """A skipped photo as the user knows it: its name inside their upload (never the
    server's path) and the reason in words (``ImageError: /srv/.../a.jpg: truncated``
    -> ``("people/a.jpg", "not a usable photo: truncated")``)."""
    p = Path(path)
    try:
        name = p.resolve().relative_to(root).as_posix()
    except ValueError:
        name = p.name
    kind, sep, rest = reason.partition(": ")
    if sep and kind in _REASON_WORDS:
        detail = rest.replace(str(p), "").replace(p.name, "").strip(" :")
        reason = f"{_REASON_WORDS[kind]}: {detail}" if detail else _REASON_WORDS[kind]
    for prefix in (str(root), str(p.parent)):
        reason = reason.replace(prefix + "/", "").replace(prefix, "")
    return name, reason


class GalleryPort:
    """The service's gallery, opened once and shared, with its admin calls (imports,
    deletions, duplicates). Searches do not come through here: they read the opened
    gallery itself (:class:`facetrace.service.searches.Searcher`), and probes are
    analysed by the state's :class:`facetrace.inference.ProbeAnalyser`.

    Args:
        data_dir: the data directory (index, models cache, SQLite file).
        database: the SQL store the service uses too (one engine, one pool).
        max_upload_bytes: largest photo an import reads (as for a probe).
        index_kind, index_params: the vector index recipe and its parameters (a Milvus
        connection), as for :meth:`facetrace.gallery.directory.Gallery.open`.
        pipeline: the face pipeline's options (model, backend, detector), from
        :meth:`facetrace.config.Settings.pipeline_options` as for the CLI.
        import_nice: niceness added to an import's pipeline processes, so that searches
        get the cores first when both want them (see ``ServiceSettings.import_nice``).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        database: Database,
        max_upload_bytes: int,
        index_kind: str = "auto",
        index_params: dict[str, Any] | None = None,
        pipeline: PipelineOptions | None = None,
        import_nice: int = 0,
    ) -> None:
        self.data_dir = data_dir
        self.pipeline_options = pipeline
        self.index_kind = index_kind
        self.index_params = dict(index_params or {})
        self.database = database
        self.limits = ImageLimits(max_bytes=max_upload_bytes)
        self._gallery: Gallery | None = None
        self._open_lock = threading.Lock()  # opening (and closing) the gallery only
        self.import_nice = import_nice
        # one dlib detector: not for two threads at once (an inline import's pipeline and
        # the service's probe analysis in this process, ProbeAnalyser(lock=...))
        self.pipeline_lock = threading.Lock()

    def gallery(self) -> Gallery:
        """The opened gallery (models load lazily on its first photo)."""
        gallery = self._gallery
        if gallery is not None:
            return gallery
        with self._open_lock:
            if self._gallery is None:
                from facetrace.gallery.directory import Gallery

                self._gallery = Gallery.open(
                    self.data_dir,
                    database=self.database,
                    index_kind=self.index_kind,
                    index_params=self.index_params,
                    pipeline=self.pipeline_options,
                    # a lost index is rebuilt behind exact search, not before serving
                    rebuild_in_background=True,
                )
            return self._gallery

    def rebuild_progress(self) -> dict[str, Any] | None:
        """A background rebuild's progress (state, kind, done, total, started_at), None
        when none ran; never opens the gallery (readiness asks while it is opening)."""
        gallery = self._gallery
        rebuild = None if gallery is None else gallery.rebuild
        return None if rebuild is None else dict(rebuild)

    def close(self) -> None:
        """Save the index and release the gallery."""
        with self._open_lock:
            if self._gallery is not None:
                self._gallery.close()
                self._gallery = None

    def ingest(
        self,
        path: Path,
        *,
        collection: str,
        legal_basis: str,
        allowed_root: Path,
        progress: ImportProgress,
        on_batch: BatchHook | None = None,
        should_stop: Callable[[], bool] | None = None,
        photo_store: Path | None = None,
        workers: int = 1,
        batch_size: int = 32,
    ) -> dict[str, Any]:
        """Import a folder or manifest into ``collection``; returns the engine's summary.

        Every photo must lie under ``allowed_root`` (an uploaded zip's folder, or the
        configured import root), so a manifest cannot pull in other files of the server;
        rows naming another collection are imported into ``collection`` all the same.
        The pipeline runs on ``workers`` processes with no lock held; each batch (of
        ``batch_size`` photos) is committed (``on_batch`` in its transaction), then its
        faces are indexed in one exclusive step of the gallery's index lock: searchable
        from then on, and searches wait for that step only.
        ``should_stop`` is asked after each batch; ``photo_store`` keeps the stored
        photos (see :func:`facetrace.gallery.ingest.keep_photo`). The summary's
        ``stopped`` is true when ``should_stop`` ended the run.
        """
        from facetrace.errors import ManifestError
        from facetrace.gallery.ingest import collect_items, ingest

        root = allowed_root.resolve()
        items = []
        for item in collect_items(
            path, collection=collection, legal_basis=legal_basis, source=path.name
        ):
            if not item.path.resolve().is_relative_to(root):
                raise ManifestError(
                    path.name, None, f"a row names a photo outside the upload: {item.path.name}"
                )
            # every row goes into the collection imported into, whatever it names
            provenance = replace(item.record.provenance, collection=collection)
            items.append(replace(item, record=replace(item.record, provenance=provenance)))
        progress(0, len(items))
        summary = ingest(
            self.gallery(),
            items,
            workers=workers,
            limits=self.limits,
            progress=lambda done, total, _s: progress(done, total),
            on_batch=on_batch,
            should_stop=should_stop,
            photo_store=photo_store,
            inline_lock=self.pipeline_lock,
            batch_size=batch_size,
            nice=self.import_nice,
        )
        out = dict(summary.as_dict())
        out["stopped"] = summary.stopped
        out["skipped_files"] = [user_words(p, r, root) for p, r in summary.skipped]
        return out

    def remove_rows(
        self, session: Session, *, kind: DeleteKind, target: str, collection: str | None = None
    ) -> list[int]:
        """Delete a subject (of ``collection``), photo or collection in the caller's
        transaction (tombstoned); returns the face ids for :meth:`forget` once that
        transaction has committed."""
        return list(
            self.gallery().remove_rows(session, kind=kind, target=target, collection=collection)
        )

    def forget(self, face_ids: Sequence[int]) -> int:
        """Drop committed deletions from the index (one exclusive step); returns the number
        of faces."""
        return int(self.gallery().forget(face_ids))

    def find_duplicates(
        self, *, collections: frozenset[int] | None, fmr: float
    ) -> list[DuplicatePair]:
        """Possible duplicate subjects among faces of ``collections`` (None: all)."""
        from facetrace.gallery.duplicates import find_duplicates

        gallery = self.gallery()
        with gallery.reading():  # searches go on; an index write waits for the whole scan
            return find_duplicates(gallery, collections=collections, fmr=fmr)

    def status(self) -> dict[str, Any]:
        """The gallery's counts and model."""
        return dict(self.gallery().status())

"""Atomic multi-file persistence for indexes that need more than one FAISS file.

An approximate index is a FAISS index plus a little state of ours (the id labels
with their tombstones, the kind and parameters). Two files renamed one after the
other are not atomic, so :func:`save_bundle` writes every part under a fresh,
unique name first and then atomically replaces a small JSON *manifest* at
``path`` that names them. A crash at any point leaves the previous manifest
pointing at a complete previous set; leftovers are removed by the next save.

No pickle: the manifest is JSON, arrays are ``.npy`` read with
``allow_pickle=False``, indexes use FAISS's own serialiser.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from facetrace.errors import IndexUnavailable

log = logging.getLogger(__name__)

FORMAT = "facetrace-index"
VERSION = 1


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_manifest(path: Path) -> bool:
    """True if ``path`` is a manifest written by :func:`save_bundle` (not a bare FAISS file)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(1) == b"{"
    except OSError as exc:
        raise IndexUnavailable(f"cannot read index {path}: {exc}") from exc


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check a manifest; raises :class:`IndexUnavailable` when it is not one."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexUnavailable(f"cannot read index manifest {path}: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise IndexUnavailable(f"{path} is not a facetrace index manifest")
    if meta.get("version") != VERSION:
        raise IndexUnavailable(f"{path}: unsupported manifest version {meta.get('version')}")
    return meta


def save_bundle(
    path: Path,
    meta: dict[str, Any],
    *,
    indexes: dict[str, faiss.Index],
    arrays: dict[str, npt.NDArray[Any]],
) -> None:
    """Write ``indexes`` and ``arrays`` under unique names, then the manifest at ``path``.

    ``meta`` (JSON-serialisable: kind, dim, params, counts) is stored in the manifest
    with the part file names added under ``"files"``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = secrets.token_hex(6)
    files: dict[str, str] = {}
    written: list[Path] = []
    try:
        for name, index in indexes.items():
            part = path.with_name(f"{path.name}.{tag}.{name}.faiss")
            written.append(part)
            faiss.write_index(index, str(part))
            _fsync_file(part)
            files[name] = part.name
        for name, array in arrays.items():
            part = path.with_name(f"{path.name}.{tag}.{name}.npy")
            written.append(part)
            with open(part, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
                fh.flush()
                os.fsync(fh.fileno())
            files[name] = part.name
        manifest = {"format": FORMAT, "version": VERSION, **meta, "files": files}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        for part in written:
            part.unlink(missing_ok=True)
        raise
    _remove_stale_parts(path, keep=set(files.values()))


def _remove_stale_parts(path: Path, keep: set[str]) -> None:
    """Delete parts of earlier saves (and interrupted ones) that the manifest no longer names."""
    prefix = path.name + "."
    for candidate in path.parent.iterdir():
        name = candidate.name
        if not name.startswith(prefix) or name in keep:
            continue
        if name.endswith((".faiss", ".npy", ".tmp")):
            log.debug("removing stale index part %s", candidate)
            candidate.unlink(missing_ok=True)


def load_part_index(path: Path, meta: dict[str, Any], name: str) -> faiss.Index:
    """Read the FAISS part ``name`` of the bundle whose manifest is at ``path``."""
    part = path.with_name(_part_name(path, meta, name))
    try:
        return faiss.read_index(str(part))
    except RuntimeError as exc:
        raise IndexUnavailable(f"cannot read index part {part}: {exc}") from exc


def load_part_array(path: Path, meta: dict[str, Any], name: str) -> npt.NDArray[Any]:
    """Read the array part ``name`` (never unpickling anything)."""
    part = path.with_name(_part_name(path, meta, name))
    try:
        return np.load(part, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexUnavailable(f"cannot read index part {part}: {exc}") from exc


def _part_name(path: Path, meta: dict[str, Any], name: str) -> str:
    files = meta.get("files")
    if not isinstance(files, dict) or not isinstance(files.get(name), str):
        raise IndexUnavailable(f"{path}: manifest names no part {name!r}")
    part = str(files[name])
    if "/" in part or part.startswith("."):
        raise IndexUnavailable(f"{path}: bad part name {part!r}")
    return part

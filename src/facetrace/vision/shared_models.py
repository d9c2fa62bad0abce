"""Derived model files shared by every data directory of a machine.

A data directory keeps its own derived model files in ``models/`` (the converted ONNX
graphs of dlib's descriptor and CNN detector, dlib's serialised HOG detector), built at
first use. Building them costs about a second of CPU, paid again by every new data
directory (each test gallery, each ``bench_ingest_ratio`` run, each new gallery of an
operator). So a pipeline that builds them (:meth:`facetrace.engine.FacePipeline.cache_models`)
first copies what the per-user cache already holds, and afterwards leaves a copy of what it
built there.

Nothing here is trusted blindly: a file is copied out only if its SHA-256 is the one
recorded when it was left (a truncated or altered file is ignored), and the copy is then
checked like a file built on the spot (the ONNX graphs carry their source's SHA-256 and
converter version and are rebuilt when stale). Every write goes to a temporary file and is
renamed, so concurrent processes never see half a file. ``FACETRACE_MODEL_CACHE`` names
another folder, or ``off`` to share nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

ENV = "FACETRACE_MODEL_CACHE"
MANIFEST = "shared-models.json"
SUFFIXES = (".onnx", ".svm")


def shared_dir() -> Path | None:
    """The shared folder (``FACETRACE_MODEL_CACHE``, default the per-user cache), or None
    when sharing is off."""
    value = os.environ.get(ENV)
    if value is not None:
        value = value.strip()
        return None if value.lower() in ("", "off", "0", "none") else Path(value)
    from facetrace.vision.models import default_cache_dir

    return default_cache_dir()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _manifest(shared: Path) -> dict[str, str]:
    try:
        data = json.loads((shared / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary file renamed into place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        Path(tmp).unlink(missing_ok=True)


def seed(folder: Path, shared: Path | None) -> list[str]:
    """Copy into ``folder`` the shared files it lacks whose SHA-256 is the recorded one;
    returns their names. Never fails: a problem only means the files get built here."""
    if shared is None or shared.resolve() == folder.resolve():
        return []
    copied: list[str] = []
    for name, digest in _manifest(shared).items():
        src, dst = shared / name, folder / name
        if dst.exists() or Path(name).name != name or not name.endswith(SUFFIXES):
            continue
        try:
            if _sha256(src) != digest:
                log.warning("shared model file %s does not match its record; not used", src)
                continue
            _copy(src, dst)
            copied.append(name)
        except OSError as exc:
            log.info("shared model file %s not copied: %s", src, exc)
    return copied


def publish(folder: Path, shared: Path | None) -> list[str]:
    """Leave in ``shared`` a copy of each derived file of ``folder`` that it lacks or holds
    in another version, and record its SHA-256; returns their names. Never fails."""
    if shared is None or not folder.is_dir() or shared.resolve() == folder.resolve():
        return []
    left: list[str] = []
    try:
        record = _manifest(shared)
        for path in sorted(folder.iterdir()):
            if not path.is_file() or not path.name.endswith(SUFFIXES):
                continue
            digest, there = _sha256(path), shared / path.name
            if record.get(path.name) == digest and there.is_file() and _sha256(there) == digest:
                continue
            _copy(path, there)
            record[path.name] = digest
            left.append(path.name)
        if left:
            fd, tmp = tempfile.mkstemp(prefix=f".{MANIFEST}.", dir=shared)
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, indent=1, sort_keys=True)
            os.replace(tmp, shared / MANIFEST)
    except OSError as exc:
        log.info("model files not shared in %s: %s", shared, exc)
    return left

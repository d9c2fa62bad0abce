"""The audit chain's key, kept in a file outside the database.

Why a key at all: an unkeyed hash chain only proves that whoever wrote the rows also
wrote the hashes. Anyone who can rewrite the table (a database administrator, a stolen
backup restored with edits) can recompute every hash and the head. With an HMAC key that
lives in a file the database never sees, a consistent chain can only be produced by a
holder of the key. Put the file where the database's administrators cannot read it
(``FACETRACE_AUDIT_KEY_FILE``; the default is ``<data>/audit.key``, which protects a
PostgreSQL installation but not a SQLite file sitting next to it).

The file holds 32 random bytes as hex, is created with mode 0600 on first start, and is
never rewritten. Losing it means the chain can no longer be verified: back it up with
the same care as the service secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from facetrace.errors import AuditKeyError

log = logging.getLogger(__name__)

KEY_BYTES = 32
FILE_NAME = "audit.key"


def key_path(data_dir: Path, configured: Path | None) -> Path:
    """Where the key lives: the configured path, else ``<data>/audit.key``."""
    return configured if configured is not None else data_dir / FILE_NAME


def key_id(key: bytes) -> str:
    """A short public fingerprint of the key (16 hex digits), to say *which* key signed
    a log without revealing it."""
    return hmac.new(key, b"facetrace audit key id", hashlib.sha256).hexdigest()[:16]


def load_key(path: Path, *, create: bool = True) -> bytes:
    """The key in ``path``; created (0600, exclusively) when missing and ``create``.
    Raises AuditKeyError with one line saying what is wrong and which setting to change."""
    hint = "(set FACETRACE_AUDIT_KEY_FILE to a readable key file)"
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        if not create:
            raise AuditKeyError(f"no audit key file at {path} {hint}") from None
        return _create(path)
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise AuditKeyError(f"cannot read the audit key file {path}: {reason} {hint}") from error
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise AuditKeyError(
            f"the audit key file {path} does not hold a key ({KEY_BYTES * 2} hex digits) {hint}"
        )
    if path.stat().st_mode & 0o077:
        log.warning("the audit key file %s is readable by others: chmod 600 it", path)
    return key


def _create(path: Path) -> bytes:
    key = secrets.token_bytes(KEY_BYTES)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return load_key(path, create=False)
    except OSError as error:
        raise AuditKeyError(
            f"cannot create the audit key file {path}: {error.strerror or error} "
            "(set FACETRACE_AUDIT_KEY_FILE to a writable place)"
        ) from error
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    log.info(
        "created the audit key at %s (keep a copy: the log cannot be verified without it)", path
    )
    return key

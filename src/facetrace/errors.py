"""Domain errors. They know nothing about HTTP; the API maps them to status codes."""

from __future__ import annotations


class FacetraceError(Exception):
    """Base class of every error facetrace raises on purpose."""


class ImageError(FacetraceError):
    """A file could not be used as a photo. Carries the file name and the reason."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ImageTooLarge(ImageError):
    """The file or its pixel count exceeds the configured limit (decompression bombs)."""


class NoFaceFound(FacetraceError):
    """No face was detected where one was required."""


class FaceIndexError(FacetraceError):
    """A face number (``--face N``) that the photo does not have."""


class LowQualityFace(FacetraceError):
    """A probe face scored below the minimum quality and ``force`` was not given."""

    def __init__(self, quality: float, minimum: float, reasons: list[str]) -> None:
        from facetrace.types import describe_quality

        why = describe_quality(reasons) or "low overall quality"
        super().__init__(
            f"the face's quality ({quality:.2f}) is below the minimum for a search "
            f"({minimum:.2f}): {why}. Search it anyway only if no better photo exists "
            "(the 'search even if low quality' option; force in the API)"
        )
        self.quality = quality
        self.minimum = minimum
        self.reasons = reasons


class ModelUnavailable(FacetraceError):
    """A model file is missing, corrupt or of the wrong shape."""


class ModelMismatch(FacetraceError):
    """Vectors of one model offered to a gallery built with another."""


class IndexUnavailable(FacetraceError):
    """The vector index cannot be opened or does not support an operation."""


class StoreUnavailable(FacetraceError):
    """The database cannot be reached or written, or the data directory is not writable:
    the service's fault, not the request's (a 503 while it lasts)."""


class DataDirInUse(FacetraceError):
    """Another process owns the data directory (the running service, or a CLI command
    that writes): a second writer would diverge from it. See facetrace.gallery.owner."""


class ReadOnlyGallery(FacetraceError):
    """A write to a gallery opened read-only (a command that only reads)."""


class InferenceUnavailable(FacetraceError):
    """No face-analysis worker could answer (one died, or none finished in time): the
    service's fault and temporary, a 503; the request may be tried again."""


class NotFound(FacetraceError):
    """A subject, photo, collection or face id that does not exist."""


class DeletedPhoto(FacetraceError):
    """The photo was deleted earlier; its tombstone blocks re-ingestion."""


class ManifestError(FacetraceError):
    """A manifest row or file is malformed. Carries the line number where known, and
    ``problems``: every (line, reason) found, when a whole manifest was checked."""

    def __init__(
        self,
        source: str,
        line: int | None,
        reason: str,
        *,
        problems: list[tuple[int | None, str]] | None = None,
    ) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason
        self.problems = problems or [(line, reason)]

    @classmethod
    def several(
        cls, source: str, problems: list[tuple[int | None, str]], *, total: int
    ) -> ManifestError:
        """One error for every problem of a manifest (``total`` found, ``problems`` the
        first of them); with a single problem it reads like a plain ManifestError."""
        if total == 1:
            line, reason = problems[0]
            return cls(source, line, reason)
        listed = "; ".join(f"line {n}: {r}" if n is not None else r for n, r in problems)
        more = f" (the first {len(problems)} are listed)" if total > len(problems) else ""
        return cls(source, None, f"{total} rows are wrong{more}: {listed}", problems=problems)


# --- service errors (accounts, cases, audit) -------------------------------------------


class AuthenticationFailed(FacetraceError):
    """Unknown user, wrong password, disabled account, or a bad/expired key or session."""


class PermissionDenied(FacetraceError):
    """The user's roles do not allow the action (or the record is another department's)."""


class PasswordChangeRequired(PermissionDenied):
    """The account's password is a one-time password (set by an administrator): nothing
    but changing it is allowed until it is changed."""


class InvalidRequest(FacetraceError):
    """A request that breaks a rule: a missing case, purpose or legal basis, a bad value."""


class QuotaExceeded(FacetraceError):
    """An upload larger than a quota allows: an import's files or bytes, or what a
    department's unfinished imports hold on disk together."""


class RuleViolation(FacetraceError):
    """An action that the case's state does not allow yet (e.g. identification before
    two reviewers agree)."""


class Conflict(FacetraceError):
    """A record that already exists (a user name, a case number, a collection name)."""


class RateLimited(FacetraceError):
    """A rate limit was hit; ``retry_after`` is the whole seconds to wait (at least 1)."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many requests; try again in {int(retry_after) + 1} seconds")
        self.retry_after = int(retry_after) + 1


class Busy(FacetraceError):
    """The service has as much photo work in hand as its memory bound allows and the
    queue in front of it is full or did not move in time; ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(FacetraceError):
    """A long operation (a video's analysis) was cancelled by its user."""


class AuditKeyError(FacetraceError):
    """The audit log's key file cannot be created or read: the service refuses to start
    rather than write entries nobody could verify."""

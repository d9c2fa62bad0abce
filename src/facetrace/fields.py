"""The one set of constrained field types: ids, paging and the lengths of every text a
user can store (case numbers, names, notes, legal bases, URLs).

The API schemas and the web forms annotate their fields with these types (FastAPI turns a
violation into a 422 before any work), and the service layer checks the same types again
with :func:`check`, so a caller that skips the HTTP layer (the CLI, a test, a new route)
cannot store an unbounded value either. Nothing here knows HTTP.

Every text type refuses lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but no
UTF-8 text: the database and the JSON encoder would fail on it) and NUL characters
(PostgreSQL's text type cannot hold them).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import annotated_types
from pydantic import AfterValidator, StringConstraints, TypeAdapter, ValidationError

from facetrace.errors import InvalidRequest

MAX_INT64 = 2**63 - 1
"""The largest id or offset: SQLite's and PostgreSQL's bigint."""

MAX_PAGE = 1000
"""The most rows one listing returns."""


def _plain_text(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the text holds an invalid character (a lone UTF-16 surrogate)") from None
    if "\x00" in value:
        raise ValueError("the text holds a NUL character")
    return value


Id = Annotated[int, annotated_types.Ge(1), annotated_types.Le(MAX_INT64)]
"""A database id: 1 to 2^63 - 1."""

Offset = Annotated[int, annotated_types.Ge(0), annotated_types.Le(MAX_INT64)]
"""Rows to skip in a listing: 0 to 2^63 - 1."""

Limit = Annotated[int, annotated_types.Ge(1), annotated_types.Le(MAX_PAGE)]
"""Rows in one listing: 1 to :data:`MAX_PAGE`."""

Index = Annotated[int, annotated_types.Ge(0), annotated_types.Le(100_000)]
"""A small position (a face number in a photo)."""

Coordinate = Annotated[int, annotated_types.Ge(-1_000_000), annotated_types.Le(1_000_000)]
"""A pixel coordinate of a box drawn on a photo (a box may reach past its edges)."""

JobId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{1,32}$")]
"""An import job's id (hex)."""


def _text(max_length: int, *, min_length: int = 0) -> Any:
    return Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length),
        AfterValidator(_plain_text),
    ]


# Lengths in characters. Generous for real use, small enough that a listing of a thousand
# rows stays a few megabytes.
CaseNumber = _text(64, min_length=1)
"""A case number, e.g. ``2026-0417``."""
Name = _text(200, min_length=1)
"""A required name: a collection, subject, department, contact."""
OptionalName = _text(200)
"""An optional short text: a title, a relationship, a channel."""
Username = _text(64, min_length=1)
LegalBasis = _text(1000, min_length=1)
"""The legal basis of a case, collection or photo."""
ShortText = _text(1000)
"""A reason, an outcome, a retention rule, a description."""
Note = _text(10_000)
"""A free-text note or evidence."""
Password = Annotated[str, annotated_types.MaxLen(1024), AfterValidator(_plain_text)]
SearchText = _text(200)
"""A filter typed into a listing."""

URL_SCHEMES = ("http://", "https://")


def _url(value: str) -> str:
    if value and not value.lower().startswith(URL_SCHEMES):
        raise ValueError("only http:// and https:// links are allowed")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise ValueError("a link may not contain spaces or control characters")
    return value


Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2048),
    AfterValidator(_plain_text),
    AfterValidator(_url),
]
"""An optional http(s) link (a photo's source); empty is allowed."""

T = TypeVar("T")

_adapters: dict[Any, TypeAdapter[Any]] = {}


def check(kind: Any, value: T, *, field: str) -> T:
    """``value`` checked (and stripped) as ``kind``, one of the types above; raises
    :class:`~facetrace.errors.InvalidRequest` naming ``field``. The service layer calls
    this on everything it stores, whatever the caller checked before."""
    adapter = _adapters.get(kind)
    if adapter is None:
        adapter = _adapters[kind] = TypeAdapter(kind)
    try:
        result: T = adapter.validate_python(value)
    except ValidationError as exc:
        message = str(exc.errors()[0].get("msg", "invalid value")).removeprefix("Value error, ")
        raise InvalidRequest(f"{field}: {message}") from None
    return result


def is_safe_url(value: str | None) -> bool:
    """True when ``value`` may be rendered as a link (http or https)."""
    return bool(value) and str(value).lower().startswith(URL_SCHEMES)

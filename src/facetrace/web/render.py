"""Template setup and the page helper that every web route uses."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from facetrace.config import SearchMode
from facetrace.errors import InvalidRequest
from facetrace.fields import is_safe_url
from facetrace.service import cases, reviews
from facetrace.service.accounts import Actor, Perm, Role, csrf_token
from facetrace.service.videos import clock, listed_faces, person_names
from facetrace.types import describe_quality
from facetrace.web import wording


def significant(value: float, digits: int) -> int:
    """``value`` rounded to ``digits`` significant digits, as an integer.

    >>> significant(39_851_992, 2), significant(9_470, 1)
    (40000000, 9000)
    """
    if value <= 0:
        return 0
    return int(round(value, digits - 1 - math.floor(math.log10(value))))


def count_words(n: int) -> str:
    """A large count in words, two significant digits ("19 million", "4,500").

    >>> count_words(18_941_205), count_words(4_512), count_words(2_400_000_000)
    ('19 million', '4,500', '2.4 billion')
    """
    for size, word in ((1e9, "billion"), (1e6, "million")):
        if n >= size:
            return f"{significant(n, 2) / size:g} {word}"
    return f"{significant(n, 2):,}"


def fmt_rate(value: float | None, evidence: dict[str, Any] | None = None) -> str:
    """An estimated false-match rate as "about 1 in N", as precise as its evidence.

    ``evidence`` is a search's stored :class:`~facetrace.service.searches.ScoreEvidence`.
    A rate below one in the number of impostor pairs measured is an extrapolation and is
    said so ("fewer than 1 in 19 million pairs measured"); a rate resting on fewer than
    100 measured pairs gets one significant digit, otherwise two.

    >>> fmt_rate(2.5093e-8, {"impostor_pairs": 18_941_205})
    'fewer than 1 in 19 million pairs measured'
    >>> ev = {"impostor_pairs": 18_941_205}
    >>> fmt_rate(1.0558e-4, ev), fmt_rate(3e-7, ev)
    ('about 1 in 9,500', 'about 1 in 3,000,000')
    """
    if value is None:
        return "not estimated (the gallery has no calibration)"
    pairs = (evidence or {}).get("impostor_pairs")
    if pairs and value * pairs < 1:
        return f"fewer than 1 in {count_words(int(pairs))} pairs measured"
    if value <= 0:
        return "too small to estimate"
    if value >= 0.5:
        return "about 1 in 2"
    digits = 2 if not pairs or value * pairs >= 100 else 1
    return f"about 1 in {significant(1 / value, digits):,}"


def make_templates(directory: Path) -> Jinja2Templates:
    """Jinja2 templates with facetrace's filters; HTML is autoescaped."""
    templates = Jinja2Templates(directory=str(directory))
    templates.env.filters["rate"] = fmt_rate
    templates.env.filters["count_words"] = count_words
    templates.env.filters["quality_words"] = describe_quality
    templates.env.filters["clock"] = clock
    templates.env.filters["action_text"] = wording.action_text
    templates.env.filters["target_text"] = wording.target_text
    templates.env.filters["detail_text"] = wording.detail_text
    # a stored link is rendered as a link only when it is http(s): rows kept before
    # manifests were checked may hold javascript: or data: URLs
    templates.env.tests["http_link"] = is_safe_url
    templates.env.globals.update(
        Perm=Perm,
        Role=Role,
        purposes=cases.PURPOSE_LABELS,
        outcomes=cases.OUTCOME_LABELS,
        conclusions=reviews.CONCLUSION_LABELS,
        conclusion_labels=reviews.conclusion_labels,
        identifiers=reviews.IDENTIFIER_LABELS,
        video_persons=lambda faces: listed_faces(list(faces)),
        video_names=lambda faces: person_names(list(faces)),
    )
    return templates


def page(request: Request, name: str, actor: Actor | None, **context: Any) -> HTMLResponse:
    """Render ``name`` with the actor, the session's CSRF token and any flash message."""
    state = request.app.state.service
    token = getattr(request.state, "session_token", None)
    csrf = csrf_token(state.secret, token) if token else ""
    status = int(context.pop("status_code", 200))
    return state.templates.TemplateResponse(
        request,
        name,
        {"actor": actor, "csrf": csrf, "flash": request.query_params.get("msg", ""), **context},
        status_code=status,
    )


def back(url: str, message: str = "") -> RedirectResponse:
    """Redirect after a successful POST (303, so a reload does not repeat it)."""
    if message:
        path, hash_, fragment = url.partition("#")
        path += ("&" if "?" in path else "?") + "msg=" + quote(message)
        url = path + hash_ + fragment
    return RedirectResponse(url, status_code=303)


def form_mode(value: str) -> SearchMode | None:
    """A search form's mode field: empty lets the gallery choose; anything else not a mode
    is refused (InvalidRequest) before the search runs or anything is kept."""
    if not value.strip():
        return None
    try:
        return SearchMode(value.strip())
    except ValueError as exc:
        allowed = ", ".join(m.value for m in SearchMode)
        raise InvalidRequest(f"mode must be empty or one of: {allowed}") from exc

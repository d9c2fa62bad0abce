"""Template setup and the page helper that every web route uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from facetrace.service import cases, reviews
from facetrace.service.accounts import Actor, Perm, Role, csrf_token


def _fmt_rate(value: float | None) -> str:
    """An estimated false-match rate as "1 in N" (readable for investigators)."""
    if value is None:
        return "not estimated (the gallery has no calibration)"
    if value <= 0:
        return "below measurable"
    if value >= 0.5:
        return "about 1 in 2"
    return f"about 1 in {round(1 / value):,}"


def make_templates(directory: Path) -> Jinja2Templates:
    """Jinja2 templates with facetrace's filters; HTML is autoescaped."""
    templates = Jinja2Templates(directory=str(directory))
    templates.env.filters["rate"] = _fmt_rate
    templates.env.globals.update(
        Perm=Perm,
        Role=Role,
        purposes=cases.PURPOSE_LABELS,
        conclusions=reviews.CONCLUSION_LABELS,
        identifiers=reviews.IDENTIFIER_LABELS,
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

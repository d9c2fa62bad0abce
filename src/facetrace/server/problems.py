"""One place that turns domain errors into HTTP answers: RFC 7807 problem+json for the
API, an HTML page (or a redirect to the login page) for the browser. Never a traceback."""

from __future__ import annotations

import errno
import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facetrace import errors
from facetrace.server.deps import note_signed_in
from facetrace.service.accounts import csrf_token
from facetrace.store.db import UNAVAILABLE, unavailable_reason

log = logging.getLogger(__name__)

STATUS: list[tuple[type[Exception], int, str]] = [
    (errors.AuthenticationFailed, 401, "Not authenticated"),
    (errors.PermissionDenied, 403, "Forbidden"),
    (errors.NotFound, 404, "Not found"),
    (errors.Conflict, 409, "Conflict"),
    (errors.RuleViolation, 409, "Not allowed in this state"),
    (errors.ImageTooLarge, 413, "Photo too large"),
    (errors.QuotaExceeded, 413, "Quota exceeded"),
    (errors.ImageError, 422, "Unusable photo"),
    (errors.NoFaceFound, 422, "No face found"),
    (errors.FaceIndexError, 422, "No such face"),
    (errors.LowQualityFace, 422, "Low-quality face"),
    (errors.ManifestError, 422, "Bad manifest"),
    (errors.InvalidRequest, 422, "Invalid request"),
    (errors.DeletedPhoto, 409, "Deleted photo"),
    (errors.ModelMismatch, 409, "Model mismatch"),
    (errors.ModelUnavailable, 503, "Model unavailable"),
    (errors.IndexUnavailable, 503, "Index unavailable"),
    (errors.StoreUnavailable, 503, "Storage unavailable"),
    (errors.InferenceUnavailable, 503, "Face analysis unavailable"),
    (errors.RateLimited, 429, "Too many requests"),
    (errors.Busy, 503, "Busy"),
]


def classify(exc: Exception) -> tuple[int, str]:
    """HTTP status and title for a domain error."""
    for cls, status, title in STATUS:
        if isinstance(exc, cls):
            if isinstance(exc, errors.ImageError) and "video" in str(exc).lower():
                # the video checks say "video" in their reasons: not a photo's error
                title = title.replace("photo", "video").replace("Photo", "Video")
            return status, title
    return 400, "Request failed"


def is_api(request: Request) -> bool:
    """True for API paths (problem+json) as opposed to pages (HTML)."""
    return request.url.path.startswith("/api/")


def problem(request: Request, status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 7807 response."""
    body = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _html(request: Request, status: int, title: str, detail: str) -> Response:
    """The error page in the normal layout: the navigation bar and the signed-in user
    (:func:`facetrace.server.deps.get_actor` noted them on the request) when the request
    got that far, as every other page has them."""
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    state = request.app.state.service
    actor = getattr(request.state, "actor", None)
    token = getattr(request.state, "session_token", None)
    if actor is not None and actor.must_change_password:
        actor = None  # only the Account page is open to it: no menu to other pages
    return state.templates.TemplateResponse(
        request,
        "error.html",
        {
            "title": title,
            "detail": detail,
            "status": status,
            "actor": actor,
            # the layout's log-out form needs the session's token
            "csrf": csrf_token(state.secret, token) if actor is not None and token else "",
        },
        status_code=status,
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(errors.FacetraceError)
    async def domain_error(request: Request, exc: errors.FacetraceError) -> Response:
        status, title = classify(exc)
        headers = {}
        if isinstance(exc, errors.RateLimited | errors.Busy):
            headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, errors.InferenceUnavailable):
            headers["Retry-After"] = "5"  # the workers restart within seconds
        if is_api(request):
            extra: dict[str, Any] = {}
            if isinstance(exc, errors.LowQualityFace):
                extra = {"quality": exc.quality, "minimum": exc.minimum, "reasons": exc.reasons}
            api_resp = problem(request, status, title, str(exc), **extra)
            api_resp.headers.update(headers)
            return api_resp
        if isinstance(exc, errors.PasswordChangeRequired):  # the page to change it
            return RedirectResponse("/account?msg=" + quote(str(exc)), status_code=303)
        page_resp = _html(request, status, title, str(exc))
        page_resp.headers.update(headers)
        return page_resp

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())[1:]), "message": e.get("msg")}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid input"
        if is_api(request):
            return problem(request, 422, "Invalid request", detail, errors=fields)
        return _html(request, 422, "Invalid request", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if is_api(request):
            return problem(request, exc.status_code, str(exc.detail), str(exc.detail))
        await note_signed_in(request, request.app.state.service)
        return _html(request, exc.status_code, str(exc.detail), str(exc.detail))

    async def database_down(request: Request, exc: Exception) -> Response:
        # down, unreachable, locked past the busy timeout, read-only: the service's
        # fault and temporary, so a 503 (the driver's reason goes to the log only)
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            unavailable_reason(exc),
        )
        return _unavailable(request, "Database unavailable", "the database is unavailable")

    for cls in UNAVAILABLE:
        app.add_exception_handler(cls, database_down)

    @app.exception_handler(OSError)
    async def storage_error(request: Request, exc: OSError) -> Response:
        if exc.errno not in STORAGE_ERRNOS:
            raise exc  # a bug: ErrorBoundary answers 500
        log.warning("storage unavailable on %s %s: %s", request.method, request.url.path, exc)
        return _unavailable(request, "Storage unavailable", "the data directory cannot be written")

    app.add_middleware(ErrorBoundary)


STORAGE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM}
"""File system errors that mean the data directory cannot take writes (a 503)."""


def _unavailable(request: Request, title: str, what: str) -> Response:
    detail = f"{what}; try again shortly (see /readyz)"
    response = (
        problem(request, 503, title, detail)
        if is_api(request)
        else _html(request, 503, title, detail)
    )
    response.headers["Retry-After"] = "5"
    return response


class ErrorBoundary:
    """Answers an unexpected error itself (500, problem+json or the error page, logged).

    Starlette's own last-resort handler re-raises after answering, and the server then
    closes the keep-alive connection, so the client's next request fails too. Installed
    inside the other middleware, so the answer still carries the security headers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception:
            if started:  # half an answer cannot be mended: let the server close it
                raise
            request = Request(scope)
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = _internal_error(request)
            await response(scope, receive, send)


def _internal_error(request: Request) -> Response:
    detail = "an internal error occurred; it has been logged"
    if not is_api(request):
        try:
            return _html(request, 500, "Internal error", detail)
        except Exception:  # no templates (the app did not start): plain problem+json
            log.exception("could not render the error page")
    return problem(request, 500, "Internal error", detail)

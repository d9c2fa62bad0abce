"""One place that turns domain errors into HTTP answers: RFC 7807 problem+json for the
API, an HTML page (or a redirect to the login page) for the browser. Never a traceback."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from facetrace import errors

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
    (errors.RateLimited, 429, "Too many requests"),
]


def classify(exc: Exception) -> tuple[int, str]:
    """HTTP status and title for a domain error."""
    for cls, status, title in STATUS:
        if isinstance(exc, cls):
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
    if status == 401:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    templates = request.app.state.service.templates
    return templates.TemplateResponse(
        request,
        "error.html",
        {"title": title, "detail": detail, "status": status},
        status_code=status,
    )


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(errors.FacetraceError)
    async def domain_error(request: Request, exc: errors.FacetraceError) -> Response:
        status, title = classify(exc)
        headers = {}
        if isinstance(exc, errors.RateLimited):
            headers["Retry-After"] = str(exc.retry_after)
        if is_api(request):
            extra: dict[str, Any] = {}
            if isinstance(exc, errors.LowQualityFace):
                extra = {"quality": exc.quality, "minimum": exc.minimum, "reasons": exc.reasons}
            api_resp = problem(request, status, title, str(exc), **extra)
            api_resp.headers.update(headers)
            return api_resp
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
        return _html(request, exc.status_code, str(exc.detail), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        detail = "an internal error occurred; it has been logged"
        if is_api(request):
            return problem(request, 500, "Internal error", detail)
        return _html(request, 500, "Internal error", detail)

"""Shared request dependencies as ``Annotated`` aliases: state, database session, actor."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from sqlalchemy.orm import Session

from facetrace.errors import (
    AuthenticationFailed,
    InvalidRequest,
    PasswordChangeRequired,
    PermissionDenied,
)
from facetrace.server.proxies import client_address
from facetrace.server.ratelimit import ClientLimits
from facetrace.server.state import ServiceState
from facetrace.service import audit, imports, searches
from facetrace.service.accounts import (
    Actor,
    Perm,
    actor_of,
    api_key_user,
    check_csrf,
    require,
    session_user,
)
from facetrace.store.service_models import Probe

log = logging.getLogger(__name__)

SESSION_COOKIE = "ft_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def _refusal(request: Request, exc: BaseException) -> tuple[str, dict[str, object]] | None:
    """The audit entry for a refused request by a known user: every 403 and 422 (the
    service notes 404s on another department's objects itself), else None."""
    actor = getattr(request.state, "actor", None)
    if not isinstance(actor, Actor):
        return None
    if isinstance(exc, PermissionDenied):
        status = 403
    elif isinstance(exc, InvalidRequest | RequestValidationError):
        status = 422
    else:
        return None
    return actor.username, {
        "status": status,
        "method": request.method,
        "path": request.url.path[:300],
        "error": type(exc).__name__,
    }


def get_db(request: Request, state: State) -> Iterator[Session]:
    """A session for the request: committed when the request succeeds, rolled back when
    it raises (so a refused action leaves no data behind; the refusal itself is then
    audited in a transaction of its own). Its transaction starts at the first
    statement; on SQLite that takes the write lock, so slow engine work is done before
    it or after a ``commit`` (see :func:`facetrace.service.searches.search_probe`)."""
    session = state.sessions()
    try:
        yield session
        session.commit()
    except BaseException as exc:
        session.rollback()
        refusal = _refusal(request, exc)
        if refusal is not None and not audit.has_refusals(session):
            audit.note_refusal(session, actor=refusal[0], target="request", detail=refusal[1])
        try:
            audit.record_refusals(session)
        except Exception:  # never hide the refusal's own answer behind an audit failure
            log.exception("could not audit a refused request")
            session.rollback()
        raise
    finally:
        session.close()


Db = Annotated[Session, Depends(get_db)]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


def _resolve(state: ServiceState, key: str | None, token: str | None) -> Actor:
    """The actor behind an API key or a session token, in a short transaction of its own."""
    with state.sessions.begin() as db:
        if key:
            return actor_of(api_key_user(db, key=key))
        assert token is not None
        return actor_of(session_user(db, secret=state.secret, token=token))


async def get_actor(request: Request, state: State) -> Actor:
    """The user behind an API key or a session cookie. Cookie-authenticated writes must
    carry the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``);
    API keys are not sent by browsers on their own, so they need none."""
    key = _bearer(request)
    token = request.cookies.get(SESSION_COOKIE)
    if not key and not token:
        raise AuthenticationFailed("please log in")
    # Blocking database work goes to a worker thread: on the event loop a wait for
    # SQLite's write lock would stall every other request, including the lock holder.
    actor = await run_in_threadpool(_resolve, state, key, token)
    if request.method in UNSAFE:
        presented = request.headers.get("x-csrf-token")
        if presented is None and request.headers.get("content-type", "").startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            presented = value if isinstance(value, str) else None
        if key is None and token is not None:
            check_csrf(state.secret, token, presented)
    request.state.session_token = token
    request.state.actor = actor
    if actor.must_change_password and (request.method, request.url.path) not in ONE_TIME_ALLOWED:
        raise PasswordChangeRequired(
            "your password is a one-time password set by an administrator: change it on "
            "the Account page (/account) before doing anything else"
        )
    return actor


CurrentActor = Annotated[Actor, Depends(get_actor)]


async def note_signed_in(request: Request, state: ServiceState) -> None:
    """Note the session cookie's user on the request (as :func:`get_actor` does) for a
    page whose route never asked for one (a mistyped address: its 404 page shows the
    normal menu). Best effort and read-only: no cookie, an ended session or a database
    that cannot answer leaves the request without a user."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token or getattr(request.state, "actor", None) is not None:
        return
    try:
        actor = await run_in_threadpool(_resolve, state, None, token)
    except Exception:  # the error page is being drawn already: never a second error
        log.debug("no signed-in user for the error page", exc_info=True)
        return
    request.state.session_token = token
    request.state.actor = actor


#: what an account with a one-time password may do: change it, see the page for it, leave
ONE_TIME_ALLOWED = {("GET", "/account"), ("POST", "/account/password"), ("POST", "/logout")}


def get_limits(request: Request, state: State) -> ClientLimits:
    """The request's limits on model runs and searches: per account and per client
    address (server/proxies.py decides the address)."""
    return state.search_limits(client_address(request))


Limits = Annotated[ClientLimits, Depends(get_limits)]


def get_searcher(state: State) -> searches.Searcher:
    """What the request's searches run on (the gallery, the probe analyser, the search
    settings); a plain function, so FastAPI runs it on a worker thread and a gallery
    still opening never holds up the event loop."""
    return state.searcher()


Searching = Annotated[searches.Searcher, Depends(get_searcher)]


async def read_upload(upload: UploadFile, *, limit: int, what: str = "file") -> bytes:
    """The upload's bytes, refusing more than ``limit`` bytes without reading them all."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InvalidRequest(f"the {what} is larger than the limit of {limit / 1e6:.0f} MB")
    if not data:
        raise InvalidRequest(f"the {what} is empty")
    return data


async def probe_from_upload(
    state: ServiceState,
    db: Session,
    *,
    actor: Actor,
    searcher: searches.Searcher,
    case_id: int,
    upload: UploadFile,
    limiter: searches.Limiter,
    keep_without_faces: bool = False,
    detector: str | None = None,
) -> Probe:
    """Read an uploaded probe photo (refused before reading when the actor may not
    search) and keep it with its case, with the faces found in it, in a worker thread
    (a photo without a face is kept only with ``keep_without_faces``, to draw one)."""
    require(actor, Perm.SEARCH)
    data = await read_upload(upload, limit=state.max_upload, what="photo")
    return await run_in_threadpool(
        searches.store_probe,
        db,
        actor=actor,
        case_id=case_id,
        data=data,
        filename=upload.filename or "",
        searcher=searcher,
        limiter=limiter,
        keep_without_faces=keep_without_faces,
        detector=detector,
    )


async def import_from_upload(
    state: ServiceState, db: Session, *, actor: Actor, collection_id: int, upload: UploadFile
) -> imports.ImportJob:
    """Queue an uploaded zip or manifest as an import job (refused before reading when
    the actor may not manage collections), in a worker thread; the job starts once its
    row has committed."""
    require(actor, Perm.COLLECTIONS_MANAGE)
    job = await run_in_threadpool(
        imports.queue_import,
        db,
        actor=actor,
        collection_id=collection_id,
        filename=upload.filename or "",
        upload=upload.file,
        jobs=state.imports,
        limits=state.import_limits,
    )
    await run_in_threadpool(db.commit)
    state.imports.submit(job.id)
    return job

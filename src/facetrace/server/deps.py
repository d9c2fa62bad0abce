"""Shared request dependencies as ``Annotated`` aliases: state, database session, actor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from facetrace.accounts import (
    Actor,
    actor_of,
    api_key_user,
    check_csrf,
    session_user,
)
from facetrace.api.state import ServiceState
from facetrace.errors import AuthenticationFailed, InvalidRequest

SESSION_COOKIE = "ft_session"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def get_state(request: Request) -> ServiceState:
    """The app's :class:`ServiceState`."""
    state: ServiceState = request.app.state.service
    return state


State = Annotated[ServiceState, Depends(get_state)]


def get_db(state: State) -> Iterator[Session]:
    """A session for the request: committed when the request succeeds, rolled back when
    it raises (so a refused action leaves neither data nor audit entry behind). Its
    transaction starts at the first statement; on SQLite that takes the write lock, so
    slow engine work is done before it or after a ``commit`` (see ``api.actions``)."""
    session = state.sessions()
    try:
        yield session
        session.commit()
    except BaseException:
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
    return actor


CurrentActor = Annotated[Actor, Depends(get_actor)]


async def read_upload(upload: UploadFile, *, limit: int, what: str = "file") -> bytes:
    """The upload's bytes, refusing more than ``limit`` bytes without reading them all."""
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise InvalidRequest(f"the {what} is larger than the limit of {limit / 1e6:.0f} MB")
    if not data:
        raise InvalidRequest(f"the {what} is empty")
    return data

"""Log in, log out, home page, own account (password and API keys)."""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from facetrace.errors import AuthenticationFailed, InvalidRequest, RateLimited
from facetrace.fields import Id
from facetrace.server.deps import SESSION_COOKIE, CurrentActor, Db, State
from facetrace.server.proxies import client_address, is_https
from facetrace.service import accounts, audit
from facetrace.web.render import back, page

router = APIRouter()


def _safe_next(value: str) -> str:
    # Only local paths, so the login form cannot bounce users to another site.
    return value if value.startswith("/") and not value.startswith("//") else "/"


LOGIN_COOKIE = "ft_login"
ONE_TIME = (
    "Your password was set by an administrator and works once: choose your own password "
    "below to continue."
)


def _secure(request: Request) -> bool:
    """Cookies are ``Secure`` when configured so, and whenever the client came over HTTPS
    (the request's scheme, or a trusted proxy's X-Forwarded-Proto)."""
    settings = request.app.state.service.settings.service
    return bool(settings.secure_cookies) or is_https(request)


def _login_page(request: Request, next: str, **extra: Any) -> HTMLResponse:
    # Double-submit token against login CSRF (another site logging a user in as someone else).
    token = secrets.token_urlsafe(24)
    resp = page(request, "login.html", None, next=_safe_next(next), login_token=token, **extra)
    resp.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        max_age=3600,
        secure=_secure(request),
    )
    return resp


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    """The login page."""
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    state: State,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    next: Annotated[str, Form()] = "/",
    login_token: Annotated[str, Form()] = "",
) -> Response:
    """Check the password and start a session.

    Every POST counts against the client address's window first (token-less ones too:
    they cost nothing else); a login that succeeds gives its count back, so colleagues
    behind one address are held back only by failures. Only a real password check
    counts against the account, and it is met with a back-off that grows with the
    failures (server/ratelimit.py ``LoginThrottle``), never with a lock that a stranger
    naming the user could set off.
    """
    client = client_address(request)
    wait = state.login_limiter.hit(f"ip:{client}")
    if wait is not None:
        raise RateLimited(wait)
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie, login_token):
        return _login_page(
            request, next, error="The login form expired; please try again.", status_code=400
        )
    account = username.strip().lower()[:100]
    wait = state.login_throttle.wait(account, client)
    if wait is not None:
        raise RateLimited(wait)
    try:
        with state.sessions.begin() as db:
            user = accounts.authenticate(db, username=username, password=password)
            one_time = user.must_change_password
            token = accounts.open_session(
                db, secret=state.secret, user=user, hours=state.settings.service.session_hours
            )
    except AuthenticationFailed as exc:
        state.login_throttle.failed(account, client)
        with state.sessions.begin() as db:  # the failure is audited even though login fails
            audit.append(
                db,
                actor=account or "-",
                action=audit.Action.LOGIN_FAILED,
                target=f"ip:{client}",
            )
        return _login_page(request, next, error=str(exc), status_code=401)
    state.login_throttle.succeeded(account, client)
    state.login_limiter.refund(f"ip:{client}")
    target = "/account?msg=" + quote(ONE_TIME) if one_time else _safe_next(next)
    resp = RedirectResponse(target, status_code=303)
    resp.delete_cookie(LOGIN_COOKIE)
    resp.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        max_age=int(state.settings.service.session_hours * 3600),
    )
    return resp


@router.post("/logout")
def logout(request: Request, actor: CurrentActor, db: Db, state: State) -> Response:
    """End the session."""
    accounts.close_session(db, secret=state.secret, token=request.state.session_token, actor=actor)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE)
    return resp


@router.get("/", response_class=HTMLResponse)
def home(request: Request, actor: CurrentActor) -> HTMLResponse:
    """What the actor can do, by role."""
    return page(request, "home.html", actor)


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """Own account: password change and API keys."""
    keys = accounts.list_api_keys(db, actor=actor)
    return page(request, "account.html", actor, keys=keys)


@router.post("/account/keys", response_class=HTMLResponse)
def new_key(
    request: Request, actor: CurrentActor, db: Db, name: Annotated[str, Form()]
) -> HTMLResponse:
    """Create an API key and show it once."""
    _, key = accounts.create_api_key(db, actor=actor, name=name)
    keys = accounts.list_api_keys(db, actor=actor)
    return page(request, "account.html", actor, keys=keys, new_key=key)


@router.post("/account/keys/{key_id}/revoke")
def revoke_key(key_id: Id, actor: CurrentActor, db: Db) -> Response:
    """Revoke an API key."""
    accounts.revoke_api_key(db, actor=actor, key_id=key_id)
    return back("/account", "Key revoked.")


@router.post("/account/password")
def change_password(
    actor: CurrentActor,
    db: Db,
    current: Annotated[str, Form()],
    new: Annotated[str, Form()],
) -> Response:
    """Change the own password (ends all sessions); a refused one is said on the page."""
    try:
        accounts.change_password(db, actor=actor, old=current, new=new)
    except InvalidRequest as exc:  # nothing was changed
        return back("/account#password", f"Password not changed: {exc}.")
    return back("/login", "Password changed; please log in again.")

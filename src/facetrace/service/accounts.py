"""Users, roles, departments, passwords, API keys and login sessions.

Who may do what is one explicit table, :data:`PERMISSIONS`; every service function
checks it through :func:`require`. A user may hold several roles; their permissions
add up. Department scoping (investigators see their department's cases) is applied by
the service functions on top of this table.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrace.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from facetrace.service import audit
from facetrace.store.service_models import ApiKey, Department, LoginSession, User, as_utc

log = logging.getLogger(__name__)


class Role(StrEnum):
    """The five roles of the issue."""

    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    INVESTIGATOR = "investigator"
    REVIEWER = "reviewer"
    AUDITOR = "auditor"


class Perm(StrEnum):
    """Actions a role may be allowed."""

    CASE_READ = "case.read"
    CASE_CREATE = "case.create"
    SEARCH = "search.run"
    RESULTS_VIEW = "results.view"
    REVIEW = "review.record"
    IDENTIFY = "identification.record"
    NOTIFY = "notification.record"
    EXPORT = "notification.export"
    REPORTS = "reports.view"
    AUDIT_READ = "audit.read"
    USERS_MANAGE = "users.manage"
    COLLECTIONS_MANAGE = "collections.manage"
    GALLERY_BROWSE = "gallery.browse"
    CASE_ASSIGN = "case.assign"
    CASE_CLOSE = "case.close"


PERM_TEXT: dict[Perm, str] = {
    Perm.CASE_READ: "see cases",
    Perm.CASE_CREATE: "open cases",
    Perm.SEARCH: "run face searches",
    Perm.RESULTS_VIEW: "see search results",
    Perm.REVIEW: "review search results",
    Perm.IDENTIFY: "record identifications",
    Perm.NOTIFY: "record next of kin and notifications",
    Perm.EXPORT: "export case records",
    Perm.REPORTS: "see supervisors' reports",
    Perm.AUDIT_READ: "read the audit log",
    Perm.USERS_MANAGE: "manage user accounts",
    Perm.COLLECTIONS_MANAGE: "manage collections and imports",
    Perm.GALLERY_BROWSE: "browse the reference photos",
    Perm.CASE_ASSIGN: "assign cases to people",
    Perm.CASE_CLOSE: "close or reopen cases",
}
"""Each permission as the action it allows, for messages people read."""

PERMISSIONS: dict[Role, frozenset[Perm]] = {
    Role.ADMIN: frozenset({Perm.USERS_MANAGE, Perm.COLLECTIONS_MANAGE, Perm.GALLERY_BROWSE}),
    Role.SUPERVISOR: frozenset({Perm.REPORTS, Perm.CASE_READ, Perm.CASE_ASSIGN, Perm.CASE_CLOSE}),
    Role.INVESTIGATOR: frozenset(
        {
            Perm.CASE_READ,
            Perm.CASE_CREATE,
            Perm.CASE_CLOSE,
            Perm.SEARCH,
            Perm.RESULTS_VIEW,
            Perm.IDENTIFY,
            Perm.NOTIFY,
            Perm.EXPORT,
            Perm.GALLERY_BROWSE,
        }
    ),
    Role.REVIEWER: frozenset(
        {Perm.CASE_READ, Perm.RESULTS_VIEW, Perm.REVIEW, Perm.IDENTIFY, Perm.GALLERY_BROWSE}
    ),
    Role.AUDITOR: frozenset({Perm.AUDIT_READ}),
}
"""Role -> allowed actions. Department scoping comes on top (see module docstring)."""

#: Roles whose work is scoped to a department, so such a user must belong to one.
DEPARTMENT_ROLES = frozenset({Role.SUPERVISOR, Role.INVESTIGATOR, Role.REVIEWER})

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")
MIN_PASSWORD = 10
API_KEY_PREFIX = "ft_"


@dataclass(frozen=True, slots=True)
class Actor:
    """The authenticated user a request acts as (plain values, safe to pass around)."""

    id: int
    username: str
    roles: frozenset[Role]
    department_id: int | None
    department: str
    must_change_password: bool = False

    def can(self, perm: Perm) -> bool:
        """True when any of the actor's roles allows ``perm``."""
        return any(perm in PERMISSIONS[r] for r in self.roles)

    def has(self, role: Role) -> bool:
        """True when the actor holds ``role``."""
        return role in self.roles


SYSTEM = Actor(id=0, username="system", roles=frozenset(), department_id=None, department="")
"""The actor of shell commands run by the operator (``facetrace users``, ``cases purge``)."""


def require(actor: Actor, perm: Perm) -> None:
    """Raise :class:`PermissionDenied` unless ``actor`` may do ``perm``."""
    if actor is not SYSTEM and not actor.can(perm):
        roles = ", ".join(sorted(actor.roles)) or "none"
        raise PermissionDenied(
            f"your account's roles ({roles}) do not allow you to {PERM_TEXT[perm]}; "
            "ask an administrator if you need to"
        )


def parse_roles(value: str | list[str] | tuple[str, ...]) -> frozenset[Role]:
    """Roles from ``"investigator,reviewer"`` or a list; raises InvalidRequest on unknown."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [v.strip().lower() for v in items if v.strip()]
    try:
        roles = frozenset(Role(n) for n in names)
    except ValueError as exc:
        raise InvalidRequest(
            f"unknown role in {names!r}; roles are {', '.join(r.value for r in Role)}"
        ) from exc
    if not roles:
        raise InvalidRequest("a user needs at least one role")
    return roles


def _roles_text(roles: frozenset[Role]) -> str:
    return ",".join(sorted(r.value for r in roles))


def actor_of(user: User) -> Actor:
    """The :class:`Actor` for a user row."""
    return Actor(
        id=user.id,
        username=user.username,
        roles=parse_roles(user.roles),
        department_id=user.department_id,
        department=user.department.name if user.department else "",
        must_change_password=bool(user.must_change_password),
    )


# --- passwords ------------------------------------------------------------------------


@functools.cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults follow RFC 9106's low-memory recommendation.
    return PasswordHasher()


# Passwords refused whatever their length: the most common ones in published breach
# lists, and their obvious variants (checked lower-cased, digits and symbols at the end
# stripped, so "Password2024!" is refused like "password").
COMMON_PASSWORDS = frozenset(
    [
        "password",
        "passw0rd",
        "p@ssword",
        "p@ssw0rd",
        "password1",
        "qwerty",
        "qwertyuiop",
        "qwertyuiop123",
        "asdfghjkl",
        "zxcvbnm",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "letmein",
        "welcome",
        "welcome1",
        "iloveyou",
        "admin",
        "administrator",
        "root",
        "changeme",
        "default",
        "secret",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "dragon",
        "monkey",
        "master",
        "shadow",
        "superman",
        "batman",
        "trustno1",
        "starwars",
        "whatever",
        "freedom",
        "michael",
        "jennifer",
        "computer",
        "internet",
        "facetrace",
        "forensics",
        "investigator",
        "police",
        "polizei",
        "gendarmerie",
        "abcdefghij",
        "abcdefghijk",
        "abc123abc123",
        "123456789a",
    ]
)
MAX_PASSWORD = 1024


def password_problem(password: str, *, username: str = "") -> str | None:
    """Why ``password`` is refused by the policy, or None: at least MIN_PASSWORD
    characters, not a common password (:data:`COMMON_PASSWORDS` or a variant), not the
    user name, not one character or a plain run of digits or letters repeated."""
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"a password has at most {MAX_PASSWORD} characters"
    lowered = password.lower()
    stem = lowered.rstrip("0123456789!@#$%^&*()-_=+.,;:?~ ")
    if lowered in COMMON_PASSWORDS or stem in COMMON_PASSWORDS:
        return "this password is one of the most common ones; choose another"
    if username and username.lower() in lowered:
        return "a password may not contain the user name"
    if len(set(lowered)) <= 2 or (lowered.isdigit() and len(set(lowered)) <= 4):
        return "a password needs more than a few repeated characters"
    if lowered in "0123456789012345678901234567890" or lowered in "abcdefghijklmnopqrstuvwxyz":
        return "a password may not be a plain run of digits or letters"
    return None


def check_password(password: str, *, username: str = "") -> None:
    """Raise InvalidRequest when ``password`` breaks the policy (:func:`password_problem`)."""
    problem = password_problem(password, username=username)
    if problem is not None:
        raise InvalidRequest(problem)


def hash_password(password: str) -> str:
    """An argon2id hash of ``password``; refuses passwords shorter than MIN_PASSWORD."""
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher().hash(password)


def generate_password() -> str:
    """A random password for new accounts, shown once."""
    return secrets.token_urlsafe(15)


# --- departments and users ------------------------------------------------------------


def find_department(session: Session, *, name: str, create: bool = True) -> Department:
    """The department called ``name`` (case and spacing aside, see
    :mod:`facetrace.service.departments`), created (by the operator's shell) when
    missing and ``create`` is true; NotFound otherwise."""
    from facetrace.service import departments

    if not name.strip():
        raise InvalidRequest("a department needs a name")
    row = departments.find(session, name=name)
    if row is None:
        if not create:
            raise NotFound(f"no department called {name.strip()!r}")
        row = departments.create_department(session, actor=SYSTEM, name=name)
    return row


def _assigned_department(session: Session, *, actor: Actor, name: str | None) -> Department | None:
    """The department a user is assigned to: one of the managed departments (case and
    spacing aside); the operator's shell (SYSTEM) may also name a new one, which is
    created and audited."""
    from facetrace.service import departments

    if not (name or "").strip():
        return None
    assert name is not None
    if actor is SYSTEM:
        return find_department(session, name=name, create=True)
    return departments.require_department(session, name=name)


def list_departments(session: Session) -> list[Department]:
    """All departments by name."""
    from facetrace.service import departments

    return departments.list_departments(session)


def create_user(
    session: Session,
    *,
    actor: Actor,
    username: str,
    password: str,
    roles: frozenset[Role],
    department: str | None = None,
    full_name: str = "",
    one_time: bool = False,
) -> User:
    """Create an account (admin only). Department-scoped roles need a department, one of
    the managed departments. ``one_time``: the password was made for the user by
    someone else (shown once), so it must be changed at the first login. A password an
    administrator chose must meet the policy (:func:`password_problem`)."""
    require(actor, Perm.USERS_MANAGE)
    username = username.strip().lower()
    if not _USERNAME.match(username):
        raise InvalidRequest(
            "a user name is 2-63 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    if roles & DEPARTMENT_ROLES and not (department or "").strip():
        raise InvalidRequest("investigators, reviewers and supervisors need a department")
    if session.execute(select(User.id).where(User.username == username)).first():
        raise Conflict(f"user {username!r} exists already")
    if actor is not SYSTEM:  # the operator's shell generates its passwords
        check_password(password, username=username)
    dept = _assigned_department(session, actor=actor, name=department)
    user = User(
        username=username,
        full_name=full_name.strip(),
        password_hash=hash_password(password),
        roles=_roles_text(roles),
        department_id=dept.id if dept else None,
        department=dept,
        active=True,
        must_change_password=one_time,
    )
    session.add(user)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"user {username!r} exists already") from exc
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"user:{username}",
        detail={
            "op": "user_add",
            "roles": sorted(r.value for r in roles),
            "department": dept.name if dept else None,
        },
    )
    log.info("user %s created by %s", username, actor.username)
    return user


def get_user(session: Session, *, username: str) -> User:
    """The user called ``username``; raises NotFound."""
    user = session.execute(
        select(User).where(User.username == username.strip().lower())
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user called {username!r}")
    return user


def list_users(session: Session, *, actor: Actor) -> list[User]:
    """All accounts (admin only)."""
    require(actor, Perm.USERS_MANAGE)
    return list(session.execute(select(User).order_by(User.username)).scalars())


def set_active(session: Session, *, actor: Actor, username: str, active: bool) -> User:
    """Disable or re-enable an account; disabling also ends its sessions and keys."""
    require(actor, Perm.USERS_MANAGE)
    user = get_user(session, username=username)
    if not active and user.id == actor.id:
        raise InvalidRequest("you cannot disable your own account")
    user.active = active
    if not active:
        session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
        for key in session.execute(select(ApiKey).where(ApiKey.user_id == user.id)).scalars():
            key.revoked_at = key.revoked_at or datetime.now(UTC)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"user:{user.username}",
        detail={"op": "user_enable" if active else "user_disable"},
    )
    return user


def set_roles(
    session: Session,
    *,
    actor: Actor,
    username: str,
    roles: frozenset[Role],
    department: str | None,
) -> User:
    """Change a user's roles and department (admin only)."""
    require(actor, Perm.USERS_MANAGE)
    user = get_user(session, username=username)
    if roles & DEPARTMENT_ROLES and not (department or "").strip():
        raise InvalidRequest("investigators, reviewers and supervisors need a department")
    dept = _assigned_department(session, actor=actor, name=department)
    if user.id == actor.id and Role.ADMIN not in roles:
        raise InvalidRequest("you cannot remove your own admin role")
    user.roles = _roles_text(roles)
    user.department_id = dept.id if dept else None
    user.department = dept
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"user:{user.username}",
        detail={
            "op": "user_roles",
            "roles": sorted(r.value for r in roles),
            "department": dept.name if dept else None,
        },
    )
    return user


def user_count(session: Session) -> int:
    """Number of accounts (zero on a fresh data directory)."""
    return int(session.execute(select(func.count(User.id))).scalar_one())


def bootstrap_admin(session: Session) -> str | None:
    """On an empty user table, create ``admin`` and return its one-time password;
    otherwise return None."""
    if user_count(session):
        return None
    password = generate_password()
    create_user(
        session,
        actor=SYSTEM,
        username="admin",
        password=password,
        roles=frozenset({Role.ADMIN}),
        full_name="First administrator",
        one_time=True,
    )
    return password


def change_password(session: Session, *, actor: Actor, old: str, new: str) -> None:
    """Change the actor's own password after checking the old one (ends its sessions);
    the new one must meet the policy and differ from the old. Clears a one-time
    password's must-change mark."""
    user = session.get(User, actor.id)
    if user is None or not _verify(user.password_hash, old):
        raise InvalidRequest("the current password is wrong")
    if new == old:
        raise InvalidRequest("the new password must differ from the current one")
    check_password(new, username=user.username)
    _set_password(session, actor, user, new, one_time=False, op="password_change")


def _set_password(
    session: Session, actor: Actor, user: User, password: str, *, one_time: bool, op: str
) -> None:
    """Store a new password hash, end the user's sessions (API keys stay) and audit it."""
    user.password_hash = hash_password(password)
    user.must_change_password = one_time
    session.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"user:{user.username}",
        detail={"op": op},
    )


def reset_password(session: Session, *, actor: Actor, username: str) -> str:
    """An administrator's reset of another user's password: a new one-time password
    (returned, to hand over; shown once), to be changed at the next login; the user's
    sessions end (API keys stay). Audited."""
    require(actor, Perm.USERS_MANAGE)
    user = get_user(session, username=username)
    if user.id == actor.id:
        raise InvalidRequest("change your own password on the Account page")
    password = generate_password()
    _set_password(session, actor, user, password, one_time=True, op="password_reset")
    return password


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, checked when the user does not exist so that a login
    for an unknown name takes as long as one with a wrong password. Made on the first
    login, not at import: an argon2 hash costs a fifth of a second."""
    return _hasher().hash(secrets.token_urlsafe(16))


def authenticate(session: Session, *, username: str, password: str) -> User:
    """The active user with these credentials; raises AuthenticationFailed otherwise (the
    message never says which part was wrong; the caller audits the failure in a
    transaction of its own, since this one is rolled back)."""
    name = username.strip().lower()
    user = session.execute(select(User).where(User.username == name)).scalar_one_or_none()
    ok = _verify(user.password_hash if user else _dummy_hash(), password)
    if user is None or not ok or not user.active:
        raise AuthenticationFailed("unknown user name or wrong password")
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(password)
    user.last_login_at = datetime.now(UTC)
    return user


# --- login sessions -------------------------------------------------------------------


def load_secret(data_dir: Path) -> bytes:
    """The installation's secret key, created (mode 0600) on first start."""
    path = data_dir / "service-secret"
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(key.hex())
    tmp.chmod(0o600)
    tmp.replace(path)
    log.info("created the service secret at %s", path)
    return key


def _keyed(secret: bytes, token: str, purpose: str) -> str:
    return hmac.new(secret, f"{purpose}:{token}".encode(), hashlib.sha256).hexdigest()


def csrf_token(secret: bytes, session_token: str) -> str:
    """The CSRF token bound to a session: forms carry it, POSTs must echo it."""
    return _keyed(secret, session_token, "csrf")


def check_csrf(secret: bytes, session_token: str, presented: str | None) -> None:
    """Raise PermissionDenied unless ``presented`` is the session's CSRF token."""
    if not presented or not hmac.compare_digest(csrf_token(secret, session_token), presented):
        raise PermissionDenied("the form is stale or was not sent by facetrace (CSRF check)")


def open_session(session: Session, *, secret: bytes, user: User, hours: float) -> str:
    """Start a login session for ``user``; returns the cookie token. Audits the login."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session.execute(delete(LoginSession).where(LoginSession.expires_at < now))
    session.add(
        LoginSession(
            token_hash=_keyed(secret, token, "session"),
            user_id=user.id,
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    audit.append(
        session,
        actor=user.username,
        action=audit.Action.LOGIN,
        target=f"user:{user.username}",
        detail={"via": "password"},
    )
    return token


def session_user(session: Session, *, secret: bytes, token: str) -> User:
    """The active user of a live session token; raises AuthenticationFailed."""
    row = session.execute(
        select(LoginSession).where(LoginSession.token_hash == _keyed(secret, token, "session"))
    ).scalar_one_or_none()
    if row is None or as_utc(row.expires_at) < datetime.now(UTC):
        raise AuthenticationFailed("your session has ended; please log in again")
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise AuthenticationFailed("this account is disabled")
    return user


def close_session(session: Session, *, secret: bytes, token: str, actor: Actor) -> None:
    """Log out: delete the session row and audit it."""
    session.execute(
        delete(LoginSession).where(LoginSession.token_hash == _keyed(secret, token, "session"))
    )
    audit.append(
        session, actor=actor.username, action=audit.Action.LOGOUT, target=f"user:{actor.username}"
    )


# --- API keys -------------------------------------------------------------------------


def create_api_key(session: Session, *, actor: Actor, name: str) -> tuple[ApiKey, str]:
    """A new key for the actor's own account; returns the row and the key text, which
    is shown once and never stored."""
    if actor is SYSTEM:
        raise InvalidRequest("API keys belong to a user")
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        user_id=actor.id,
        name=name.strip()[:200],
        prefix=key[:12],
        key_hash=hashlib.sha256(key.encode()).hexdigest(),
    )
    session.add(row)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"api_key:{row.id}",
        detail={"op": "api_key_create", "name": row.name},
    )
    return row, key


def list_api_keys(session: Session, *, actor: Actor) -> list[ApiKey]:
    """The actor's own keys, newest first."""
    return list(
        session.execute(
            select(ApiKey).where(ApiKey.user_id == actor.id).order_by(ApiKey.id.desc())
        ).scalars()
    )


def revoke_api_key(session: Session, *, actor: Actor, key_id: int) -> None:
    """Revoke one of the actor's keys (admins may revoke anyone's)."""
    row = session.get(ApiKey, key_id)
    if row is None or (row.user_id != actor.id and not actor.can(Perm.USERS_MANAGE)):
        raise NotFound(f"no API key {key_id}")
    row.revoked_at = row.revoked_at or datetime.now(UTC)
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"api_key:{row.id}",
        detail={"op": "api_key_revoke"},
    )


def api_key_user(session: Session, *, key: str) -> User:
    """The active user owning an unrevoked key; raises AuthenticationFailed."""
    if not key.startswith(API_KEY_PREFIX):
        raise AuthenticationFailed("not a facetrace API key")
    row = session.execute(
        select(ApiKey).where(ApiKey.key_hash == hashlib.sha256(key.encode()).hexdigest())
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        raise AuthenticationFailed("unknown or revoked API key")
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        raise AuthenticationFailed("this account is disabled")
    row.last_used_at = datetime.now(UTC)
    return user

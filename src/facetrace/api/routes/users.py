"""Accounts, for administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from facetrace.server.deps import CurrentActor, Db
from facetrace.service import accounts
from facetrace.store.service_models import User

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    """A new account; without a password one is generated and returned once."""

    username: str
    roles: list[str] = Field(min_length=1)
    department: str | None = None
    full_name: str = ""
    password: str | None = None


class UserOut(BaseModel):
    """The public fields of an account."""

    username: str
    full_name: str
    roles: list[str]
    department: str | None
    active: bool


class NewUserOut(UserOut):
    """A new account; ``password`` only when one was generated (shown this once)."""

    password: str | None = None


def user_json(u: User) -> dict[str, Any]:
    """The public fields of an account."""
    return {
        "username": u.username,
        "full_name": u.full_name,
        "roles": u.roles.split(","),
        "department": u.department.name if u.department else None,
        "active": u.active,
    }


@router.get("/users", response_model=list[UserOut])
def list_users(actor: CurrentActor, db: Db) -> list[dict[str, Any]]:
    """All accounts."""
    return [user_json(u) for u in accounts.list_users(db, actor=actor)]


@router.post("/users", status_code=201, response_model=NewUserOut, response_model_exclude_none=True)
def add_user(body: UserIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Create an account."""
    password = body.password or accounts.generate_password()
    user = accounts.create_user(
        db,
        actor=actor,
        username=body.username,
        password=password,
        roles=accounts.parse_roles(body.roles),
        department=body.department,
        full_name=body.full_name,
    )
    out = user_json(user)
    if body.password is None:
        out["password"] = password
    return out


@router.post("/users/{username}/disable", response_model=UserOut)
def disable_user(username: str, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Disable an account, ending its sessions and keys."""
    return user_json(accounts.set_active(db, actor=actor, username=username, active=False))


@router.post("/users/{username}/enable", response_model=UserOut)
def enable_user(username: str, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Re-enable an account."""
    return user_json(accounts.set_active(db, actor=actor, username=username, active=True))

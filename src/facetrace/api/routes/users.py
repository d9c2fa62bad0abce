"""Accounts, for administrators."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from facetrace.fields import Id, Name
from facetrace.server.deps import CurrentActor, Db
from facetrace.service import accounts, departments
from facetrace.store.service_models import User

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    """A new account; without a password one is generated and returned once. Either
    way it is a one-time password, changed at the first login; ``department`` names one
    of the managed departments (``GET /departments``), case aside."""

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
        one_time=True,  # set by an administrator: the user chooses their own at login
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


class PasswordResetOut(BaseModel):
    """A new one-time password (shown this once; changed at the next login)."""

    username: str
    password: str


@router.post("/users/{username}/password-reset", response_model=PasswordResetOut)
def reset_password(username: str, actor: CurrentActor, db: Db) -> PasswordResetOut:
    """Give a user a new one-time password; their sessions end, their API keys stay."""
    password = accounts.reset_password(db, actor=actor, username=username)
    return PasswordResetOut(username=username.strip().lower(), password=password)


class DepartmentIn(BaseModel):
    """A department's name (unique whatever its case and spacing)."""

    name: Name


class DepartmentOut(BaseModel):
    """A department and what refers to it."""

    id: int
    name: str
    users: int
    cases: int
    collections: int


def _department_out(db: Db, actor: CurrentActor, department_id: int) -> DepartmentOut:
    use = next(u for u in departments.usage(db, actor=actor) if u.department.id == department_id)
    return DepartmentOut(
        id=use.department.id,
        name=use.department.name,
        users=use.users,
        cases=use.cases,
        collections=use.collections,
    )


@router.get("/departments", response_model=list[DepartmentOut], tags=["departments"])
def list_departments(actor: CurrentActor, db: Db) -> list[DepartmentOut]:
    """All departments (administrators)."""
    return [
        DepartmentOut(
            id=u.department.id,
            name=u.department.name,
            users=u.users,
            cases=u.cases,
            collections=u.collections,
        )
        for u in departments.usage(db, actor=actor)
    ]


@router.post("/departments", status_code=201, response_model=DepartmentOut, tags=["departments"])
def add_department(body: DepartmentIn, actor: CurrentActor, db: Db) -> DepartmentOut:
    """Add a department; 409 when one has this name, whatever its case."""
    row = departments.create_department(db, actor=actor, name=body.name)
    return _department_out(db, actor, row.id)


@router.patch("/departments/{department_id}", response_model=DepartmentOut, tags=["departments"])
def rename_department(
    department_id: Id, body: DepartmentIn, actor: CurrentActor, db: Db
) -> DepartmentOut:
    """Rename a department; its users, cases and collections stay with it."""
    departments.rename_department(db, actor=actor, department_id=department_id, name=body.name)
    return _department_out(db, actor, department_id)


class DeletedOut(BaseModel):
    """What was removed."""

    deleted: int


@router.delete("/departments/{department_id}", response_model=DeletedOut, tags=["departments"])
def delete_department(department_id: Id, actor: CurrentActor, db: Db) -> DeletedOut:
    """Remove a department nothing refers to; 409 saying what still does."""
    departments.delete_department(db, actor=actor, department_id=department_id)
    return DeletedOut(deleted=department_id)

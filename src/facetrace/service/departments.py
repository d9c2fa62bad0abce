"""Departments as managed records: administrators create, rename and remove them, users
are assigned from them, and a name is unique whatever its case and spacing (so
``forensics`` finds ``Forensics`` instead of silently making a second department)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import Conflict, InvalidRequest, NotFound
from facetrace.service import audit
from facetrace.service.accounts import SYSTEM, Actor, Perm, require
from facetrace.store.models import Collection
from facetrace.store.service_models import Case, Department, ImportJobRow, User

log = logging.getLogger(__name__)


def name_key(name: str) -> str:
    """The form two names are compared in: spaces collapsed, case folded.

    >>> name_key("  Forensics   Unit ") == name_key("forensics unit")
    True
    """
    return " ".join(name.split()).casefold()


def _clean(name: str) -> str:
    return " ".join(fields.check(fields.Name, name, field="department").split())


def find(session: Session, *, name: str) -> Department | None:
    """The department whose name matches ``name`` (case and spacing aside), or None."""
    key = name_key(name)
    if not key:
        return None
    return session.execute(
        select(Department).where(Department.name_key == key)
    ).scalar_one_or_none()


def require_department(session: Session, *, name: str) -> Department:
    """The department called ``name`` (case and spacing aside); InvalidRequest naming
    the departments there are when none matches."""
    row = find(session, name=name)
    if row is None:
        names = ", ".join(d.name for d in list_departments(session)) or "none yet"
        raise InvalidRequest(
            f"there is no department called {name.strip()!r} (departments: {names}); "
            "an administrator adds departments on the Departments page"
        )
    return row


def list_departments(session: Session) -> list[Department]:
    """All departments by name."""
    return list(session.execute(select(Department).order_by(Department.name_key)).scalars())


@dataclass(frozen=True)
class DepartmentUse:
    """A department and what refers to it (it can be removed only when nothing does)."""

    department: Department
    users: int
    cases: int
    collections: int

    @property
    def in_use(self) -> bool:
        return bool(self.users or self.cases or self.collections)


def _count(session: Session, column: Any, dept_id: int) -> int:
    return int(session.execute(select(func.count()).where(column == dept_id)).scalar_one())


def usage(session: Session, *, actor: Actor) -> list[DepartmentUse]:
    """Every department with its counts of users, cases and collections (admins)."""
    require(actor, Perm.USERS_MANAGE)
    return [
        DepartmentUse(
            d,
            users=_count(session, User.department_id, d.id),
            cases=_count(session, Case.department_id, d.id),
            collections=_count(session, Collection.department_id, d.id),
        )
        for d in list_departments(session)
    ]


def create_department(session: Session, *, actor: Actor, name: str) -> Department:
    """A new department (admins); Conflict when one matches the name already."""
    require(actor, Perm.USERS_MANAGE)
    clean = _clean(name)
    existing = find(session, name=clean)
    if existing is not None:
        raise Conflict(f"department {existing.name!r} exists already")
    row = Department(name=clean, name_key=name_key(clean))
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create of the same name
        raise Conflict(f"department {clean!r} exists already") from exc
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"department:{row.id}",
        detail={"op": "department_add", "name": clean},
    )
    if actor is SYSTEM:
        log.info("department %s created", clean)
    return row


def get_department(session: Session, *, department_id: int) -> Department:
    """One department; NotFound."""
    row = session.get(Department, department_id)
    if row is None:
        raise NotFound(f"no department {department_id}")
    return row


def rename_department(
    session: Session, *, actor: Actor, department_id: int, name: str
) -> Department:
    """Give a department a new name (admins); its users, cases and collections stay."""
    require(actor, Perm.USERS_MANAGE)
    row = get_department(session, department_id=department_id)
    clean = _clean(name)
    other = find(session, name=clean)
    if other is not None and other.id != row.id:
        raise Conflict(f"department {other.name!r} exists already")
    old = row.name
    row.name, row.name_key = clean, name_key(clean)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"department:{row.id}",
        detail={"op": "department_rename", "from": old, "name": clean},
    )
    return row


def delete_department(session: Session, *, actor: Actor, department_id: int) -> None:
    """Remove a department nothing refers to (admins); Conflict saying what still does."""
    require(actor, Perm.USERS_MANAGE)
    row = get_department(session, department_id=department_id)
    use = DepartmentUse(
        row,
        users=_count(session, User.department_id, row.id),
        cases=_count(session, Case.department_id, row.id),
        collections=_count(session, Collection.department_id, row.id)
        + _count(session, ImportJobRow.department_id, row.id),
    )
    if use.in_use:
        raise Conflict(
            f"department {row.name!r} still has {use.users} users, {use.cases} cases and "
            f"{use.collections} collections or imports; move them first"
        )
    name = row.name
    session.delete(row)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.ADMIN,
        target=f"department:{department_id}",
        detail={"op": "department_delete", "name": name},
    )

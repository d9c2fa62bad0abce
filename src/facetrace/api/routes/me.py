"""The caller's own account and API keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from facetrace.fields import Id
from facetrace.server.deps import CurrentActor, Db
from facetrace.service import accounts

router = APIRouter(tags=["me"])


class KeyIn(BaseModel):
    """A name for a new API key."""

    name: str = Field(min_length=1, max_length=200)


class MeOut(BaseModel):
    """The caller."""

    username: str
    roles: list[str]
    department: str | None


class NewKeyOut(BaseModel):
    """A new API key; ``key`` is shown in this answer only."""

    id: int
    name: str
    key: str


class KeyOut(BaseModel):
    """An API key without its secret part."""

    id: int
    name: str
    prefix: str
    revoked: bool


@router.get("/me", response_model=MeOut)
def me(actor: CurrentActor) -> dict[str, Any]:
    """Who the caller is: user name, roles, department."""
    return {
        "username": actor.username,
        "roles": sorted(r.value for r in actor.roles),
        "department": actor.department or None,
    }


@router.post("/me/api-keys", status_code=201, response_model=NewKeyOut)
def create_key(body: KeyIn, actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Create an API key for the caller; the key is in this answer only."""
    row, key = accounts.create_api_key(db, actor=actor, name=body.name)
    return {"id": row.id, "name": row.name, "key": key}


@router.get("/me/api-keys", response_model=list[KeyOut])
def list_keys(actor: CurrentActor, db: Db) -> list[dict[str, Any]]:
    """The caller's keys (without the secret part)."""
    return [
        {"id": k.id, "name": k.name, "prefix": k.prefix, "revoked": k.revoked_at is not None}
        for k in accounts.list_api_keys(db, actor=actor)
    ]


@router.delete("/me/api-keys/{key_id}", status_code=204)
def revoke_key(key_id: Id, actor: CurrentActor, db: Db) -> None:
    """Revoke one of the caller's keys."""
    accounts.revoke_api_key(db, actor=actor, key_id=key_id)

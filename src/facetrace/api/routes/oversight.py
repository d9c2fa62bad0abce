"""Supervisor reports and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from facetrace.fields import Limit, SearchText
from facetrace.server.deps import CurrentActor, Db
from facetrace.service import audit, reports
from facetrace.service.accounts import Perm, require

router = APIRouter(tags=["oversight"])


class AuditEntryOut(BaseModel):
    """One audit entry; ``detail`` is the JSON text that was hashed."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    detail: str
    hash: str


class ChainProblemOut(BaseModel):
    """The first break in the chain."""

    kind: str
    seq: int
    message: str


class VerifyOut(BaseModel):
    """The result of checking the audit chain."""

    ok: bool
    entries: int
    head_hash: str | None
    problem: ChainProblemOut | None
    keyed_from: int | None = None
    key_id: str = ""


@router.get("/reports", response_model=reports.Report)
def report(actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Searches per user and purpose, outcomes, identifications, notifications."""
    return asdict(reports.report(db, actor=actor))


@router.get("/audit", response_model=list[AuditEntryOut])
def audit_log(
    actor: CurrentActor,
    db: Db,
    limit: Limit = 200,
    action: SearchText | None = None,
    user: SearchText | None = None,
) -> list[dict[str, Any]]:
    """The newest audit entries."""
    require(actor, Perm.AUDIT_READ)
    rows = audit.recent(db, limit=min(limit, 5000), action=action, actor=user)
    audit.append(db, actor=actor.username, action=audit.Action.AUDIT_VIEW, target="audit")
    return [
        {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "detail": e.detail,
            "hash": e.hash,
        }
        for e in rows
    ]


@router.get("/audit/verify", response_model=VerifyOut)
def audit_verify(actor: CurrentActor, db: Db) -> dict[str, Any]:
    """Check the keyed hash chain and its signed head."""
    require(actor, Perm.AUDIT_READ)
    r = audit.verify(db)
    return {
        "ok": r.ok,
        "entries": r.entries,
        "head_hash": r.head_hash,
        "problem": asdict(r.problem) if r.problem else None,
        "keyed_from": r.keyed_from,
        "key_id": r.key_id,
    }

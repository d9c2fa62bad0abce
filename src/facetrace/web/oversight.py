"""Supervisor reports and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from facetrace.server.deps import CurrentActor, Db
from facetrace.service import audit, reports
from facetrace.service.accounts import Perm, require
from facetrace.web.render import page

router = APIRouter()


@router.get("/reports", response_class=HTMLResponse)
def reports_page(request: Request, actor: CurrentActor, db: Db) -> HTMLResponse:
    """The department's report."""
    return page(request, "reports.html", actor, report=reports.report(db, actor=actor))


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request, actor: CurrentActor, db: Db, action: str = "", user: str = ""
) -> HTMLResponse:
    """The newest audit entries and the result of checking the chain."""
    require(actor, Perm.AUDIT_READ)
    check = audit.verify(db)
    rows = audit.recent(db, limit=300, action=action or None, actor=user or None)
    audit.append(db, actor=actor.username, action=audit.Action.AUDIT_VIEW, target="audit")
    return page(
        request,
        "audit.html",
        actor,
        rows=rows,
        check=check,
        action=action,
        user=user,
        actions=list(audit.Action),
    )

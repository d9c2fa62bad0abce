"""Supervisor reports and the audit log: date ranges, CSV exports, printable pages and
audit details in words."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from facetrace.errors import InvalidRequest
from facetrace.server.deps import CurrentActor, Db
from facetrace.service import audit, cases, reports
from facetrace.service.accounts import Perm, require
from facetrace.service.reviews import CONCLUSION_LABELS, IDENTIFIER_LABELS
from facetrace.web import wording
from facetrace.web.render import page

router = APIRouter()

CONCLUSION_TEXT: dict[str, str] = {str(k): v for k, v in CONCLUSION_LABELS.items()}
IDENTIFIER_TEXT: dict[str, str] = {str(k): v for k, v in IDENTIFIER_LABELS.items()}
AUDIT_PAGE_ROWS = 300
AUDIT_CSV_ROWS = 100_000


def _day(value: str, what: str) -> date | None:
    """A form's date (YYYY-MM-DD), or None when left empty."""
    if not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidRequest(f"give the {what} date as YYYY-MM-DD (got {value!r})") from exc


def _csv(rows: Iterable[Sequence[object]], filename: str) -> Response:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def _report(db: Db, actor: CurrentActor, start: str, end: str) -> reports.Report:
    return reports.report(db, actor=actor, since=_day(start, "start"), until=_day(end, "end"))


@router.get("/reports", response_class=HTMLResponse)
def reports_page(
    request: Request, actor: CurrentActor, db: Db, start: str = "", end: str = ""
) -> HTMLResponse:
    """The department's report for a date range (printable)."""
    return page(
        request, "reports.html", actor, report=_report(db, actor, start, end), start=start, end=end
    )


@router.get("/reports.csv")
def reports_csv(actor: CurrentActor, db: Db, start: str = "", end: str = "") -> Response:
    """The same report as CSV: one row per figure (section, item, count)."""
    r = _report(db, actor, start, end)
    rows: list[Sequence[object]] = [
        ["department", "period", "section", "item", "count"],
    ]
    sections: list[tuple[str, Iterable[tuple[str, int]]]] = [
        ("searches per user", r.searches_by_user),
        (
            "searches per purpose",
            ((cases.PURPOSE_LABELS[cases.Purpose(p)], n) for p, n in r.searches_by_purpose),
        ),
        ("review outcomes", ((CONCLUSION_TEXT.get(c, c), n) for c, n in r.outcomes)),
        ("cases opened, by status", r.cases_by_status),
        (
            "cases closed, by outcome",
            ((cases.OUTCOME_LABELS[cases.Outcome(o)], n) for o, n in r.closed_by_outcome),
        ),
        ("notifications", [("recorded", r.notifications)]),
    ]
    for section, items in sections:
        rows.extend([r.department, r.period, section, item, n] for item, n in items)
    rows.extend(
        [
            r.department,
            r.period,
            "identifications",
            f"{num} ({IDENTIFIER_TEXT.get(kind, kind)}, {day})",
            1,
        ]
        for num, kind, day in r.identifications
    )
    return _csv(rows, f"report-{r.department}-{start or 'start'}-{end or 'today'}.csv")


def _audit_rows(
    db: Db, *, limit: int, action: str, user: str, start: str, end: str
) -> list[audit.AuditEntry]:
    since, before = reports.day_range(_day(start, "start"), _day(end, "end"))
    return audit.recent(
        db,
        limit=limit,
        action=action or None,
        actor=user or None,
        since=since,
        before=before,
    )


@router.get("/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    actor: CurrentActor,
    db: Db,
    action: str = "",
    user: str = "",
    start: str = "",
    end: str = "",
) -> HTMLResponse:
    """The newest audit entries (filtered by action, user and dates), in words, and the
    result of checking the chain."""
    require(actor, Perm.AUDIT_READ)
    check = audit.verify(db)
    rows = _audit_rows(db, limit=AUDIT_PAGE_ROWS, action=action, user=user, start=start, end=end)
    audit.append(db, actor=actor.username, action=audit.Action.AUDIT_VIEW, target="audit")
    return page(
        request,
        "audit.html",
        actor,
        rows=rows,
        check=check,
        action=action,
        user=user,
        start=start,
        end=end,
        limit=AUDIT_PAGE_ROWS,
        actions=[(a.value, wording.action_text(a.value)) for a in audit.Action],
    )


@router.get("/audit.csv")
def audit_csv(
    actor: CurrentActor,
    db: Db,
    action: str = "",
    user: str = "",
    start: str = "",
    end: str = "",
) -> Response:
    """The filtered audit entries as CSV (oldest first, in words and as stored, with
    each entry's hash so the export can be checked against the chain). Audited."""
    require(actor, Perm.AUDIT_READ)
    rows = _audit_rows(db, limit=AUDIT_CSV_ROWS, action=action, user=user, start=start, end=end)
    audit.append(
        db,
        actor=actor.username,
        action=audit.Action.EXPORT,
        target="audit",
        detail={"what": "audit_csv", "start": start, "end": end, "rows": len(rows)},
    )
    out: list[Sequence[object]] = [
        ["seq", "when_utc", "user", "action", "what", "target", "details", "detail_json", "hash"]
    ]
    out.extend(
        [
            e.seq,
            e.at,
            e.actor,
            e.action,
            wording.action_text(e.action),
            wording.target_text(e.target),
            wording.detail_text(e.detail),
            e.detail,
            e.hash,
        ]
        for e in reversed(rows)
    )
    return _csv(out, f"audit-{start or 'start'}-{end or 'today'}.csv")

"""A case's timeline: everything that happened to it, in order, from the tables that
record it (the case, probes, searches, reviews, identification, contacts,
notifications, and the case events: notes, assignments, closings)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from facetrace.service import cases, notifications, reviews, videos
from facetrace.service.cases import OUTCOME_LABELS, Outcome
from facetrace.service.reviews import (
    IDENTIFIER_LABELS,
    Conclusion,
    PrimaryIdentifier,
)
from facetrace.store.service_models import Case, as_utc


@dataclass(frozen=True, slots=True)
class Entry:
    """One line of the timeline. ``kind`` names what happened (opened, probe, search,
    review, identification, contact, notification, note, assigned, closed, reopened);
    ``ref`` is the id of the record it links to (a probe or a search), or None."""

    at: datetime
    kind: str
    who: str
    text: str
    ref: int | None = None


def case_timeline(
    session: Session, *, case: Case, blind_searches: Collection[int] = ()
) -> list[Entry]:
    """Every event of ``case``, oldest first. Reviews of the searches in
    ``blind_searches`` are listed without their conclusion (a reviewer who has not
    reviewed a search yet does not see the others' conclusions)."""
    out = [Entry(as_utc(case.created_at), "opened", case.creator.username, case.number)]
    for p in cases.case_probes(session, case=case):
        faces = len(p.faces)
        if p.kind == "video":
            seen = len(videos.listed_faces(list(p.faces)))  # a joined person once
            text = f"{p.filename} (video): {seen} person{'' if seen == 1 else 's'} seen"
        else:
            text = f"{p.filename}: {faces} face{'' if faces == 1 else 's'} found"
        out.append(Entry(as_utc(p.created_at), "probe", "", text, p.id))
    case_searches = cases.case_searches(session, case=case)
    modes = {s.id: s.mode for s in case_searches}
    for s in case_searches:
        found = len(s.listed)
        if s.no_candidate:
            result = "no candidate"
        elif s.investigation:
            result = f"{found} people listed for review (investigation mode)"
        else:
            result = f"{found} candidate(s)"
        text = f"search {s.id} of face {s.face_index + 1}: {result}"
        out.append(Entry(as_utc(s.created_at), "search", s.user.username, text, s.id))
    for r in reviews.case_reviews(session, case=case):
        if r.search_id in blind_searches:
            text = f"search {r.search_id}: a review was recorded (shown once you record yours)"
        else:
            labels = reviews.conclusion_labels(modes.get(r.search_id, "identification"))
            text = f"search {r.search_id}: {labels[Conclusion(r.conclusion)]}"
            if r.candidate is not None:
                text += f", {r.candidate.subject_name or r.candidate.subject_external_id}"
            if r.note:
                text += f" — {r.note}"
        out.append(Entry(as_utc(r.created_at), "review", r.reviewer.username, text, r.search_id))
    for ident in reviews.identifications(session, case=case):
        c = ident.candidate
        text = (
            f"{c.subject_name or c.subject_external_id}, confirmed by "
            f"{IDENTIFIER_LABELS[PrimaryIdentifier(ident.primary_identifier)]}: {ident.evidence}"
        )
        out.append(Entry(as_utc(ident.created_at), "identification", ident.recorder.username, text))
    for k in notifications.case_contacts(session, case=case):
        rel = f" ({k.relationship_})" if k.relationship_ else ""
        out.append(Entry(as_utc(k.created_at), "contact", "", f"{k.name}{rel}"))
    for n in notifications.case_notifications(session, case=case):
        to = f" to {n.contact.name}" if n.contact else ""
        text = f"{n.notified_on.isoformat()}, {n.channel}{to}: {n.outcome}"
        out.append(Entry(as_utc(n.created_at), "notification", n.user.username, text))
    for e in cases.case_events(session, case=case):
        out.append(Entry(as_utc(e.created_at), e.kind, e.user.username, e.text))
    out.sort(key=lambda e: e.at)
    return out


def outcome_label(value: str | None) -> str:
    """A case outcome in words ("" for none)."""
    return OUTCOME_LABELS[Outcome(value)] if value else ""

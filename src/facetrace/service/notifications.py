"""Next of kin and notifications of an identified case, and the printable notification
record. Notifications happen through official channels; facetrace only records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import InvalidRequest, RuleViolation
from facetrace.service import audit
from facetrace.service.accounts import Actor, Perm
from facetrace.service.cases import CaseStatus, rows_of_case, scoped_case, utcnow
from facetrace.service.reviews import case_reviews, identifications
from facetrace.store.service_models import Case, Contact, Identification, Notification, Review


def _identified_case(session: Session, *, actor: Actor, case_id: int) -> Case:
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.NOTIFY)
    if case.status != CaseStatus.IDENTIFIED:
        raise RuleViolation("next of kin and notifications are recorded for identified cases")
    return case


def add_contact(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    name: str,
    relationship: str = "",
    details: str = "",
) -> Contact:
    """Record a next-of-kin contact for an identified case."""
    name = fields.check(fields.OptionalName, name, field="name")
    relationship = fields.check(fields.OptionalName, relationship, field="relationship")
    details = fields.check(fields.Note, details, field="details")
    case = _identified_case(session, actor=actor, case_id=case_id)
    if not name.strip():
        raise InvalidRequest("a contact needs a name")
    contact = Contact(
        case_id=case.id,
        name=name.strip(),
        relationship_=relationship.strip(),
        details=details.strip(),
        created_by=actor.id,
    )
    session.add(contact)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.CONTACT_ADD,
        target=f"case:{case.id}",
        detail={"contact": contact.id},
    )
    return contact


def record_notification(
    session: Session,
    *,
    actor: Actor,
    case_id: int,
    channel: str,
    notified_on: date,
    outcome: str,
    contact_id: int | None = None,
) -> Notification:
    """Record a notification made through an official channel (facetrace sends nothing)."""
    channel = fields.check(fields.OptionalName, channel, field="channel")
    outcome = fields.check(fields.Note, outcome, field="outcome")
    case = _identified_case(session, actor=actor, case_id=case_id)
    if not channel.strip() or not outcome.strip():
        raise InvalidRequest("a notification needs its channel and its outcome")
    if notified_on > date.today() + timedelta(days=1):
        raise InvalidRequest("a notification cannot be dated in the future")
    if contact_id is not None:
        contact = session.get(Contact, contact_id)
        if contact is None or contact.case_id != case.id:
            raise InvalidRequest(f"contact {contact_id} is not in this case")
    note = Notification(
        case_id=case.id,
        contact_id=contact_id,
        channel=channel.strip(),
        notified_on=notified_on,
        by_user=actor.id,
        outcome=outcome.strip(),
    )
    session.add(note)
    session.flush()
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.NOTIFICATION,
        target=f"case:{case.id}",
        detail={"notification": note.id, "channel": note.channel},
    )
    return note


def case_contacts(session: Session, *, case: Case) -> list[Contact]:
    """Contacts of a case, oldest first."""
    return rows_of_case(session, Contact, case)


def case_notifications(session: Session, *, case: Case) -> list[Notification]:
    """Notifications of a case, oldest first."""
    return rows_of_case(session, Notification, case)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """Everything the printable notification record shows."""

    case: Case
    identification: Identification  # the first (the one that made the case identified)
    identifications: list[Identification]  # one per identified person, oldest first
    reviews: list[Review]
    contacts: list[Contact]
    notifications: list[Notification]
    exported_by: str
    exported_at: datetime


def notification_record(session: Session, *, actor: Actor, case_id: int) -> NotificationRecord:
    """The notification record of an identified case; audited as an export."""
    case = scoped_case(session, actor=actor, case_id=case_id, perm=Perm.EXPORT)
    found = identifications(session, case=case)
    if not found:
        raise RuleViolation("only an identified case has a notification record")
    subjects = {i.candidate.subject_external_id for i in found}
    reviews = [
        r
        for r in case_reviews(session, case=case)
        if r.candidate is not None and r.candidate.subject_external_id in subjects
    ]
    audit.append(
        session,
        actor=actor.username,
        action=audit.Action.EXPORT,
        target=f"case:{case.id}",
        detail={"what": "notification_record"},
    )
    return NotificationRecord(
        case=case,
        identification=found[0],
        identifications=found,
        reviews=reviews,
        contacts=case_contacts(session, case=case),
        notifications=case_notifications(session, case=case),
        exported_by=actor.username,
        exported_at=utcnow(),
    )

"""What the command line answers for when it acts on a gallery: ``facetrace search`` is
recorded in the audit log (as ``ingest`` and ``delete`` are), with the operating-system
user who ran it, and a search of a service's gallery (a data directory with accounts)
needs what the web asks of every search: a case number, a purpose and a legal basis.

The shell has no login: its entries are the ``system`` actor's, as other shell
commands' are, with ``via: cli``, the OS user, the host and the process in the detail.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from facetrace import fields
from facetrace.errors import InvalidRequest
from facetrace.gallery.owner import os_user
from facetrace.service import audit
from facetrace.service.accounts import SYSTEM, user_count
from facetrace.service.cases import Purpose


def is_service_gallery(session: Session) -> bool:
    """Whether the data directory belongs to a service: it has accounts (the service
    creates ``admin`` on its first start)."""
    return bool(user_count(session))


@dataclass(frozen=True, slots=True)
class SearchGrounds:
    """Why a shell search is made: the case it serves, its purpose, its legal basis."""

    case_number: str
    purpose: Purpose
    legal_basis: str

    def as_dict(self) -> dict[str, str]:
        return {
            "case_number": self.case_number,
            "purpose": str(self.purpose),
            "legal_basis": self.legal_basis,
        }


def search_grounds(
    session: Session,
    *,
    case_number: str | None,
    purpose: str | None,
    legal_basis: str | None,
) -> SearchGrounds | None:
    """The grounds of a shell search, checked as the web checks a case's; required
    (all three) on a service's gallery, optional elsewhere. Raises InvalidRequest."""
    given = [v for v in (case_number, purpose, legal_basis) if v is not None and v.strip()]
    if not given and not is_service_gallery(session):
        return None
    missing = [
        option
        for option, value in (
            ("--case", case_number),
            ("--purpose", purpose),
            ("--legal-basis", legal_basis),
        )
        if value is None or not value.strip()
    ]
    if missing:
        raise InvalidRequest(
            "a search of a service's gallery is made for a case, as on the web: give "
            + ", ".join(missing)
            + " (purpose one of: "
            + ", ".join(p.value for p in Purpose)
            + ")"
        )
    assert case_number is not None and purpose is not None and legal_basis is not None
    number = fields.check(fields.CaseNumber, case_number, field="case number")
    basis = fields.check(fields.LegalBasis, legal_basis, field="legal basis")
    try:
        chosen = Purpose(purpose.strip())
    except ValueError as exc:
        allowed = ", ".join(p.value for p in Purpose)
        raise InvalidRequest(f"--purpose must be one of: {allowed}") from exc
    return SearchGrounds(case_number=number, purpose=chosen, legal_basis=basis)


def record(
    session: Session,
    *,
    action: audit.Action,
    target: str,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """An audit entry for a shell command, in the caller's transaction."""
    audit.append(
        session,
        actor=SYSTEM.username,
        action=action,
        target=target,
        detail={
            "via": "cli",
            "os_user": os_user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            **dict(detail or {}),
        },
    )

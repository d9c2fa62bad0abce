"""Audit entries in words: what each action means, its target and its details, for the
audit page and its CSV export (the stored entry, which is hashed, stays as it is)."""

from __future__ import annotations

import json
from typing import Any

from facetrace.service import cases, reviews

ACTION_TEXT: dict[str, str] = {
    "login": "Logged in",
    "login_failed": "Failed login",
    "logout": "Logged out",
    "search": "Face search",
    "view_results": "Viewed search results and their reference photos",
    "view_probe": "Viewed probe photos",
    "view_photo": "Viewed a reference photo",
    "view_subject": "Viewed a gallery subject and its reference photos",
    "view_collection": "Viewed a collection's subjects",
    "refused": "Refused attempt",
    "review": "Recorded a review",
    "identification": "Recorded an identification",
    "case_create": "Opened a case",
    "case_update": "Changed a case",
    "case_close": "Closed a case",
    "contact_add": "Added a next-of-kin contact",
    "notification": "Recorded a notification",
    "export": "Exported a record",
    "import": "An import ended",
    "import_queued": "Started an import",
    "import_batch": "Imported a batch of photos",
    "import_cancel": "Cancelled an import",
    "import_resume": "Resumed an interrupted import",
    "import_interrupted": "An import was interrupted (service restart)",
    "video_queued": "Uploaded a probe video for analysis",
    "video_cancel": "Cancelled a probe video's analysis",
    "video_interrupted": "A probe video's analysis was interrupted (service restart)",
    "delete": "Deleted from the gallery",
    "purge": "Deleted probe photos (retention)",
    "admin": "Administration",
    "report_view": "Viewed a report",
    "audit_view": "Viewed the audit log",
    "probe_face_add": "Added a face to a probe",
    "duplicates_view": "Viewed possible duplicate subjects",
    "merge": "Merged two gallery subjects",
    "merge_undo": "Undid a merge of gallery subjects",
    "decision": "Recorded two subjects as different people",
    "person_decision": "Recorded faces of a case as one person or as different people",
    "person_decision_revoke": "Revoked a decision on faces of a case",
    "audit_keyed": "The audit log was keyed (entries from here on are signed)",
}

_KEY_TEXT = {
    "case": "case",
    "case_number": "case number",
    "probe_sha256": "probe photo fingerprint",
    "op": "what",
    "photos_added": "photos added",
    "faces_removed": "faces removed",
    "os_user": "user (operating system)",
    "legal_basis": "legal basis",
    "primary_identifier": "primary identifier",
    "photos": "reference photos shown",
    "probes": "probe photos shown",
    "external_id": "subject id",
}


_VALUE_TEXT: dict[str, dict[str, str]] = {
    "outcome": {str(k): v for k, v in cases.OUTCOME_LABELS.items()},
    "conclusion": {str(k): v for k, v in reviews.CONCLUSION_LABELS.items()},
    "purpose": {str(k): v for k, v in cases.PURPOSE_LABELS.items()},
    "primary_identifier": {str(k): v for k, v in reviews.IDENTIFIER_LABELS.items()},
}


def action_text(action: str) -> str:
    """An audit action in words (unknown ones with their underscores as spaces)."""
    return ACTION_TEXT.get(action, action.replace("_", " ").capitalize())


def target_text(target: str) -> str:
    """``case:12`` -> ``case 12``; ``ip:127.0.0.1`` -> ``address 127.0.0.1``."""
    kind, sep, ident = target.partition(":")
    if not sep:
        return target
    return f"{'address' if kind == 'ip' else kind.replace('_', ' ')} {ident}"


def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) or "none"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_value(x)}" for k, x in v.items())
    text = str(v)
    return (
        text[:16] + "…" if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else text
    )


def detail_text(detail: str) -> str:
    """An entry's JSON details as "key: value; ..." in words ("" for none).

    >>> detail_text('{"case_number": "C-1", "forced": false, "candidates": 2}')
    'case number: C-1; forced: no; candidates: 2'
    >>> detail_text('{"job": "ab12", "state": "done", "error": "", "photos_added": 8}')
    'job: ab12; state: done; photos added: 8'
    >>> detail_text('{"case": 3, "probes": [7], "photos": [12, 15]}')
    'case: 3; probe photos shown: 7; reference photos shown: 12, 15'
    """
    try:
        data = json.loads(detail or "{}")
    except json.JSONDecodeError:
        return detail
    if not isinstance(data, dict):
        return _value(data)
    # an empty text says nothing ("error: " on an import that ended well)
    return "; ".join(
        f"{_KEY_TEXT.get(k, k.replace('_', ' '))}: " + _VALUE_TEXT.get(k, {}).get(str(v), _value(v))
        for k, v in data.items()
        if not (isinstance(v, str) and not v.strip())
    )

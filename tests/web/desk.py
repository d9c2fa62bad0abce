"""A seeded service for the investigator's-desk browser tests: one team (investigator,
two reviewers, a supervisor, an auditor, in one department), a collection imported from
a manifest with provenance and metadata, and helpers to log in and take screenshots.

Seeding goes through the service and gallery functions (seconds), so each browser test
spends its time on the pages it checks.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from facetrace.service import accounts, cases, collections

PASSWORD = "correct horse battery 42"
DEPARTMENT = "Forensics"
# Three photos each (the last one is held out as a probe), plus people to be look-alikes.
PEOPLE = ["Jacques_Chirac", "Laura_Bush", "Lleyton_Hewitt", "Hugo_Chavez"]
OTHERS = ["Andre_Agassi", "Tom_Ridge", "Vicente_Fox", "David_Beckham", "Ricardo_Lagos"]
TEAM = {
    "ines": {accounts.Role.INVESTIGATOR},
    "rafael": {accounts.Role.REVIEWER},
    "rita": {accounts.Role.REVIEWER},
    "sam": {accounts.Role.SUPERVISOR},
    "aude": {accounts.Role.AUDITOR},
}


@dataclass
class Desk:
    """The running, seeded service."""

    base: str
    app: Any
    faces: Path
    collection_id: int

    @property
    def state(self) -> Any:
        return self.app.state.service

    def lfw(self, name: str, i: int) -> Path:
        return self.faces / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"

    def open_case(self, number: str, *, by: str = "ines") -> int:
        """A new case opened by ``by``; returns its id."""
        with self.state.sessions.begin() as s:
            actor = accounts.actor_of(accounts.get_user(s, username=by))
            case = cases.create_case(
                s,
                actor=actor,
                number=number,
                purpose="identify_deceased",
                legal_basis="Coroner's order 17/2026",
                title="Unidentified man, river bank",
                retention_days=30,
            )
            return int(case.id)


def write_manifest(folder: Path, faces: Path) -> Path:
    """A CSV manifest naming photos in the shared faces folder, with provenance and a
    ``metadata`` column."""
    path = folder / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["path", "subject_id", "subject_name", "source_title", "captured_date", "metadata"]
        )
        for name in PEOPLE + OTHERS:
            count = 2 if name in PEOPLE else 1
            for i in range(1, count + 1):
                src = faces / "lfw" / "images" / name / f"{name}_{i:04d}.jpg"
                w.writerow(
                    [
                        str(src),
                        f"MP-{name.upper()}",
                        name.replace("_", " "),
                        f"Missing-person report {name[:3].upper()}-{i}",
                        f"2019-0{i}-15",
                        json.dumps({"reported_by": "family", "case_ref": f"MP/{name[:4].upper()}"}),
                    ]
                )
    return path


def seed(app: Any, faces: Path, folder: Path) -> int:
    """Users, one collection and its photos; returns the collection id."""
    state = app.state.service
    with state.sessions.begin() as s:
        for name, roles in TEAM.items():
            accounts.create_user(
                s,
                actor=accounts.SYSTEM,
                username=name,
                password=PASSWORD,
                roles=frozenset(roles),
                department=None if roles == {accounts.Role.AUDITOR} else DEPARTMENT,
                full_name=name.title(),
            )
        accounts.create_user(
            s,
            actor=accounts.SYSTEM,
            username="admin",
            password=PASSWORD,
            roles=frozenset({accounts.Role.ADMIN}),
        )
        coll = collections.create_collection(
            s,
            actor=accounts.SYSTEM,
            name="Missing persons register",
            legal_basis="Family consent forms, Act 12 s.4",
            retention="Until found, at most 10 years",
        )
        coll_id, coll_name, basis = int(coll.id), coll.name, coll.legal_basis
    manifest = write_manifest(folder, faces)
    summary = state.gallery.ingest(
        manifest,
        collection=coll_name,
        legal_basis=basis,
        progress=lambda done, total: None,
        allowed_root=faces,
    )
    assert summary["photos_added"] == len(PEOPLE) * 2 + len(OTHERS), summary
    return coll_id


def login(page: Any, base: str, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def logout(page: Any) -> None:
    page.click("header form button")
    page.wait_for_url(re.compile(r".*/login.*"))


def shot(page: Any, name: str) -> None:
    """A full-page screenshot into ``$FACETRACE_SCREENSHOTS`` when it is set."""
    folder = os.environ.get("FACETRACE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)

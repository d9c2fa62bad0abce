"""The "possible duplicates" page: side-by-side pairs, merge, undo, different people,
department isolation; and a screenshot in Chromium (to ``$FACETRACE_SCREENSHOTS``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from facetrace.service.accounts import Role
from facetrace.store.models import Collection
from tests.api.conftest import PASSWORD, add_user, login, make_client
from tests.galleries import COPIED, OTHER_PHOTO, subject_id
from tests.web.conftest import serve

PAGE = "/admin/duplicates"


@pytest.fixture()
def live_planted(planted_dir: Path) -> Iterator[str]:
    """The service running on a planted gallery, with the administrator ``gadmin``."""
    with serve(planted_dir) as (base, app):
        state: Any = app.state.service
        with state.sessions.begin() as s:
            from facetrace.service.accounts import SYSTEM, create_user

            create_user(
                s, actor=SYSTEM, username="gadmin", password=PASSWORD, roles=frozenset({Role.ADMIN})
            )
        yield base


@pytest.fixture()
def client(planted_dir: Path) -> Iterator[TestClient]:
    with make_client(planted_dir) as c:
        add_user(c, "gadmin", {Role.ADMIN}, None)
        add_user(c, "admin-b", {Role.ADMIN}, "Dept B")
        add_user(c, "ines", {Role.INVESTIGATOR}, "Dept A")
        yield c


def _ids(client: TestClient) -> dict[str, int]:
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        return {
            n: subject_id(s, n) for n in (COPIED, f"R-{COPIED}", OTHER_PHOTO, f"R-{OTHER_PHOTO}")
        }


def test_pairs_side_by_side_merge_undo_and_different(client: TestClient) -> None:
    csrf = login(client, "gadmin")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert f"R-{COPIED}" in page.text and f"R-{OTHER_PHOTO}" in page.text
    photos = re.findall(r'src="/photos/(\d+)/face.jpg"', page.text)
    assert len(photos) >= 4
    assert client.get(f"/photos/{photos[0]}/face.jpg").headers["content-type"] == "image/jpeg"
    ids = _ids(client)
    merge = {
        "csrf_token": csrf,
        "a": ids[OTHER_PHOTO],
        "b": ids[f"R-{OTHER_PHOTO}"],
        "action": "keep-a",
    }
    refused = client.post(f"{PAGE}/decide", data={**merge, "note": ""})
    assert refused.status_code == 422  # a merge says why
    assert (
        client.post(f"{PAGE}/decide", data={**merge, "action": "x", "note": "y"}).status_code == 422
    )
    merged = client.post(f"{PAGE}/decide", data={**merge, "note": "same man"})
    assert merged.status_code == 303
    page = client.get(PAGE).text
    assert "same man" in page  # in the recent merges
    assert f"R-{OTHER_PHOTO}</code>" not in page  # no longer proposed
    merge_id = re.search(r"/admin/duplicates/merges/(\d+)/undo", page)
    assert merge_id
    undone = client.post(
        f"{PAGE}/merges/{merge_id.group(1)}/undo", data={"csrf_token": csrf, "note": "wrong"}
    )
    assert undone.status_code == 303
    assert f"R-{OTHER_PHOTO}</code>" in client.get(PAGE).text
    different = client.post(
        f"{PAGE}/decide",
        data={
            "csrf_token": csrf,
            "a": ids[COPIED],
            "b": ids[f"R-{COPIED}"],
            "action": "different",
            "note": "twins",
        },
    )
    assert different.status_code == 303
    assert f"R-{COPIED}</code>" not in client.get(PAGE).text
    no_csrf = client.post(
        f"{PAGE}/decide", data={"a": 1, "b": 2, "action": "different", "note": "x"}
    )
    assert no_csrf.status_code == 403


def test_other_departments_and_roles_see_nothing(client: TestClient) -> None:
    state: Any = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions.begin() as s:  # the registry becomes Dept A's
        from facetrace.service.accounts import find_department

        dept = find_department(s, name="Dept A")
        s.execute(
            update(Collection).where(Collection.name == "registry").values(department_id=dept.id)
        )
    login(client, "admin-b")
    page = client.get(PAGE)
    assert page.status_code == 200 and "R-" not in page.text
    login(client, "ines", PASSWORD)
    assert client.get(PAGE).status_code == 403


def test_screenshot_of_the_page(live_planted: str, browser: Any) -> None:
    """Rendered in Chromium: the reviewer's view (saved when FACETRACE_SCREENSHOTS is set)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_planted}/login")
    page.fill("input[name=username]", "gadmin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{live_planted}{PAGE}")
    assert page.locator("section.dup").count() >= 2
    assert page.locator("section.dup img").first.evaluate("i => i.naturalWidth") > 0
    folder = os.environ.get("FACETRACE_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "duplicates.png"), full_page=True)
    page.close()

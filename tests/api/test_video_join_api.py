"""A video sent to the one-shot search, on a gallery of stills of its characters: a
person the gallery finds in two appearances is listed once, joined at search time after
each appearance's own audited search; the joined person's search is audited under the
case's grounds like any; the fragments and their searches stay; two faces of one frame
stay two people. Real LFW photos, real decode and models, the real app."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facetrace.service.accounts import Role
from facetrace.store.service_models import AuditEntry, Probe, Search
from tests.api.conftest import add_user, import_folders, login, make_client, wait_job
from tests.video.synthetic import BLUE, GREEN, GREY, Actor, Shot, lfw_photo, twins, write_video

CAST = "Fernando_Henrique_Cardoso"
STILLS = {
    CAST: 8,
    "Colin_Powell": 3,
    "Hugo_Chavez": 2,
    "Tony_Blair": 3,
    "Jiang_Zemin": 3,
    "Vicente_Fox": 3,
}


@pytest.fixture(scope="module")
def app(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app whose gallery holds one still of each character (never one a video shows)."""
    with make_client(tmp_path_factory.mktemp("data")) as client:
        admin = {"Authorization": f"Bearer {add_user(client, 'admin', {Role.ADMIN}, None)}"}
        inv = {"Authorization": f"Bearer {add_user(client, 'inv', {Role.INVESTIGATOR}, 'A')}"}
        coll = client.post(
            "/api/v1/collections",
            headers=admin,
            json={"name": "stills", "legal_basis": "Act 12", "retention": "10 years"},
        ).json()
        stills = {name: lfw_photo(faces_dir, name, n) for name, n in STILLS.items()}
        assert import_folders(client, admin, coll["id"], stills)["state"] == "done"
        case = client.post(
            "/api/v1/cases",
            headers=inv,
            json={"number": "J-1", "purpose": "trace_missing", "legal_basis": "Order 9"},
        ).json()
        yield {"client": client, "inv": inv, "case": case["id"]}


def _search_video(app: dict[str, Any], video: Path) -> dict[str, Any]:
    client: TestClient = app["client"]
    resp = client.post(
        "/api/v1/search",
        headers=app["inv"],
        data={"case_id": str(app["case"])},
        files={"image": (video.name, video.read_bytes(), "video/mp4")},
    )
    assert resp.status_code == 202, resp.text
    body = wait_job(client, f"/api/v1/video-jobs/{resp.json()['id']}", app["inv"])
    assert body["state"] == "done", body
    return body


def _first(client: TestClient, headers: dict[str, str], search_id: int) -> str | None:
    out = client.get(f"/api/v1/searches/{search_id}", headers=headers).json()
    above = [c for c in out["candidates"] if c["above_threshold"]]
    return above[0]["subject"]["id"] if above else None


def _searches_of(client: TestClient, probe_id: int) -> dict[int, list[int]]:
    with client.app.state.service.sessions() as s:  # type: ignore[attr-defined]
        rows = s.query(Search).filter(Search.probe_id == probe_id).order_by(Search.id).all()
        out: dict[int, list[int]] = {}
        for r in rows:
            out.setdefault(r.face_index, []).append(r.id)
        return out


@pytest.fixture(scope="module")
def returning(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cardoso comes back after a cut in another photo of him (photos 1 and 3: 0.911,
    under the fragment merge's bar): the video alone sees two people."""
    video = tmp_path_factory.mktemp("videos") / "return.mp4"

    def shot(colour: tuple[int, int, int], name: str, photo: int) -> Shot:
        actor = Actor(name, lfw_photo(faces_dir, name, photo), 0, 2.4, (0.45, 0.5), (0.55, 0.5))
        return Shot(2.4, colour, (actor,))

    write_video(video, [shot(GREY, CAST, 1), shot(BLUE, "Colin_Powell", 1), shot(GREEN, CAST, 3)])
    return video


def test_a_returning_character_is_listed_once_and_the_join_is_audited(
    app: dict[str, Any], returning: Path
) -> None:
    client: TestClient = app["client"]
    body = _search_video(app, returning)
    probe = body["probe"]
    faces = probe["faces"]
    assert body["persons"] == 2 and len(faces) == 2, body
    by_face = _searches_of(client, probe["id"])
    firsts = [_first(client, app["inv"], by_face[f["index"]][-1]) for f in faces]
    assert sorted(firsts, key=str) == sorted([CAST, "Colin_Powell"]), firsts  # once each
    cardoso = faces[firsts.index(CAST)]
    # the joined person covers both appearances: the first and the third shot
    assert len(cardoso["joins"]) == 2 and cardoso["index"] not in cardoso["joins"]
    assert cardoso["intervals"][0][0] < 1.0 and cardoso["intervals"][-1][1] > 5.5
    assert firsts == [CAST, "Colin_Powell"]  # in order of first appearance
    assert all(not (a > 2.5 and b < 4.7) for a, b in cardoso["intervals"])
    # nothing deleted: each fragment was searched on its own and still is, and finds Cardoso
    for fragment in cardoso["joins"]:
        assert _first(client, app["inv"], by_face[fragment][0]) == CAST
    # every search of the job is listed, the joined one among them
    assert set(body["searches"]) == {i for ids in by_face.values() for i in ids}
    assert len(body["searches"]) == 4  # Cardoso twice, Powell, the joined Cardoso
    # the joined person's search is audited as a search of the case, under its grounds
    joined_search = by_face[cardoso["index"]][-1]
    with client.app.state.service.sessions() as s:  # type: ignore[attr-defined]
        entries = [
            json.loads(e.detail)
            for e in s.query(AuditEntry).filter(AuditEntry.action == "search").all()
        ]
        stored = s.get(Probe, probe["id"])
        assert stored is not None and len(stored.faces) == 4  # the fragments stay
    mine = [d for d in entries if d.get("search") == joined_search]
    assert len(mine) == 1, entries
    assert mine[0]["purpose"] == "trace_missing" and mine[0]["legal_basis"] == "Order 9"
    assert mine[0]["face"] == cardoso["index"]
    # the probe answers the same way
    again = client.get(f"/api/v1/probes/{probe['id']}", headers=app["inv"]).json()
    assert [f["index"] for f in again["faces"]] == [f["index"] for f in faces]
    # and so does the web page: two persons, the joined one naming its fragments' searches
    login(client, "inv")
    html = client.get(f"/probes/{probe['id']}").text
    assert "<strong>2 persons</strong>" in html
    assert html.count('class="person video-person"') == 2
    assert "Joined from 2 appearances" in html
    for fragment in cardoso["joins"]:
        assert f'href="/searches/{by_face[fragment][0]}"' in html
    # named as a reader counts them (the joined person is stored as face 4 of 4)
    assert re.findall(r"<h2>(Person \d+)</h2>", html) == ["Person 1", "Person 2"]
    joined_page = client.get(f"/searches/{joined_search}").text
    assert "Person 1 of 2 in the video" in joined_page
    fragment_page = client.get(f"/searches/{by_face[cardoso['joins'][0]][0]}").text
    assert "Person 1 (one appearance) of 2 in the video" in fragment_page
    case_page = client.get(f"/cases/{again['case_id']}").text
    assert "2 persons seen" in case_page and "4 persons seen" not in case_page


def test_two_faces_of_one_frame_stay_two_people_through_the_service(
    app: dict[str, Any], faces_dir: Path, tmp_path: Path
) -> None:
    video = tmp_path / "twins.mp4"
    write_video(video, twins(faces_dir))  # Hugo Chavez's photo twice in every frame
    client: TestClient = app["client"]
    body = _search_video(app, video)
    faces = body["probe"]["faces"]
    assert body["persons"] == 2 and len(faces) == 2, body
    by_face = _searches_of(client, body["probe"]["id"])
    assert [_first(client, app["inv"], by_face[f["index"]][-1]) for f in faces] == [
        "Hugo_Chavez",
        "Hugo_Chavez",
    ]
    assert all(f["joins"] == [] for f in faces) and len(by_face) == 2  # no join tried


def test_the_web_upload_joins_when_asked_to_search_every_person(
    app: dict[str, Any], returning: Path
) -> None:
    """The case page's video upload with "search every person": searched and joined in
    the job like the one-shot search; without it, nothing is searched (by hand, as before)."""
    client: TestClient = app["client"]
    csrf = login(client, "inv")
    jobs = []
    for extra in ({"search_all": "true"}, {}):
        resp = client.post(
            f"/cases/{app['case']}/videos",
            data={"csrf_token": csrf, **extra},
            files={"video": (returning.name, returning.read_bytes(), "video/mp4")},
        )
        assert resp.status_code == 303, resp.text
        job_id = resp.headers["location"].rsplit("/", 1)[-1]
        jobs.append(wait_job(client, f"/api/v1/video-jobs/{job_id}", app["inv"]))
    searched, by_hand = jobs
    assert searched["state"] == "done" and searched["persons"] == 2, searched
    assert len(searched["probe"]["faces"]) == 2 and len(searched["searches"]) == 4
    assert sorted(len(f["joins"]) for f in searched["probe"]["faces"]) == [0, 2]
    assert by_hand["state"] == "done" and by_hand["searches"] == []
    assert by_hand["persons"] == 3 and len(by_hand["probe"]["faces"]) == 3  # not searched
    # the case page with searched video persons (their extra's "person" is a number)
    page = client.get(f"/cases/{app['case']}")
    assert page.status_code == 200, page.text

"""The unknown persons of a case through the API: probes uploaded and grouped by the real
engine, decisions that later groupings keep, refusals that change nothing, and a
person searched as one template face."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from facetrace.service.accounts import Role
from tests.api.conftest import add_user, index_stacks, make_client

JOLIE = ["id01/img1.jpg", "id01/img2.jpg", "id01/img4.jpg"]
ANISTON = ["id04/img3.jpg", "id04/img53.jpg"]


@pytest.fixture(scope="module")
def mci(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A case with five probe photos of two women, uploaded through the API."""
    with make_client(tmp_path_factory.mktemp("data")) as client:
        inv = {"Authorization": f"Bearer {add_user(client, 'inv', {Role.INVESTIGATOR}, 'A')}"}
        other = {"Authorization": f"Bearer {add_user(client, 'olga', {Role.INVESTIGATOR}, 'B')}"}
        aud = {"Authorization": f"Bearer {add_user(client, 'aud', {Role.AUDITOR}, None)}"}
        case = client.post(
            "/api/v1/cases",
            headers=inv,
            json={"number": "MCI-9", "purpose": "identify_deceased", "legal_basis": "Order 1"},
        ).json()
        probes = {}
        for name in JOLIE + ANISTON:
            path = faces_dir / "webphotos13" / "identities" / name
            resp = client.post(
                f"/api/v1/cases/{case['id']}/probes",
                headers=inv,
                files={"image": (path.name, path.read_bytes(), "image/jpeg")},
            )
            assert resp.status_code == 201, resp.text
            probes[name] = resp.json()["id"]
        yield {"client": client, "inv": inv, "other": other, "aud": aud, "case": case["id"],
               "probes": probes}  # fmt: skip


def _groups(m: dict[str, Any]) -> list[set[int]]:
    resp = m["client"].get(f"/api/v1/cases/{m['case']}/persons", headers=m["inv"])
    assert resp.status_code == 200, resp.text
    return [{f["probe_id"] for f in p["faces"]} for p in resp.json()["persons"]]


def test_persons_decisions_and_a_template_search(mci: dict[str, Any]) -> None:
    client, inv, case = mci["client"], mci["inv"], mci["case"]
    url = f"/api/v1/cases/{case}/persons"
    jolie = [mci["probes"][n] for n in JOLIE]
    aniston = [mci["probes"][n] for n in ANISTON]
    before = _groups(mci)
    assert set(jolie) in before and set(aniston) in before

    def face(p: int) -> dict[str, int]:
        return {"probe_id": p, "face_index": 0}

    split = client.post(
        f"{url}/decisions",
        headers=inv,
        json={"decision": "different", "faces": [face(jolie[0]), face(jolie[1])], "note": "x"},
    )
    assert split.status_code == 201 and len(split.json()["ids"]) == 1
    assert all(not {jolie[0], jolie[1]} <= g for g in _groups(mci))
    # refusals change nothing: a contradiction, an unknown decision, a face of no case
    bad = [
        ({"decision": "same", "faces": [face(jolie[0]), face(jolie[1])]}, 409),
        ({"decision": "maybe", "faces": [face(jolie[0]), face(jolie[1])]}, 422),
        ({"decision": "same", "faces": [face(jolie[0])]}, 422),
        ({"decision": "same", "faces": [face(jolie[0]), face(999)]}, 404),
    ]
    for body, status in bad:
        assert client.post(f"{url}/decisions", headers=inv, json=body).status_code == status
    listed = client.get(url, headers=inv).json()
    assert [d["decision"] for d in listed["decisions"]] == ["different"]
    # another department's investigator sees no such case; an auditor may not look
    assert client.get(url, headers=mci["other"]).status_code == 404
    assert client.get(url, headers=mci["aud"]).status_code == 403

    (decision_id,) = split.json()["ids"]
    revoke = f"{url}/decisions/{decision_id}/revoke"
    assert client.post(revoke, headers=inv, json={"note": ""}).status_code == 422
    assert client.post(revoke, headers=inv, json={"note": "wrong"}).status_code == 200
    assert client.post(revoke, headers=inv, json={"note": "again"}).status_code == 422
    assert _groups(mci) == before

    body = {"faces": [face(p) for p in jolie]}
    first = client.post(f"{url}/search", headers=inv, json=body)
    assert first.status_code == 201, first.text
    again = client.post(f"{url}/search", headers=inv, json=body).json()
    # the same person is searched with the same template face, not a new one each time
    assert (again["probe_id"], again["face_index"]) == (
        first.json()["probe_id"],
        first.json()["face_index"],
    )
    person = next(p for p in client.get(url, headers=inv).json()["persons"] if p["template"])
    assert {f["probe_id"] for f in person["faces"]} == set(jolie)
    assert person["template"]["searches"] == [first.json()["id"], again["id"]]


def test_a_person_search_reaches_the_index_through_the_service_and_the_gallery_only(
    mci: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person searched as one template face takes the photo search's four files: its
    route, ``service/searches.py``, ``gallery/directory.py``, the index."""
    client, inv, case = mci["client"], mci["inv"], mci["case"]
    stacks = index_stacks(client, monkeypatch)
    faces = [{"probe_id": mci["probes"][n], "face_index": 0} for n in ANISTON]
    resp = client.post(f"/api/v1/cases/{case}/persons/search", headers=inv, json={"faces": faces})
    assert resp.status_code == 201, resp.text
    assert stacks == [["api/routes/persons.py", "gallery/directory.py", "service/searches.py"]]


def test_a_person_is_searched_in_the_mode_asked_and_a_bad_mode_stores_nothing(
    mci: dict[str, Any],
) -> None:
    client, inv, case = mci["client"], mci["inv"], mci["case"]
    url = f"/api/v1/cases/{case}/persons"
    faces = [{"probe_id": mci["probes"][n], "face_index": 0} for n in ANISTON]
    templates = [p["template"] for p in client.get(url, headers=inv).json()["persons"]]
    bad = client.post(f"{url}/search", headers=inv, json={"faces": faces, "mode": "guess"})
    assert bad.status_code == 422
    assert [p["template"] for p in client.get(url, headers=inv).json()["persons"]] == templates
    for mode in ("investigation", "identification"):
        resp = client.post(f"{url}/search", headers=inv, json={"faces": faces, "mode": mode})
        assert resp.status_code == 201, resp.text
        assert resp.json()["mode"] == mode
        assert resp.json()["mode_choice"]["chosen_by"] == "request"

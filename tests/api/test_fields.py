"""Field limits (issue 11, items 6 and 7): lengths, ids, paging and text that is not
UTF-8 are refused with problem+json 422 and nothing is stored."""

from __future__ import annotations

import pytest

from tests.api.conftest import Running

BIG = str(2**63)  # one above int64


def _h(running: Running, who: str = "investigator") -> dict[str, str]:
    return {"Authorization": f"Bearer {running.keys[who]}"}


def _case(running: Running, number: str) -> dict[str, object]:
    resp = running.client.post(
        "/api/v1/cases",
        headers=_h(running),
        json={"number": number, "purpose": "trace_missing", "legal_basis": "law 1"},
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _is_problem(resp: object, status: int = 422) -> None:
    assert resp.status_code == status, resp.text  # type: ignore[attr-defined]
    assert resp.headers["content-type"].startswith("application/problem+json")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        {"number": "N" * 65, "purpose": "trace_missing", "legal_basis": "x"},
        {"number": "F-1", "purpose": "trace_missing", "legal_basis": "x" * 1001},
        {"number": "F-2", "purpose": "trace_missing", "legal_basis": "x", "title": "t" * 201},
    ],
)
def test_overlong_case_fields_are_refused(running: Running, body: dict[str, str]) -> None:
    before = running.client.get("/api/v1/cases", headers=_h(running)).json()
    resp = running.client.post("/api/v1/cases", headers=_h(running), json=body)
    _is_problem(resp)
    assert running.client.get("/api/v1/cases", headers=_h(running)).json() == before


def test_lone_surrogate_in_json_is_a_422(running: Running) -> None:
    raw = b'{"number": "S-\\ud800", "purpose": "trace_missing", "legal_basis": "x"}'
    resp = running.client.post(
        "/api/v1/cases",
        headers={**_h(running), "content-type": "application/json"},
        content=raw,
    )
    _is_problem(resp)
    assert "number" in resp.json()["detail"]


def test_overlong_note_is_refused_by_the_service(running: Running) -> None:
    """The service checks the same types whatever the caller checked."""
    from facetrace import errors
    from facetrace.service import cases
    from facetrace.service.accounts import actor_of
    from facetrace.store.service_models import User

    state = running.app_state
    with state.sessions.begin() as s:  # type: ignore[attr-defined]
        user = s.query(User).filter_by(username="investigator").one()
        with pytest.raises(errors.InvalidRequest, match="case number"):
            cases.create_case(
                s,
                actor=actor_of(user),
                number="X" * 10_000,
                purpose="trace_missing",
                legal_basis="x",
                retention_days=1,
            )


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/cases/{BIG}",
        f"/api/v1/searches/{BIG}",
        f"/api/v1/probes/{BIG}",
        f"/api/v1/subjects/{BIG}",
        f"/api/v1/collections/{BIG}/subjects",
        "/api/v1/collections/1/subjects?limit=-1",
        "/api/v1/collections/1/subjects?limit=0",
        "/api/v1/collections/1/subjects?limit=1001",
        f"/api/v1/collections/1/subjects?offset={BIG}",
        "/api/v1/collections/1/subjects?offset=-1",
    ],
)
def test_ids_and_paging_out_of_range_are_422(running: Running, path: str) -> None:
    _is_problem(running.client.get(path, headers=_h(running, "admin")))


def test_big_id_in_a_json_body_is_422(running: Running) -> None:
    case = _case(running, "B-1")
    resp = running.client.post(
        f"/api/v1/cases/{case['id']}/identification",
        headers=_h(running),
        json={"candidate_id": 2**64, "primary_identifier": "dna", "evidence": "x"},
    )
    _is_problem(resp)


def test_collection_department_must_exist(running: Running) -> None:
    resp = running.client.post(
        "/api/v1/collections",
        headers=_h(running, "admin"),
        json={"name": "nowhere", "legal_basis": "x", "retention": "y", "department_id": 999},
    )
    _is_problem(resp)
    assert "department" in resp.json()["detail"]
    names = [
        c["name"]
        for c in running.client.get("/api/v1/collections", headers=_h(running, "admin")).json()
    ]
    assert "nowhere" not in names


def test_web_page_ids_out_of_range_are_not_500(running: Running) -> None:
    resp = running.client.get(f"/cases/{BIG}", headers=_h(running))
    assert resp.status_code in (401, 303, 422)

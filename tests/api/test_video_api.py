"""Video probes through the API: upload to a case (202 and a job), progress, the persons
stored as probe faces (origin 'track'), each searched and audited like a photo's face;
bad videos refused at once with nothing stored, a video without faces fails its job."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from facetrace.service.accounts import Role
from facetrace.store.service_models import Probe, Search
from tests.api.conftest import add_user, import_folders, make_client, wait_job
from tests.video.synthetic import BROWN, Shot, lfw_photo, two_people_cut_return, write_video

PEOPLE = ["Colin_Powell", "Tony_Blair", "Hugo_Chavez", "Laura_Bush"]


@pytest.fixture(scope="module")
def app(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An app whose gallery holds photo 3 of each person (the videos show photos 1-2)."""
    with make_client(tmp_path_factory.mktemp("data")) as client:
        admin = {"Authorization": f"Bearer {add_user(client, 'admin', {Role.ADMIN}, None)}"}
        inv = add_user(client, "inv", {Role.INVESTIGATOR}, "Dept A")
        other = add_user(client, "other", {Role.INVESTIGATOR}, "Dept B")
        coll = client.post(
            "/api/v1/collections",
            headers=admin,
            json={"name": "register", "legal_basis": "Act 12", "retention": "10 years"},
        ).json()
        import_folders(client, admin, coll["id"], {n: lfw_photo(faces_dir, n, 3) for n in PEOPLE})
        h_inv = {"Authorization": f"Bearer {inv}"}
        case = client.post(
            "/api/v1/cases",
            headers=h_inv,
            json={"number": "V-1", "purpose": "trace_missing", "legal_basis": "Order 7"},
        ).json()
        video = tmp_path_factory.mktemp("videos") / "two.mp4"
        write_video(video, two_people_cut_return(faces_dir))
        yield {
            "client": client,
            "inv": h_inv,
            "other": {"Authorization": f"Bearer {other}"},
            "admin": admin,
            "case": case["id"],
            "video": video,
        }


def _probes(client: TestClient, case_id: int) -> int:
    state = client.app.state.service  # type: ignore[attr-defined]
    with state.sessions() as s:
        return s.query(Probe).filter(Probe.case_id == case_id).count()


def _upload(app: dict[str, Any], name: str, data: bytes, who: str = "inv") -> Any:
    return app["client"].post(
        f"/api/v1/cases/{app['case']}/videos",
        headers=app[who],
        files={"video": (name, data, "video/mp4")},
    )


@pytest.fixture(scope="module")
def done(app: dict[str, Any]) -> dict[str, Any]:
    resp = _upload(app, "two.mp4", app["video"].read_bytes())
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["state"] in ("queued", "running") and job["duration_s"] == pytest.approx(7, abs=0.2)
    body = wait_job(app["client"], f"/api/v1/video-jobs/{job['id']}", app["inv"])
    assert body["state"] == "done", body
    return body


def test_each_person_is_a_probe_face_and_searched_like_a_photo(
    app: dict[str, Any], done: dict[str, Any]
) -> None:
    client: TestClient = app["client"]
    probe = done["probe"]
    assert probe["kind"] == "video" and probe["filename"] == "two.mp4"
    assert done["persons"] == len(probe["faces"]) == 2
    assert done["video_s"] == pytest.approx(done["duration_s"])
    found = []
    for face in probe["faces"]:
        assert face["origin"] == "track" and face["timestamp_s"] is not None
        resp = client.post(
            f"/api/v1/probes/{probe['id']}/search",
            headers=app["inv"],
            json={"face": face["index"], "force": True},
        )
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["candidates"], body
        top = body["candidates"][0]
        assert top["provenance"]["legal_basis"] == "Act 12"
        found.append(top["subject"]["id"])
    assert sorted(found) == ["Colin_Powell", "Tony_Blair"]
    audit = client.get("/api/v1/audit", headers=app["admin"])
    if audit.status_code == 200:  # the search is audited with the case's purpose
        text = audit.text
        assert "Order 7" in text and "trace_missing" in text


def test_another_department_cannot_see_the_job(app: dict[str, Any], done: dict[str, Any]) -> None:
    resp = app["client"].get(f"/api/v1/video-jobs/{done['id']}", headers=app["other"])
    assert resp.status_code in (403, 404)
    assert "probe" not in resp.json() or resp.json().get("probe") is None


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda clip: b"not a video at all " * 50, "not a video"),
        (lambda clip: clip[:5000], "truncated"),
    ],
    ids=["not-a-video", "truncated"],
)
def test_bad_videos_are_refused_at_once(app: dict[str, Any], make: Any, message: str) -> None:
    before = _probes(app["client"], app["case"])
    resp = _upload(app, "bad.mp4", make(app["video"].read_bytes()))
    assert resp.status_code == 422, resp.text
    assert message in resp.json()["detail"] and "bad.mp4" in resp.json()["detail"]
    assert "video-uploads" not in resp.text
    assert _probes(app["client"], app["case"]) == before


def test_a_video_without_faces_fails_and_stores_nothing(
    app: dict[str, Any], tmp_path: Path
) -> None:
    empty = tmp_path / "empty.mp4"
    write_video(empty, [Shot(1.0, BROWN, ())])
    before = _probes(app["client"], app["case"])
    resp = _upload(app, "empty.mp4", empty.read_bytes())
    assert resp.status_code == 202
    body = wait_job(app["client"], f"/api/v1/video-jobs/{resp.json()['id']}", app["inv"])
    assert body["state"] == "failed" and "no face was seen" in body["error"]
    assert "empty.mp4" in body["error"] and body["probe"] is None
    assert _probes(app["client"], app["case"]) == before


def test_one_shot_search_takes_a_video(
    app: dict[str, Any], done: dict[str, Any], faces_dir: Path
) -> None:
    """POST /search with a video queues its analysis (202 and the job, as the case's
    video upload does) and searches every person once stored, before the job says done;
    photo options are refused for it; a photo still searches."""
    client: TestClient = app["client"]
    data = app["video"].read_bytes()
    before = _probes(client, app["case"])
    resp = client.post(
        "/api/v1/search",
        headers=app["inv"],
        data={"case_id": str(app["case"]), "face": "0"},
        files={"image": ("clip.mp4", data, "video/mp4")},
    )
    assert resp.status_code == 422 and "photo options" in resp.json()["detail"], resp.text
    with client.app.state.service.sessions() as s:  # type: ignore[attr-defined]
        searches_before = s.query(Search).count()
    # told by its bytes, whatever its name says
    resp = client.post(
        "/api/v1/search",
        headers=app["inv"],
        data={"case_id": str(app["case"])},
        files={"image": ("upload.bin", data, "application/octet-stream")},
    )
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["state"] in ("queued", "running") and job["filename"] == "upload.bin"
    body = wait_job(client, f"/api/v1/video-jobs/{job['id']}", app["inv"])
    assert body["state"] == "done" and body["persons"] == 2, body
    assert body["probe"]["kind"] == "video" and _probes(client, app["case"]) == before + 1
    # each person searched once, with the photo search's record and provenance
    assert len(body["searches"]) == 2, body
    with client.app.state.service.sessions() as s:  # type: ignore[attr-defined]
        assert s.query(Search).count() == searches_before + 2
    names = set()
    for sid in body["searches"]:
        result = client.get(f"/api/v1/searches/{sid}", headers=app["inv"])
        assert result.status_code == 200, result.text
        names.add(result.json()["candidates"][0]["subject"]["id"])
    assert names == {"Colin_Powell", "Tony_Blair"}
    # a job made by the case's video upload lists the searches made by hand
    assert (
        len(client.get(f"/api/v1/video-jobs/{done['id']}", headers=app["inv"]).json()["searches"])
        >= 2
    )
    jpeg = lfw_photo(faces_dir, "Tony_Blair", 2).read_bytes()
    photo = client.post(
        "/api/v1/search",
        headers=app["inv"],
        data={"case_id": str(app["case"])},
        files={"image": ("p.jpg", jpeg, "image/jpeg")},
    )
    assert photo.status_code == 201, photo.text


def test_retention_purge_takes_the_video_and_its_key_frames(
    app: dict[str, Any], done: dict[str, Any]
) -> None:
    """Last in this module (it purges the shared case's probes): the video's bytes, each
    person's vector, landmarks and key-frame crops go; times and boxes stay as the record."""
    from datetime import UTC, datetime, timedelta

    from facetrace.service import cases
    from facetrace.store.service_models import ProbeFaceRow

    client: TestClient = app["client"]
    state = client.app.state.service  # type: ignore[attr-defined]
    probe_id = done["probe"]["id"]
    with state.sessions() as s:
        before = [f.extra for f in s.query(ProbeFaceRow).filter_by(probe_id=probe_id)]
    assert all(
        k["jpeg"] and k["vector"] and k["landmarks"] for e in before for k in e["key_frames"]
    )
    with state.sessions.begin() as s:
        assert cases.purge_due(s, now=datetime.now(UTC) + timedelta(days=400)) >= 1
    with state.sessions() as s:
        probe = s.get(Probe, probe_id)
        assert probe is not None and probe.data is None and probe.purged_at is not None
        after = [f for f in probe.faces]
        assert all(f.vector is None and f.landmarks == [] for f in after)
        for f, old in zip(after, before, strict=True):
            frames = f.extra["key_frames"]
            assert frames and all(set(k) & {"jpeg", "vector", "landmarks"} == set() for k in frames)
            assert [k["timestamp_s"] for k in frames] == [
                k["timestamp_s"] for k in old["key_frames"]
            ]
            assert f.extra["intervals"] == old["intervals"]
    face = client.get(f"/probes/{probe_id}/faces/0/frames/0.jpg", headers=app["inv"])
    assert face.status_code == 404, face.text

"""Malformed input (issue 11, item 7): problem+json 4xx, never a 500, nothing kept; and
an error, even an unexpected one, leaves the keep-alive connection open."""

from __future__ import annotations

import http.client
import io
import json
import sqlite3
import struct
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from facetrace.config import ServiceConfig
from facetrace.service import accounts
from facetrace.service.accounts import Role
from tests.api.conftest import add_user, make_client
from tests.live import serve_thread

BIG = 2**64


def _zip(entries: list[tuple[str, bytes]], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


def _forged_size() -> bytes:
    """A deflated member of 1 MB of zeros whose header says it holds 3 bytes."""
    raw = bytearray(_zip([("p/a.jpg", b"\0" * 1_000_000)], zipfile.ZIP_DEFLATED))
    struct.pack_into("<I", raw, 22, 3)  # local header: uncompressed size
    central = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, 3)  # central directory: the same
    return bytes(raw)


def _cut_off() -> bytes:
    raw = _zip([("p/a.jpg", b"\1" * 50_000)], zipfile.ZIP_DEFLATED)
    return raw[:40] + raw[-100:]


ZIPS = {
    "empty": (_zip([]), "no files"),
    "only folders": (_zip([("p/", b"")]), "no files"),
    "long name": (_zip([("p/" + "x" * 256 + ".jpg", b"1")]), "longer than 255 bytes"),
    "long utf-8 name": (_zip([("p/" + "é" * 128 + ".jpg", b"1")]), "longer than 255 bytes"),
    "file then folder": (_zip([("p", b"1"), ("p/a.jpg", b"1")]), "both a file and a folder"),
    "folder then file": (_zip([("p/a.jpg", b"1"), ("p", b"1")]), "both a file and a folder"),
    "forged size": (_forged_size(), "damaged"),
    "cut off": (_cut_off(), "cannot be unpacked"),
}


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with make_client(tmp_path_factory.mktemp("data")) as client:
        headers = {"Authorization": f"Bearer {add_user(client, 'ada', {Role.ADMIN}, None)}"}
        yield client, headers


def _collection(client: TestClient, headers: dict[str, str]) -> int:
    resp = client.post(
        "/api/v1/collections",
        headers=headers,
        json={"name": f"c-{uuid.uuid4().hex[:6]}", "legal_basis": "x", "retention": "y"},
    )
    assert resp.status_code == 201, resp.text
    return int(resp.json()["id"])


def _imports_dir(client: TestClient) -> Path:
    return Path(client.app.state.service.data_dir) / "imports"  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", list(ZIPS))
def test_a_bad_zip_is_a_422_that_keeps_nothing(
    admin: tuple[TestClient, dict[str, str]], case: str
) -> None:
    client, headers = admin
    coll = _collection(client, headers)
    before = sorted(_imports_dir(client).glob("*")) if _imports_dir(client).exists() else []
    data, _why = ZIPS[case]
    resp = client.post(
        f"/api/v1/collections/{coll}/imports",
        headers=headers,
        files={"file": ("gallery.zip", data, "application/zip")},
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["detail"]
    after = sorted(_imports_dir(client).glob("*")) if _imports_dir(client).exists() else []
    assert after == before


@pytest.mark.parametrize("name", ["y" * 300 + ".zip", "é" * 200 + ".zip", "..", "a\x00b.zip"])
def test_an_upload_name_the_file_system_refuses_is_not_a_500(
    admin: tuple[TestClient, dict[str, str]], name: str
) -> None:
    client, headers = admin
    coll = _collection(client, headers)
    resp = client.post(
        f"/api/v1/collections/{coll}/imports",
        headers=headers,
        files={"file": (name, _zip([("p/a.jpg", b"1")]), "application/zip")},
    )
    assert resp.status_code in (202, 422), resp.text


def test_an_id_above_int64_in_a_form_is_a_422(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        key = add_user(client, "ines", {Role.INVESTIGATOR}, "Dept A")
        resp = client.post(
            "/api/v1/search",
            headers={"Authorization": f"Bearer {key}"},
            data={"case_id": str(BIG), "face": str(BIG)},
            files={"image": ("a.jpg", b"not read", "image/jpeg")},
        )
        assert resp.status_code == 422, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{name}"\r\nContent-Type: application/zip\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _read(conn: http.client.HTTPConnection) -> tuple[int, dict[str, object]]:
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def test_the_connection_survives_errors(tmp_path: Path) -> None:
    """A real uvicorn server: after a 422 for a bad zip and after a genuine internal
    error (a row the service cannot read), the client's next request on the
    same keep-alive connection is answered."""
    cfg = ServiceConfig(data=tmp_path)
    with serve_thread(cfg) as (base, app):
        with app.state.service.sessions.begin() as s:
            user = accounts.create_user(
                s,
                actor=accounts.SYSTEM,
                username="ada",
                password="password-123",
                roles=frozenset({Role.ADMIN}),
                department=None,
            )
            _, key = accounts.create_api_key(s, actor=accounts.actor_of(user), name="t")
        headers = {"Authorization": f"Bearer {key}"}
        conn = http.client.HTTPConnection("127.0.0.1", int(base.rsplit(":", 1)[1]), timeout=30)
        conn.request(
            "POST",
            "/api/v1/collections",
            body=json.dumps({"name": "c", "legal_basis": "x", "retention": "y"}),
            headers={**headers, "Content-Type": "application/json"},
        )
        status, coll = _read(conn)
        assert status == 201
        sock = conn.sock
        assert sock is not None

        body, ctype = _multipart("gallery.zip", ZIPS["empty"][0])
        conn.request(
            "POST",
            f"/api/v1/collections/{coll['id']}/imports",
            body=body,
            headers={**headers, "Content-Type": ctype},
        )
        assert _read(conn)[0] == 422
        conn.request("GET", "/api/v1/collections", headers=headers)
        assert _read(conn)[0] == 200

        db_file = tmp_path / "facetrace.db"
        with sqlite3.connect(db_file) as raw:
            # a stored date that cannot be parsed: a bug's kind of error, not the input's
            raw.execute("UPDATE collection SET created_at = 'not a date'")
        conn.request("GET", "/api/v1/collections", headers=headers)
        status, problem = _read(conn)
        assert status == 500 and problem["title"] == "Internal error"
        conn.request("GET", "/api/v1/me", headers=headers)
        assert _read(conn)[0] == 200
        assert conn.sock is sock  # one connection throughout
        conn.close()

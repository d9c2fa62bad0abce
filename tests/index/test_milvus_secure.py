"""A Milvus server with authentication and TLS, and a database of facetrace's own
(slow: a server of this module's own).

The standalone server runs with ``common.security.authorizationEnabled`` and
``tlsMode: 1`` (one-way TLS) on a certificate made here by ``openssl`` for a CA of the
test's own. The gallery reaches it only through the settings an operator sets
(``token``, ``secure``, ``server_pem_path`` / ``ca_pem_path``, ``server_name``,
``db_name``); a wrong token or a client without TLS is one line naming what to check,
and the token is never printed nor written to the manifest. The command line runs as a
subprocess: pymilvus keeps connections per address in its process, so an earlier TLS
connection in the test process could serve a later plain one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from facetrace.gallery.directory import Gallery
from facetrace.index.persist import read_manifest
from facetrace.store import repo
from tests.gallery.crash_worker import add_random_photo
from tests.milvus_server import TEST_SERVER_CONFIG, RunningMilvus, start_milvus, stop_milvus

pymilvus = pytest.importorskip("pymilvus", reason="the milvus extra is not installed")
pytest.importorskip("milvus", reason="the Milvus server package is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command"),
]

ROOT_TOKEN = "root:Milvus"  # the server's initial root user; it lives for this module only
DATABASE = "facetrace_db"
FACETRACE = str(Path(sys.executable).with_name("facetrace"))


@dataclass(frozen=True)
class SecureServer:
    running: RunningMilvus
    ca: Path
    cert: Path

    @property
    def uri(self) -> str:
        return self.running.uri

    def tls(self) -> dict[str, object]:
        return _tls(self.cert)


def _certificates(where: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for localhost / 127.0.0.1."""

    def openssl(command: str) -> None:
        args = ["openssl", *shlex.split(command)]
        subprocess.run(args, cwd=where, check=True, capture_output=True)

    openssl("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=ca")
    openssl("req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost")
    (where / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem "
        "-days 2 -extfile san.ext"
    )
    return where / "ca.pem", where / "server.pem", where / "server.key"


@pytest.fixture(scope="module")
def secure_server() -> Iterator[SecureServer]:
    data = Path(tempfile.mkdtemp(prefix="facetrace-milvus-secure-"))
    certs = data / "certs"
    certs.mkdir()
    ca, cert, key = _certificates(certs)
    config = {
        **TEST_SERVER_CONFIG,
        "authorization_enabled": True,
        "tls_mode": 1,
        "server_pem_path": str(cert),
        "server_key_path": str(key),
        "ca_pem_path": str(ca),
    }
    running = start_milvus(data / "server", extra_config=config)
    try:
        admin = pymilvus.MilvusClient(uri=running.uri, token=ROOT_TOKEN, **_tls(cert))
        try:
            admin.create_database(DATABASE)
        finally:
            admin.close()
        yield SecureServer(running, ca, cert)
    finally:
        stop_milvus(running)
        shutil.rmtree(data, ignore_errors=True)  # ~500 MB


def _tls(cert: Path) -> dict[str, object]:
    """pymilvus's one-way TLS: the server's certificate and the name it was issued to."""
    return {"secure": True, "server_pem_path": str(cert), "server_name": "localhost"}


def test_gallery_on_an_authenticated_tls_server_in_its_own_database(
    secure_server: SecureServer, tmp_path: Path
) -> None:
    params = {
        "uri": secure_server.uri,
        "token": ROOT_TOKEN,
        "db_name": DATABASE,
        "collection": "faces_secure",
        **secure_server.tls(),
    }
    data = tmp_path / "data"
    rng = np.random.default_rng(4)
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        for i in range(12):
            add_random_photo(g, rng, f"secure-{i}")
        with g.sessions() as s:
            truth = repo.index_entries(s, repo.searchable_ids(s), g.descriptor.dim)
        _, found = g.index.search(truth.vectors[:3], 1)
        assert found[:, 0].tolist() == truth.ids[:3].tolist()
    with Gallery.open(data, index_kind="milvus", index_params=params) as g:
        assert g.last_repair["mode"] == "watermark" and g.index.count == 12
        health = g.index_health()
        assert health["ok"] is True and health["load_state"] == "Loaded", health
    manifest = (data / "index.faiss").read_text()
    assert ROOT_TOKEN not in manifest and "token" not in manifest
    saved = read_manifest(data / "index.faiss")["params"]
    assert saved["db_name"] == DATABASE and saved["server_pem_path"] == str(secure_server.cert)
    tls = _tls(secure_server.cert)
    default = pymilvus.MilvusClient(uri=secure_server.uri, token=ROOT_TOKEN, **tls)
    ours = pymilvus.MilvusClient(uri=secure_server.uri, token=ROOT_TOKEN, db_name=DATABASE, **tls)
    try:
        assert "faces_secure" not in default.list_collections()  # not in the default database
        assert "faces_secure" in ours.list_collections()
        ours.drop_collection("faces_secure")
    finally:
        default.close()
        ours.close()


def _cli(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FACETRACE_MILVUS__")}
    return subprocess.run(
        [FACETRACE, "--data", str(data), *args],
        env={**clean, "FACETRACE_INDEX_KIND": "milvus", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_index_status_with_token_and_tls_and_refusals_in_one_line(
    secure_server: SecureServer, tmp_path: Path
) -> None:
    good = {
        "FACETRACE_MILVUS__URI": secure_server.uri,
        "FACETRACE_MILVUS__TOKEN": ROOT_TOKEN,
        "FACETRACE_MILVUS__DB_NAME": DATABASE,
        "FACETRACE_MILVUS__COLLECTION": "faces_status",
        "FACETRACE_MILVUS__SECURE": "true",
        "FACETRACE_MILVUS__SERVER_PEM_PATH": str(secure_server.cert),
        "FACETRACE_MILVUS__SERVER_NAME": "localhost",
        "FACETRACE_MILVUS__TIMEOUT": "10",
    }
    done = _cli(tmp_path / "data", good, "index", "status")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["index"]["db_name"] == DATABASE and info["index"]["secure"] is True
    assert info["index"]["server_pem_path"] == str(secure_server.cert)
    assert info["health"]["ok"] is True and info["health"]["load_state"] == "Loaded"
    assert ROOT_TOKEN not in done.stdout + done.stderr

    refused = {
        "a wrong token": {**good, "FACETRACE_MILVUS__TOKEN": "root:wrong-4711"},
        "no token": {k: v for k, v in good.items() if k != "FACETRACE_MILVUS__TOKEN"},
        "no TLS": {k: v for k, v in good.items() if "SECURE" not in k and "PEM" not in k},
    }
    for why, env in refused.items():
        out = _cli(tmp_path / why.replace(" ", "-"), env, "index", "status")
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 1, (why, out.stdout, out.stderr)
        assert len(lines) == 1 and "Traceback" not in out.stdout + out.stderr, (why, lines)
        assert f"cannot connect to Milvus at {secure_server.uri}" in lines[0], (why, lines)
        assert "FACETRACE_MILVUS__TOKEN" in lines[0] and "FACETRACE_MILVUS__SECURE" in lines[0]
        assert "wrong-4711" not in out.stdout + out.stderr and ROOT_TOKEN not in lines[0]

"""The command line on Milvus, configured only through environment variables.

Milvus Lite (a local file) stands in for a server: the same settings with
``FACETRACE_MILVUS__URI=http://host:19530`` reach a real one.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from facetrace.cli.main import app
from tests.galleries import ENROLLED

pymilvus = pytest.importorskip("pymilvus", reason="the milvus extra is not installed")

runner = CliRunner()
TOKEN = "root:not-a-real-secret-4711"


def run(data: Path, *args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, ["--data", str(data), *args])
    return res.exit_code, res.stdout, res.stderr


@pytest.fixture()
def milvus_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """FACETRACE_INDEX_KIND=milvus with a Milvus Lite file; returns that file's path."""
    lite = tmp_path / "milvus" / "vectors.db"
    lite.parent.mkdir()
    monkeypatch.setenv("FACETRACE_INDEX_KIND", "milvus")
    monkeypatch.setenv("FACETRACE_MILVUS__URI", str(lite))
    monkeypatch.setenv("FACETRACE_MILVUS__TOKEN", TOKEN)
    monkeypatch.setenv("FACETRACE_MILVUS__COLLECTION", "faces_cli")
    monkeypatch.setenv("FACETRACE_MILVUS__SEARCH_PARAMS", "{}")
    return lite


def _tree(mini_lfw: Path, root: Path, names: list[str]) -> Path:
    for name in names:
        shutil.copytree(mini_lfw / name, root / name)
    return root


def test_ingest_search_status_on_milvus_lite(
    milvus_env: Path, mini_lfw: Path, probe_of: dict[str, Path], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    lfw = _tree(mini_lfw, tmp_path / "lfw", ENROLLED[:2])
    press = _tree(mini_lfw, tmp_path / "press", ENROLLED[2:3])
    for tree, collection in ((lfw, "lfw"), (press, "press")):
        code, out, err = run(
            data, "ingest", str(tree), "--collection", collection, "--workers", "1", "--json"
        )
        assert code == 0, err
        assert json.loads(out)["photos_added"] == 2 * len(list(tree.iterdir()))

    code, out, err = run(data, "status", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["index"]["kind"] == "milvus" and info["index"]["count"] == 6
    assert info["index"]["uri"] == str(milvus_env)
    assert info["index"]["collection"] == "faces_cli"
    code, table, err = run(data, "status")
    assert code == 0 and "kind=milvus" in table
    # the token is in neither output nor any file of the data directory
    assert TOKEN not in out + table + err
    for path in data.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path

    name = ENROLLED[2]
    code, out, err = run(data, "search", str(probe_of[name]), "--force", "--json")
    assert code == 0, err
    assert json.loads(out)["faces"][0]["candidates"][0]["subject"]["id"] == name
    code, out, err = run(
        data, "search", str(probe_of[name]), "--force", "--json", "--collection", "lfw",
        "--show-below",
    )  # fmt: skip
    assert code == 0, err
    face = json.loads(out)["faces"][0]
    found = face["candidates"] + face["below_threshold"]
    assert found and all(c["provenance"]["collection"] == "lfw" for c in found)
    assert name not in {c["subject"]["id"] for c in found}


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1", "ftp://milvus.invalid"])
@pytest.mark.parametrize("command", [["status"], ["serve", "--port", "8765"]])
def test_bad_milvus_uri_is_one_line(
    milvus_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    uri: str,
    command: list[str],
) -> None:
    monkeypatch.setenv("FACETRACE_MILVUS__URI", uri)
    monkeypatch.setenv("FACETRACE_MILVUS__TIMEOUT", "5")
    code, out, err = run(tmp_path / "data", *command)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and "cannot connect to Milvus" in lines[0]
    assert "Traceback" not in out + err and TOKEN not in out + err


def test_milvus_without_uri_says_which_setting(
    milvus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FACETRACE_MILVUS__URI")
    code, _, err = run(tmp_path / "data", "status")
    assert code == 1 and "FACETRACE_MILVUS__URI" in err and "Traceback" not in err


def test_invalid_milvus_setting_is_one_line(
    milvus_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACETRACE_MILVUS__NUM_PARTITIONS", "0")
    code, _, err = run(tmp_path / "data", "status")
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    assert "FACETRACE_MILVUS__NUM_PARTITIONS" in err


def test_collection_of_the_old_schema_is_refused_then_refilled(
    milvus_env: Path, tmp_path: Path
) -> None:
    client = pymilvus.MilvusClient(uri=str(milvus_env))
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=128)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="IP", params={})
    client.create_collection("faces_cli", schema=schema, index_params=index)
    client.close()
    data = tmp_path / "data"
    code, _, err = run(data, "status")
    assert code == 1 and "group_id" in err and "Drop it" in err and "Traceback" not in err
    client = pymilvus.MilvusClient(uri=str(milvus_env))
    client.drop_collection("faces_cli")
    client.close()
    code, out, err = run(data, "status", "--json")
    assert code == 0, err
    assert json.loads(out)["index"]["kind"] == "milvus"


def test_index_status_on_a_server_shows_settings_and_health(
    milvus_env: Path,
    milvus_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Against the session's standalone server: every Milvus setting, the server's
    health, never the token; a bad consistency level is one line naming the variable."""
    # a new collection (not one of the pool's, created earlier with other settings)
    collection = f"status_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("FACETRACE_MILVUS__URI", milvus_uri)
    monkeypatch.setenv("FACETRACE_MILVUS__COLLECTION", collection)
    monkeypatch.setenv("FACETRACE_MILVUS__CONSISTENCY_LEVEL", "Bounded")
    monkeypatch.setenv("FACETRACE_MILVUS__SHARDS_NUM", "2")
    monkeypatch.setenv("FACETRACE_MILVUS__INDEX_TYPE", "HNSW")
    monkeypatch.setenv("FACETRACE_MILVUS__INDEX_PARAMS", '{"M": 16, "efConstruction": 64}')
    monkeypatch.setenv("FACETRACE_MILVUS__SEARCH_PARAMS", '{"ef": 64}')
    try:
        code, out, err = run(tmp_path / "data", "index", "status")
        assert code == 0, err
        info = json.loads(out)
        index = info["index"]
        assert index["kind"] == "milvus" and index["uri"] == milvus_uri
        assert index["collection"] == collection and index["consistency_level"] == "Bounded"
        assert index["shards_num"] == 2 and index["index_type"] == "HNSW"
        assert index["index_params"] == {"M": 16, "efConstruction": 64}
        assert index["search_params"] == {"ef": 64}
        health = info["health"]
        assert health["ok"] is True and health["load_state"] == "Loaded"
        assert health["server"].startswith("v2.") and health["latency_ms"] > 0
        assert TOKEN not in out + err
        client = pymilvus.MilvusClient(uri=milvus_uri)
        try:  # the settings reached the server: the collection was created with them
            described = client.describe_collection(collection)
            assert described["num_shards"] == 2
            assert described["consistency_level"] in (2, "Bounded")
        finally:
            client.close()
    finally:
        pymilvus.MilvusClient(uri=milvus_uri).drop_collection(collection)
    monkeypatch.setenv("FACETRACE_MILVUS__CONSISTENCY_LEVEL", "Sometimes")
    code, _, err = run(tmp_path / "other", "index", "status")
    assert code == 1 and "FACETRACE_MILVUS__CONSISTENCY_LEVEL" in err and "Traceback" not in err

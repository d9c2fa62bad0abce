"""Milvus specifics on a real Milvus Lite file: old schemas, bad URIs, what the manifest keeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facetrace.errors import IndexUnavailable
from facetrace.index.base import Selector
from facetrace.index.factory import load_index
from facetrace.index.milvus import GROUP_FIELD, MilvusIndex

pymilvus = pytest.importorskip("pymilvus", reason="the milvus extra is not installed")

DIM = 8


def _old_collection(uri: str, name: str) -> None:
    """A collection as facetrace created it before faces carried groups: id + vector."""
    client = pymilvus.MilvusClient(uri=uri)
    schema = pymilvus.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
    schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=DIM)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="FLAT", metric_type="IP", params={})
    client.create_collection(name, schema=schema, index_params=index)
    client.insert(name, [{"id": i, "vector": [1.0] + [0.0] * (DIM - 1)} for i in range(3)])
    client.close()


def test_collection_without_groups_is_refused_and_left_alone(tmp_path: Path) -> None:
    uri = str(tmp_path / "old.db")
    _old_collection(uri, "faces")
    with pytest.raises(IndexUnavailable) as info:
        MilvusIndex(DIM, uri=uri, collection="faces")
    message = str(info.value)
    assert GROUP_FIELD in message and "faces" in message and "Drop it" in message
    client = pymilvus.MilvusClient(uri=uri)  # the refused collection still holds its rows
    try:
        rows = client.query("faces", filter="", output_fields=["count(*)"])
        assert rows[0]["count(*)"] == 3
    finally:
        client.close()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1", "ftp://milvus.invalid", "/no/such/dir/x.db"])
def test_bad_uri_is_one_clear_line(uri: str) -> None:
    with pytest.raises(IndexUnavailable) as info:
        MilvusIndex(DIM, uri=uri, timeout=5)
    message = str(info.value)
    assert uri in message and "\n" not in message
    assert "cannot connect to Milvus" in message


def test_a_server_that_refuses_says_what_to_check() -> None:
    """pymilvus gives one message for a server that is down, a wrong token and a TLS
    mismatch: the error adds the settings to check (a refused token and a client without
    TLS are shown on a real server in test_milvus_secure.py)."""
    with pytest.raises(IndexUnavailable) as info:
        MilvusIndex(DIM, uri="http://127.0.0.1:1", token="root:s3cret-4711", timeout=5)
    message = str(info.value)
    assert "\n" not in message and "s3cret" not in message
    for setting in ("FACETRACE_MILVUS__TOKEN", "FACETRACE_MILVUS__SECURE", "__SERVER_PEM_PATH"):
        assert setting in message


def test_manifest_keeps_no_token_and_configured_settings_win(tmp_path: Path) -> None:
    uri = str(tmp_path / "vectors.db")
    x = np.eye(DIM, dtype=np.float32)
    index = MilvusIndex(DIM, uri=uri, collection="first", token="root:s3cret-token")
    index.add(np.arange(DIM, dtype=np.int64), x, np.full(DIM, 4, dtype=np.int64))
    path = tmp_path / "index.faiss"
    index.save(path)
    index.close()
    assert "s3cret" not in path.read_text()
    again = load_index(path, DIM, token="root:s3cret-token")
    assert isinstance(again, MilvusIndex)
    try:
        assert again.count == DIM and again.settings()["collection"] == "first"
        _, got = again.search(x[:2], 1, Selector(groups=frozenset({4})))
        assert got[:, 0].tolist() == [0, 1]
    finally:
        again.close()
    other = load_index(path, DIM, collection="second")  # what is configured now wins
    assert isinstance(other, MilvusIndex)
    try:
        assert other.settings()["collection"] == "second" and other.count == 0
    finally:
        other.close()

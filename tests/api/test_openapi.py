"""Every REST operation documents what it answers (issue 10 item 8): a client generated
from the OpenAPI document gets typed results, and a new route cannot ship without one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from facetrace.config import ServiceConfig
from facetrace.server.app import create_app


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/")
        for method, op in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (and a list's items) to the schema that names the fields."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _resolve(doc, doc["components"]["schemas"][name])
    if schema.get("type") == "array":
        return _resolve(doc, schema["items"])
    return schema


def test_every_json_answer_has_a_schema_with_fields(tmp_path: Path) -> None:
    doc = create_app(ServiceConfig(data=tmp_path)).openapi()
    ops = _operations(doc)
    assert len(ops) > 25, "the API's operations are in the document"
    untyped = []
    for method, path, op in ops:
        for status, answer in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = answer.get("content", {})
            if "application/json" not in content:
                continue  # HTML, images and files document their media type instead
            schema = _resolve(doc, content["application/json"].get("schema", {}))
            if not schema.get("properties"):
                untyped.append(f"{method} {path} -> {status}")
    assert not untyped, "operations without a response schema:\n" + "\n".join(untyped)


def test_a_search_answer_documents_the_candidate_and_its_provenance(tmp_path: Path) -> None:
    doc = create_app(ServiceConfig(data=tmp_path)).openapi()
    schemas = doc["components"]["schemas"]
    answer = doc["paths"]["/api/v1/searches/{search_id}"]["get"]["responses"]["200"]
    search = _resolve(doc, answer["content"]["application/json"]["schema"])
    candidate = _resolve(doc, search["properties"]["candidates"])
    assert {"score", "false_match_rate", "subject", "provenance"} <= set(candidate["properties"])
    provenance = _resolve(doc, candidate["properties"]["provenance"])
    assert {"collection", "legal_basis", "source_url"} <= set(provenance["properties"])
    assert "SearchOut" in schemas

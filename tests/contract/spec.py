"""Dune's OpenAPI specification, as the contract tests use it.

``dune-openapi.json`` beside this file is a verbatim copy of ``../shared/reference/dune-openapi.json``:
Dune's own OpenAPI 3.0 document of the analytics API, from Dune's public documentation
repository (``duneanalytics/dune-docs``, file ``analytics-openapi.json``, last changed
2026-01-16). It is kept in the repository so the suite runs without ``../shared``;
``test_spec_copy.py`` checks that it still equals the reference wherever the reference exists.

:func:`contract` is that document with two kinds of edits, each listed below with its reason:

* ``SPEC_CORRECTIONS``: where the document is wrong about the API Dune serves and its own
  docs and official clients use. Each correction checks that the error is still there, so a
  fixed upstream document makes the test suite say which correction to drop.
* strictness: request and response objects allow no undeclared fields (the document leaves
  ``additionalProperties`` open), so a field the client invents, or the emulator adds, fails.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).with_name("dune-openapi.json")
SERVER = "https://api.dune.com"
BASE_PATH = "/api"
METHODS = ("get", "post", "put", "patch", "delete")
PERFORMANCE = {"type": "string", "enum": ["medium", "large"]}
ERROR = {"$ref": "#/components/schemas/models.Error400"}


def raw_spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


# --------------------------------------------------------------------------- corrections
# Each takes the spec, asserts the error it corrects is still there, and corrects it.


def _upsert_has_no_path_parameter(spec: dict[str, Any]) -> None:
    """POST /v1/materialized-views declares a ``name`` *path* parameter its path does not have
    (openapi-core refuses the whole document for it). The name is a body field."""
    operation = spec["paths"]["/v1/materialized-views"]["post"]
    assert any(p["in"] == "path" for p in operation["parameters"])
    operation["parameters"] = [p for p in operation["parameters"] if p["in"] != "path"]


def _latest_result_has_no_query_id_parameter(spec: dict[str, Any]) -> None:
    """GET /v1/query/{query_id}/results (and /csv) require a ``queryID`` *query* parameter;
    the id is in the path, and no official client sends it."""
    for path in ("/v1/query/{query_id}/results", "/v1/query/{query_id}/results/csv"):
        operation = spec["paths"][path]["get"]
        assert any(p["name"] == "queryID" for p in operation["parameters"])
        operation["parameters"] = [p for p in operation["parameters"] if p["name"] != "queryID"]


def _row_values_are_any_json(spec: dict[str, Any]) -> None:
    """A result row types every value as an object; values are numbers, strings, booleans,
    null, lists or objects."""
    row = spec["components"]["schemas"]["models.Row"]
    assert row["additionalProperties"] == {"type": "object"}
    row["additionalProperties"] = {}


def _execute_query_takes_a_json_body(spec: dict[str, Any]) -> None:
    """POST /v1/query/{query_id}/execute lists ``performance`` and ``query_parameters`` as
    query parameters; Dune's docs and every official client send them as a JSON body."""
    operation = spec["paths"]["/v1/query/{query_id}/execute"]["post"]
    assert "requestBody" not in operation
    operation["parameters"] = [
        p for p in operation["parameters"] if p["in"] != "query" or p["name"] == "api_key"
    ]
    operation["requestBody"] = {
        "required": False,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "performance": PERFORMANCE,
                        "query_parameters": {"type": "object"},
                    },
                }
            }
        },
    }


def _pipeline_execute_takes_a_query_id(spec: dict[str, Any]) -> None:
    """POST /v1/pipelines/execute documents only ``pipeline``; Dune's page for it
    (dune-execute-pipeline.md) documents the lineage form ``{query_id, performance,
    query_parameters}``, which this provider sends."""
    schema = spec["components"]["schemas"]["models.ExecutePipelineRequest"]
    assert set(schema["properties"]) == {"pipeline"}
    schema["properties"].update(
        query_id={"type": "integer"}, performance=PERFORMANCE, query_parameters={"type": "object"}
    )


def _csv_is_text_csv_and_errors_are_json(spec: dict[str, Any]) -> None:
    """The CSV endpoints say ``text/plain`` for the CSV and for their errors; Dune serves the
    CSV as ``text/csv`` and errors as JSON, as on every other endpoint."""
    for path in ("/v1/execution/{execution_id}/results/csv", "/v1/query/{query_id}/results/csv"):
        responses = spec["paths"][path]["get"]["responses"]
        assert "text/plain" in responses["200"]["content"]
        responses["200"]["content"] = {"text/csv": {"schema": {"type": "string"}}}
        for status, response in responses.items():
            if status != "200":
                response["content"] = {"application/json": response["content"]["text/plain"]}


def _latest_result_needs_a_key(spec: dict[str, Any]) -> None:
    """The latest-result endpoints document no 401, though they need a key like every other."""
    for path in ("/v1/query/{query_id}/results", "/v1/query/{query_id}/results/csv"):
        responses = spec["paths"][path]["get"]["responses"]
        assert "401" not in responses
        responses["401"] = _error("Unauthorized")


def _create_query_with_a_slash(spec: dict[str, Any]) -> None:
    """Dune also serves POST /v1/query/ (with the slash): the official SDK's create_query uses it."""
    assert "/v1/query/" not in spec["paths"]
    spec["paths"]["/v1/query/"] = {"post": copy.deepcopy(spec["paths"]["/v1/query"]["post"])}


def _statuses_from_dunes_error_pages(spec: dict[str, Any]) -> None:
    """Dune's "Troubleshooting" and "Rate Limits" pages document statuses the document leaves
    out: 429 (rate limited) on every endpoint; 402 (credit limit) on any request that would
    pass it, so on every endpoint that starts work; 409 (conflict) where a request conflicts
    with existing state: an upsert of a view name another query already builds."""
    starts_work = {
        ("/v1/pipelines/execute", "post"),
        ("/v1/query/{query_id}/pipeline/execute", "post"),
        ("/v1/materialized-views", "post"),
        ("/v1/materialized-views/{name}/refresh", "post"),
    }
    for path, method, operation in _operations(spec):
        responses = operation["responses"]
        assert "429" not in responses
        responses["429"] = _error("Too Many Requests")
        if (path, method) in starts_work:
            assert "402" not in responses
            responses["402"] = _error("Payment Required")
    upsert = spec["paths"]["/v1/materialized-views"]["post"]["responses"]
    assert "409" not in upsert
    upsert["409"] = _error("Conflict")


def _tiers_are_enumerated(spec: dict[str, Any]) -> None:
    """The view upsert and refresh name their tiers (medium, large) in prose, not as an enum."""
    schemas = spec["components"]["schemas"]
    for name in ("matviews.MatviewsUpsertRequest", "matviews.MatviewsRefreshRequest"):
        performance = schemas[name]["properties"]["performance"]
        assert "enum" not in performance and "`medium`, `large`" in performance["description"]
        performance["enum"] = PERFORMANCE["enum"]


def _json_bodies_are_json(spec: dict[str, Any]) -> None:
    """Several request bodies are typed ``*/*``; they are JSON documents (the official clients
    send ``application/json``), and only that media type lets a validator read them."""
    loose = [
        op["requestBody"]
        for _, _, op in _operations(spec)
        if "*/*" in op.get("requestBody", {}).get("content", {})
    ]
    assert loose
    for body in loose:
        body["content"] = {"application/json": body["content"].pop("*/*")}


SPEC_CORRECTIONS: tuple[Callable[[dict[str, Any]], None], ...] = (
    _json_bodies_are_json,
    _upsert_has_no_path_parameter,
    _latest_result_has_no_query_id_parameter,
    _row_values_are_any_json,
    _execute_query_takes_a_json_body,
    _pipeline_execute_takes_a_query_id,
    _csv_is_text_csv_and_errors_are_json,
    _latest_result_needs_a_key,
    _create_query_with_a_slash,
    _statuses_from_dunes_error_pages,
    _tiers_are_enumerated,
)


def _close_objects(schema: Any) -> None:
    """No undeclared fields in any object that declares its fields (free-form maps such as
    ``query_parameters`` declare none and stay open)."""
    if isinstance(schema, dict):
        if schema.get("properties") and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _close_objects(value)
    elif isinstance(schema, list):
        for value in schema:
            _close_objects(value)


@cache
def _contract_json() -> str:
    spec = raw_spec()
    for correct in SPEC_CORRECTIONS:
        correct(spec)
    _close_objects(spec["components"]["schemas"])
    for _, _, operation in _operations(spec):
        _close_objects(operation.get("requestBody"))
    return json.dumps(spec)


def contract() -> dict[str, Any]:
    """The corrected, strict specification (a fresh copy each call)."""
    return json.loads(_contract_json())


def operations(spec: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """Every ``(METHOD, path)`` of the specification, paths as the spec writes them."""
    return [(method.upper(), path) for path, method, _ in _operations(spec or raw_spec())]

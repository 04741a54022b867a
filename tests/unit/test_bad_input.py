"""One table of bad inputs: each gets our own clear error, never a library traceback or a hang.

Arguments, connections and server answers. Every row asserts the error type is one of the
provider's, the message names the problem, it is short, and it does not carry the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_dune.exceptions import DuneError
from airflow_provider_dune.hooks import http as transport
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator
from tests.conftest import TEST_API_KEY, TEST_BASE_URL

STATUS = f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status"
EXECUTE = f"{TEST_BASE_URL}/v1/pipelines/execute"


def q(i, deps=(), **extra):
    return {"id": i, "dependencies": list(deps), "query_execution": {"query_id": 7, **extra}}


def operator(**kwargs) -> Callable[[Any], Any]:
    return lambda m: DuneRunPipelineOperator(task_id="t", **kwargs).execute({"ti": None})


def conn(connection: dict) -> Callable[[Any], Any]:
    def go(m):
        m.setenv("AIRFLOW_CONN_DUNE_DEFAULT", json.dumps(connection))
        return DuneHook().get_pipeline_status("P1")

    return go


def answer(**response) -> Callable[[Any], Any]:
    def go(m):
        m.requests_mock.get(STATUS, **response)
        return DuneHook(retry_limit=2, retry_delay=0.001).get_pipeline_status("P1")

    return go


def answer_execute(**response) -> Callable[[Any], Any]:
    def go(m):
        m.requests_mock.post(EXECUTE, **response)
        return DuneHook(retry_limit=2, retry_delay=0.001).execute_pipeline(query_id=7)

    return go


CASES: list[tuple[str, Callable[[Any], Any], str]] = [
    # --- arguments
    ("neither query_id nor nodes", lambda m: DuneRunPipelineOperator(task_id="t"), "exactly one of query_id"),
    (
        "both query_id and nodes",
        lambda m: DuneRunPipelineOperator(task_id="t", query_id=1, nodes=[q(1)]),
        "exactly one of query_id",
    ),
    (
        "unknown performance tier",
        operator(query_id=1, performance="xl"),
        "performance tiers medium and large",
    ),
    # Dune's API documents no "small" tier for any endpoint.
    ("undocumented small tier", operator(query_id=1, performance="small"), "performance is 'small'"),
    ("query id not a number", operator(query_id="abc"), "query_id must be an integer"),
    ("negative query id", operator(query_id=-3), "positive integer"),
    ("nodes not a list", operator(nodes={"id": 1}), "nodes must be a list"),
    ("empty nodes", operator(nodes=[]), "at least one node"),
    ("duplicate node ids", operator(nodes=[q(1), q(1)]), "used more than once: [1]"),
    ("unknown dependency", operator(nodes=[q(1, deps=[4])]), "node 1 depends on [4]"),
    ("self dependency", operator(nodes=[q(1, deps=[1])]), "depends on itself"),
    ("cycle", operator(nodes=[q(1, deps=[2]), q(2, deps=[1])]), "cycle: 1 -> 2 -> 1"),
    (
        "node with both kinds",
        operator(
            nodes=[{"id": 1, "query_execution": {"query_id": 1}, "materialized_view_refresh": {"name": "v"}}]
        ),
        "exactly one of",
    ),
    ("node with no kind", operator(nodes=[{"id": 1}]), "has neither"),
    ("node without id", operator(nodes=[{"query_execution": {"query_id": 1}}]), "has no 'id'"),
    ("unknown node key", operator(nodes=[{"id": 1, "query": 1}]), "unknown keys ['query']"),
    ("view without name", operator(nodes=[{"id": 1, "materialized_view_refresh": {}}]), "needs a 'name'"),
    ("parameters not a mapping", operator(query_id=1, query_parameters=[1, 2]), "must be a mapping"),
    ("templated nodes not JSON", operator(nodes="{{ oops"), "not JSON"),
    (
        "zero poll interval",
        lambda m: DuneRunPipelineOperator(task_id="t", query_id=1, poll_interval=0),
        "poll_interval must be a positive, finite number",
    ),
    (
        "negative timeout",
        lambda m: DuneRunPipelineOperator(task_id="t", query_id=1, timeout=-1),
        "timeout must be a positive, finite number of seconds, got -1",
    ),
    (
        "id that rewrites the URL path",
        lambda m: DuneHook().get_pipeline_status("../x"),
        "not a valid Dune id",
    ),
    # --- connections
    (
        "missing connection",
        lambda m: DuneHook("nope").get_pipeline_status("P1"),
        "no Airflow connection 'nope'",
    ),
    ("connection without key", conn({"conn_type": "dune"}), "has no API key"),
    ("key with whitespace", conn({"conn_type": "dune", "password": "ab c"}), "whitespace"),
    (
        "host with a wrong scheme",
        conn({"conn_type": "dune", "password": "k", "host": "ftp://x/api"}),
        "not an http(s) base URL",
    ),
    (
        "key in the host's query string",
        conn({"conn_type": "dune", "password": "k", "host": "http://x/api?api_key=k"}),
        "query string",
    ),
    (
        "non-numeric retry setting",
        conn({"conn_type": "dune", "password": "k", "extra": {"retry_limit": "many"}}),
        "retry_limit (in the extras of connection 'dune_default') must be a positive whole number",
    ),
    (
        "negative timeout setting",
        conn({"conn_type": "dune", "password": "k", "extra": {"timeout": -1}}),
        "timeout (in the extras of connection 'dune_default') must be a positive",
    ),
    # --- server answers
    ("malformed JSON", answer(text="{not json"), "not JSON"),
    ("empty body", answer(text=""), "empty body"),
    (
        "HTML gateway page",
        answer(
            status_code=502,
            text="<html><h1>502 Bad Gateway</h1></html>",
            headers={"Content-Type": "text/html"},
        ),
        "HTML page instead of JSON",
    ),
    ("JSON list instead of object", answer(json=[1, 2]), "expected a JSON object, got list"),
    ("status field missing", answer(json={"node_executions": []}), "has no 'status' field"),
    ("status of the wrong type", answer(json={"status": 5}), "has no 'status' field"),
    (
        "node_executions not a list",
        answer(json={"status": "executing", "node_executions": "x"}),
        "'node_executions' is str",
    ),
    (
        "node entry not an object",
        answer(json={"status": "executing", "node_executions": [3]}),
        "pipeline node #0",
    ),
    (
        "huge HTML error body",
        answer(status_code=500, text="<html>" + "x" * 5_000_000, headers={"Content-Type": "text/html"}),
        "HTML page",
    ),
    ("bad key", answer(status_code=401, json={"error": "invalid API Key"}), "Check the API key"),
    ("unknown pipeline", answer(status_code=404, json={"error": "Object not found"}), "Object not found"),
    ("execute answer without an id", answer_execute(json={"ok": True}), "no 'pipeline_execution_id'"),
    ("execute answer not JSON", answer_execute(text="<html>"), "may have started work"),
    (
        "execute 500",
        answer_execute(status_code=500, json={"error": "Internal error"}),
        "may have started work",
    ),
]


@pytest.fixture
def m(monkeypatch, requests_mock, dune_conn):
    monkeypatch.setattr(transport.time, "sleep", lambda s: None)
    monkeypatch.requests_mock = requests_mock  # type: ignore[attr-defined]
    return monkeypatch


def test_the_table_is_at_least_thirty_distinct_inputs():
    assert len({name for name, _, _ in CASES}) == len(CASES) >= 30


@pytest.mark.parametrize(("name", "call", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error(m, name, call, expected):
    with pytest.raises(DuneError) as err:
        call(m)
    text = str(err.value)
    assert expected in text, text
    assert len(text) < 1500
    assert TEST_API_KEY not in text
    assert "Traceback" not in text

from __future__ import annotations

import json

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from airflow_provider_dune import __version__
from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneResponseError
from airflow_provider_dune.hooks import dune as hook_module
from airflow_provider_dune.hooks import http as transport
from airflow_provider_dune.hooks.dune import DuneHook
from tests.conftest import TEST_API_KEY, TEST_BASE_URL

EXECUTE = f"{TEST_BASE_URL}/v1/pipelines/execute"
STATUS = f"{TEST_BASE_URL}/v1/pipelines/executions/P1/status"


@pytest.fixture
def sleeps(monkeypatch):
    """Record the hook's backoff waits instead of sleeping them."""
    waits: list[float] = []
    monkeypatch.setattr(transport.time, "sleep", waits.append)
    return waits


@pytest.fixture
def hook(dune_conn):
    return DuneHook(retry_delay=0.01)


def assert_no_key_in_urls(m):
    for req in m.request_history:
        assert TEST_API_KEY not in req.url
        assert "api_key" not in req.url


def test_execute_pipeline_query_form_sends_documented_request(hook, requests_mock):
    requests_mock.post(EXECUTE, json={"pipeline_execution_id": "P1"})
    pid = hook.execute_pipeline(query_id=1234, performance="large", query_parameters={"day": "2024-01-01"})
    assert pid == "P1"
    req = requests_mock.last_request
    assert req.method == "POST"
    assert req.headers["X-Dune-Api-Key"] == TEST_API_KEY
    assert req.headers["User-Agent"] == f"airflow-provider-dune/{__version__}"
    assert req.json() == {"query_id": 1234, "performance": "large", "query_parameters": {"day": "2024-01-01"}}
    assert_no_key_in_urls(requests_mock)


def test_execute_pipeline_nodes_form(hook, requests_mock):
    requests_mock.post(EXECUTE, json={"pipeline_execution_id": "P2"})
    nodes = [
        {"id": 1, "materialized_view_refresh": {"name": "dune.t.result_v"}},
        {"id": 2, "dependencies": [1], "query_execution": {"query_id": 5}},
    ]
    assert hook.execute_pipeline(nodes=nodes) == "P2"
    sent = requests_mock.last_request.json()["pipeline"]["nodes"]
    assert sent[1] == {
        "id": 2,
        "dependencies": [1],
        "query_execution": {"query_id": 5},
    }
    assert "performance" not in sent[0]["materialized_view_refresh"]  # no tier chosen, none sent


def test_invalid_nodes_fail_before_any_request(hook, requests_mock):
    with pytest.raises(DuneConfigurationError, match="cycle"):
        hook.execute_pipeline(
            nodes=[
                {"id": 1, "dependencies": [2], "query_execution": {"query_id": 1}},
                {"id": 2, "dependencies": [1], "query_execution": {"query_id": 1}},
            ]
        )
    assert requests_mock.call_count == 0


def test_get_pipeline_status(hook, requests_mock):
    requests_mock.get(
        STATUS,
        json={
            "status": "executing",
            "node_executions": [
                {
                    "id": 1,
                    "query_execution_status": {"status": "executing", "query_id": 9, "execution_id": "E1"},
                }
            ],
        },
    )
    status = hook.get_pipeline_status("P1")
    assert status.status == "executing"
    assert status.nodes[0].execution_id == "E1"
    assert requests_mock.last_request.headers["X-Dune-Api-Key"] == TEST_API_KEY


def test_get_execution_status_and_cancel(hook, requests_mock):
    requests_mock.get(f"{TEST_BASE_URL}/v1/execution/E1/status", json={"state": "QUERY_STATE_EXECUTING"})
    requests_mock.post(f"{TEST_BASE_URL}/v1/execution/E1/cancel", json={"success": True})
    assert hook.get_execution_status("E1").state == "QUERY_STATE_EXECUTING"
    assert hook.cancel_execution("E1") is True
    assert requests_mock.last_request.method == "POST"


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (400, {"error": "Bad Request: query_id missing"}, "HTTP 400): Bad Request: query_id missing"),
        (401, {"error": "invalid API Key"}, "Check the API key"),
        (402, {"error": "This API request would exceed your configured limits"}, "exceed your configured"),
        (403, {"error": "Not allowed"}, "HTTP 403): Not allowed"),
        (404, {"error": "Object not found"}, "HTTP 404): Object not found"),
    ],
)
def test_http_errors_become_dune_api_error(hook, requests_mock, sleeps, status, body, expected):
    requests_mock.get(STATUS, status_code=status, json=body)
    with pytest.raises(DuneApiError) as err:
        hook.get_pipeline_status("P1")
    assert err.value.status_code == status
    assert err.value.message == body["error"]
    assert expected in str(err.value)
    assert TEST_API_KEY not in str(err.value)
    assert requests_mock.call_count == 1  # client errors are not retried


def test_html_error_page_is_described_not_dumped(hook, requests_mock, sleeps):
    requests_mock.get(
        STATUS,
        status_code=403,
        text="<html><body>Forbidden by proxy</body></html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(DuneApiError, match="HTML page instead of JSON"):
        hook.get_pipeline_status("P1")


def test_reads_retry_5xx_and_429_then_succeed(hook, requests_mock, sleeps):
    requests_mock.get(
        STATUS,
        [
            {"status_code": 503, "json": {"error": "unavailable"}},
            {"status_code": 429, "json": {"error": "rate limited"}, "headers": {"Retry-After": "7"}},
            {"status_code": 502, "text": "bad gateway"},
            {"status_code": 200, "json": {"status": "completed", "node_executions": []}},
        ],
    )
    assert hook.get_pipeline_status("P1").status == "completed"
    assert requests_mock.call_count == 4
    assert sleeps[1] == 7.0  # Retry-After honoured


def test_reads_retry_malformed_json(hook, requests_mock, sleeps):
    requests_mock.get(
        STATUS,
        [{"status_code": 200, "text": "{not json"}, {"status_code": 200, "json": {"status": "pending"}}],
    )
    assert hook.get_pipeline_status("P1").status == "pending"


def test_reads_give_up_with_a_clear_error(dune_conn, requests_mock, sleeps):
    hook = DuneHook(retry_limit=3, retry_delay=0.01)
    requests_mock.get(STATUS, status_code=500, json={"error": "Internal error"})
    with pytest.raises(DuneApiError, match=r"gave up after 3 attempts"):
        hook.get_pipeline_status("P1")
    assert requests_mock.call_count == 3


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_execute_is_not_retried_on_5xx(hook, requests_mock, sleeps, status):
    requests_mock.post(EXECUTE, status_code=status, json={"error": "Internal error"})
    with pytest.raises(DuneApiError) as err:
        hook.execute_pipeline(query_id=1)
    assert requests_mock.call_count == 1
    assert err.value.may_have_started
    assert "may have started work on Dune" in str(err.value)


def test_execute_is_retried_on_429(hook, requests_mock, sleeps):
    requests_mock.post(
        EXECUTE,
        [
            {"status_code": 429, "json": {"error": "Too many requests"}},
            {"status_code": 200, "json": {"pipeline_execution_id": "P7"}},
        ],
    )
    assert hook.execute_pipeline(query_id=1) == "P7"
    assert requests_mock.call_count == 2


def test_execute_is_retried_when_connection_was_refused(hook, requests_mock, sleeps):
    refused = requests.ConnectionError(NewConnectionError(None, "Connection refused"))  # type: ignore[arg-type]
    requests_mock.post(
        EXECUTE, [{"exc": refused}, {"status_code": 200, "json": {"pipeline_execution_id": "P8"}}]
    )
    assert hook.execute_pipeline(query_id=1) == "P8"


def test_execute_is_retried_on_a_real_refused_connection(monkeypatch, sleeps):
    # Port 1 on loopback refuses at once: nothing was sent, so even a POST may be retried.
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        json.dumps({"conn_type": "dune", "password": TEST_API_KEY, "host": "http://127.0.0.1:1/api"}),
    )
    with pytest.raises(DuneApiError) as err:
        DuneHook(retry_limit=3, retry_delay=0.01).execute_pipeline(query_id=1)
    assert "could not connect to 127.0.0.1:1" in str(err.value)
    assert "gave up after 3 attempts" in str(err.value)
    assert not err.value.may_have_started
    assert len(sleeps) == 2


def test_execute_is_not_retried_when_connection_dropped_after_sending(hook, requests_mock, sleeps):
    requests_mock.post(EXECUTE, exc=requests.ConnectionError("Connection aborted: RemoteDisconnected"))
    with pytest.raises(DuneApiError, match="may have started"):
        hook.execute_pipeline(query_id=1)
    assert requests_mock.call_count == 1


def test_execute_with_unreadable_answer_is_not_retried(hook, requests_mock, sleeps):
    requests_mock.post(EXECUTE, text="<html>oops</html>")
    with pytest.raises(DuneResponseError, match="may have started"):
        hook.execute_pipeline(query_id=1)
    requests_mock.post(EXECUTE, json={"unexpected": True})
    with pytest.raises(DuneResponseError, match="no 'pipeline_execution_id'"):
        hook.execute_pipeline(query_id=1)


def test_missing_connection_says_how_to_create_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_DUNE_DEFAULT", raising=False)
    with pytest.raises(DuneConfigurationError, match="AIRFLOW_CONN_DUNE_DEFAULT"):
        DuneHook().get_pipeline_status("P1")


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ({"conn_type": "dune"}, "has no API key"),
        ({"conn_type": "dune", "password": "ab cd"}, "whitespace"),
        ({"conn_type": "dune", "password": "k", "host": "ftp://x"}, "not an http(s) base URL"),
        ({"conn_type": "dune", "password": "k", "host": "http://h/api?api_key=k"}, "query string"),
    ],
)
def test_bad_connection_is_explained(monkeypatch, requests_mock, conn, expected):
    monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", json.dumps(conn))
    with pytest.raises(DuneConfigurationError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        DuneHook().get_pipeline_status("P1")
    assert requests_mock.call_count == 0


def test_host_without_scheme_defaults_to_https_and_default_base_url(monkeypatch, requests_mock):
    monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", json.dumps({"conn_type": "dune", "password": "k"}))
    requests_mock.get(
        "https://api.dune.com/api/v1/pipelines/executions/P1/status", json={"status": "pending"}
    )
    assert DuneHook().get_pipeline_status("P1").status == "pending"


def test_bare_host_gets_https_and_the_api_path(monkeypatch, requests_mock):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        json.dumps({"conn_type": "dune", "password": "k", "host": "api.dune.com"}),
    )
    requests_mock.get(
        "https://api.dune.com/api/v1/pipelines/executions/P1/status", json={"status": "pending"}
    )
    assert DuneHook().get_pipeline_status("P1").status == "pending"


def test_a_429_slows_the_keys_shared_budget(hook, requests_mock, sleeps):
    from airflow_provider_dune.hooks.budget import RequestClass

    requests_mock.get(
        STATUS, [{"status_code": 429, "json": {"error": "slow"}}, {"json": {"status": "pending"}}]
    )
    hook.get_pipeline_status("P1")
    assert hook._budget is not None
    # No ceiling configured: the budget learned one from the 429 (half of what met the limit).
    assert hook._budget.per_minute(RequestClass.HIGH) is not None


def test_ids_cannot_rewrite_the_path(hook, requests_mock):
    with pytest.raises(DuneConfigurationError, match="not a valid Dune id"):
        hook.get_pipeline_status("../../v1/query/1")
    assert requests_mock.call_count == 0


def test_test_connection(hook, requests_mock, sleeps):
    requests_mock.get(f"{TEST_BASE_URL}/v1/materialized-views", json={"materialized_views": []})
    assert hook.test_connection() == (True, "Connected to Dune: the API key was accepted.")
    requests_mock.get(
        f"{TEST_BASE_URL}/v1/materialized-views", status_code=401, json={"error": "invalid API Key"}
    )
    ok, message = hook.test_connection()
    assert not ok
    assert "rejected the API key" in message
    assert TEST_API_KEY not in message


def test_key_is_registered_with_the_secret_masker(hook, monkeypatch, requests_mock):
    masked = []
    monkeypatch.setattr(hook_module, "mask_secret", masked.append)
    requests_mock.get(STATUS, json={"status": "pending"})
    hook.get_pipeline_status("P1")
    assert masked == [TEST_API_KEY]


def test_connection_form():
    behaviour = DuneHook.get_ui_field_behaviour()
    assert behaviour["relabeling"]["password"] == "API key"
    assert {"login", "schema", "port"} <= set(behaviour["hidden_fields"])


def _pipeline_body(node_status: str, pipeline_status: str = "executing") -> dict:
    return {
        "status": pipeline_status,
        "node_executions": [
            {"id": 1, "query_execution_status": {"status": node_status, "query_id": 9, "execution_id": "E1"}}
        ],
    }


def test_an_unchanged_status_body_is_parsed_once(hook, requests_mock, monkeypatch):
    parsed: list[str] = []
    real_parse = hook_module.parse_pipeline_status

    def counting_parse(pipeline_execution_id, payload):
        parsed.append(pipeline_execution_id)
        return real_parse(pipeline_execution_id, payload)

    monkeypatch.setattr(hook_module, "parse_pipeline_status", counting_parse)
    requests_mock.get(
        STATUS,
        [
            {"json": _pipeline_body("executing")},
            {"json": _pipeline_body("executing")},
            {"json": _pipeline_body("completed", "completed")},
        ],
    )
    first, second, third = (hook.get_pipeline_status("P1") for _ in range(3))
    assert requests_mock.call_count == 3  # every poll still asks Dune
    assert second is first
    assert parsed == ["P1", "P1"]  # the repeated body was not parsed again
    assert (third.status, third.nodes[0].status) == ("completed", "completed")


def test_the_same_body_for_another_id_is_parsed_for_that_id(hook, requests_mock):
    # The parsed status carries the id it was read for: a body shared by two pipelines
    # must not hand one pipeline's status to the other.
    requests_mock.get(STATUS, json=_pipeline_body("executing"))
    requests_mock.get(f"{TEST_BASE_URL}/v1/pipelines/executions/P2/status", json=_pipeline_body("executing"))
    assert hook.get_pipeline_status("P1").pipeline_execution_id == "P1"
    assert hook.get_pipeline_status("P2").pipeline_execution_id == "P2"


def test_an_error_answer_is_never_served_from_the_last_good_read(hook, requests_mock, sleeps):
    # Same bytes as the good answer, but a 503: it must be retried, not taken as the status.
    requests_mock.get(
        STATUS,
        [
            {"json": _pipeline_body("executing")},
            {"status_code": 503, "json": _pipeline_body("executing")},
            {"json": _pipeline_body("completed", "completed")},
        ],
    )
    hook.get_pipeline_status("P1")
    assert hook.get_pipeline_status("P1").status == "completed"
    assert requests_mock.call_count == 3

"""MaiaHook against mocked endpoints: token, bearer auth, retries, problem+json, secrets."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qs

import pytest

from airflow_provider_dune.exceptions import DuneConfigurationError, MaiaApiError, MaiaResponseError
from airflow_provider_dune.hooks import maia as maia_hook
from airflow_provider_dune.hooks.maia import MaiaHook
from tests.maia.conftest import BASE_URL, CLIENT_ID, CLIENT_SECRET, EXEC_ID, PROJECT, TOKEN_URL

EXECUTIONS = f"{BASE_URL}/v1/projects/{PROJECT}/pipeline-executions"
STATUS = f"{EXECUTIONS}/{EXEC_ID}/status"
PROBLEM = {"Content-Type": "application/problem+json"}

pytestmark = pytest.mark.usefixtures("maia_conn")


def fast_hook(**kwargs) -> MaiaHook:
    return MaiaHook(retry_delay=0.001, **kwargs)


def token_answer(value: str = "tok-1", expires_in: int = 1800) -> dict:
    return {"json": {"access_token": value, "token_type": "Bearer", "expires_in": expires_in}}


def problem(status: int, title: str, detail: str = "", violations=None) -> dict:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if violations is not None:
        body["violations"] = violations
    return {"status_code": status, "json": body, "headers": PROBLEM}


def test_token_is_a_form_post_and_every_call_carries_the_bearer(requests_mock):
    token = requests_mock.post(TOKEN_URL, **token_answer())
    status = requests_mock.get(STATUS, json={"status": "RUNNING"})
    assert MaiaHook().get_pipeline_status(PROJECT, EXEC_ID).status == "RUNNING"
    sent = token.last_request
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(sent.text) == {
        "grant_type": ["client_credentials"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
        "audience": ["https://api.matillion.com"],
    }
    assert status.last_request.headers["Authorization"] == "Bearer tok-1"
    assert "airflow-provider-dune" in status.last_request.headers["User-Agent"]
    assert CLIENT_SECRET not in status.last_request.url + str(status.last_request.headers)


def test_token_is_cached_across_hooks_until_it_nearly_expires(requests_mock, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(maia_hook, "_now", lambda: clock[0])
    token = requests_mock.post(TOKEN_URL, [token_answer("tok-1", 1800), token_answer("tok-2", 1800)])
    status = requests_mock.get(STATUS, json={"status": "RUNNING"})
    MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    clock[0] += 1800 - 61  # still more than the refresh margin left
    MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    assert token.call_count == 1
    clock[0] += 2  # inside the last minute: refresh before it can die in flight
    MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    assert token.call_count == 2
    assert status.last_request.headers["Authorization"] == "Bearer tok-2"


def test_a_401_fetches_one_new_token_and_retries_once(requests_mock):
    token = requests_mock.post(TOKEN_URL, [token_answer("old"), token_answer("new")])
    status = requests_mock.get(STATUS, [problem(401, "Unauthorized"), {"json": {"status": "SUCCESS"}}])
    assert MaiaHook().get_pipeline_status(PROJECT, EXEC_ID).status == "SUCCESS"
    assert token.call_count == 2
    assert [r.headers["Authorization"] for r in status.request_history] == ["Bearer old", "Bearer new"]


def test_a_second_401_is_raised_with_what_to_check(requests_mock):
    token = requests_mock.post(TOKEN_URL, [token_answer("a"), token_answer("b"), token_answer("c")])
    status = requests_mock.get(STATUS, **problem(401, "Unauthorized", "token revoked"))
    with pytest.raises(MaiaApiError) as err:
        MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    assert err.value.status_code == 401
    assert "token revoked" in str(err.value)
    assert "client id" in str(err.value)
    assert token.call_count == 2 and status.call_count == 2


def test_bad_client_credentials_fail_at_the_token_endpoint(requests_mock):
    requests_mock.post(
        TOKEN_URL, status_code=401, json={"error": "invalid_client", "error_description": "Unauthorized"}
    )
    status = requests_mock.get(STATUS, json={"status": "RUNNING"})
    with pytest.raises(MaiaApiError) as err:
        MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    assert err.value.status_code == 401
    assert err.value.title == "invalid_client"
    assert "/oauth/dpc/token" in str(err.value)
    assert CLIENT_SECRET not in str(err.value)
    assert status.call_count == 0


def test_problem_json_title_detail_and_violations_reach_the_message(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    requests_mock.post(
        EXECUTIONS,
        **problem(
            400, "Bad Request", "Invalid request", ["pipelineName: must not be blank", "environmentName: x"]
        ),
    )
    with pytest.raises(MaiaApiError) as err:
        MaiaHook().start_pipeline(PROJECT, "unpublished", "Dev")
    exc = err.value
    assert (exc.status_code, exc.title, exc.detail) == (400, "Bad Request", "Invalid request")
    assert exc.violations == ("pipelineName: must not be blank", "environmentName: x")
    assert str(exc) == (
        f"Maia API POST /v1/projects/{PROJECT}/pipeline-executions failed (HTTP 400): Bad Request: "
        "Invalid request. Violations: pipelineName: must not be blank; environmentName: x."
    )


@pytest.mark.parametrize("code", [403, 404])
def test_client_errors_on_reads_are_not_retried(requests_mock, code):
    requests_mock.post(TOKEN_URL, **token_answer())
    status = requests_mock.get(STATUS, **problem(code, "Nope", "Pipeline Execution not Found"))
    with pytest.raises(MaiaApiError, match="Pipeline Execution not Found") as err:
        fast_hook().get_pipeline_status(PROJECT, EXEC_ID)
    assert err.value.status_code == code
    assert status.call_count == 1


@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_on_reads_is_retried(requests_mock, code):
    requests_mock.post(TOKEN_URL, **token_answer())
    status = requests_mock.get(
        STATUS,
        [
            {"status_code": code, "text": "<html>gateway</html>", "headers": {"Content-Type": "text/html"}},
            {"json": {"status": "SUCCESS"}},
        ],
    )
    assert fast_hook().get_pipeline_status(PROJECT, EXEC_ID).status == "SUCCESS"
    assert status.call_count == 2


def test_a_read_gives_up_after_the_retry_limit(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    status = requests_mock.get(STATUS, **problem(504, "Gateway Timeout"))
    with pytest.raises(MaiaApiError, match="gave up after 3 attempts"):
        fast_hook(retry_limit=3).get_pipeline_status(PROJECT, EXEC_ID)
    assert status.call_count == 3


def test_start_is_not_retried_after_a_5xx_but_is_after_a_429(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    start = requests_mock.post(EXECUTIONS, **problem(503, "Service Unavailable"))
    with pytest.raises(MaiaApiError, match="may have started") as err:
        fast_hook().start_pipeline(PROJECT, "p", "Dev")
    assert err.value.may_have_started and start.call_count == 1

    start = requests_mock.post(
        EXECUTIONS, [problem(429, "Too Many Requests"), {"json": {"pipelineExecutionId": EXEC_ID}}]
    )
    hook = fast_hook()
    assert hook.start_pipeline(PROJECT, "p", "Dev", scalar_variables={"a": "1"}) == EXEC_ID
    assert start.call_count == 2
    assert start.last_request.json() == {
        "pipelineName": "p",
        "environmentName": "Dev",
        "scalarVariables": {"a": "1"},
    }


def test_start_without_an_execution_id_says_it_may_have_started(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    requests_mock.post(EXECUTIONS, json={"something": "else"})
    with pytest.raises(MaiaResponseError, match="may have started"):
        MaiaHook().start_pipeline(PROJECT, "p", "Dev")


def test_cancel_is_the_documented_patch(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    patch = requests_mock.patch(f"{EXECUTIONS}/{EXEC_ID}", json={"pipelineExecutionId": EXEC_ID})
    assert MaiaHook().cancel_pipeline(PROJECT, EXEC_ID) == EXEC_ID
    assert patch.last_request.json() == {"status": "CANCELLED", "forceUpdate": False}
    MaiaHook().cancel_pipeline(PROJECT, EXEC_ID, force=True)
    assert patch.last_request.json() == {"status": "CANCELLED", "forceUpdate": True}


def test_a_status_without_status_is_a_response_error(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    requests_mock.get(STATUS, json={"state": "RUNNING"})
    with pytest.raises(MaiaResponseError, match="no 'status'"):
        MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)


def test_ids_that_would_change_the_path_are_refused(requests_mock):
    with pytest.raises(DuneConfigurationError):
        MaiaHook().get_pipeline_status(PROJECT, "../other")


@pytest.mark.parametrize(
    ("extra", "base_url", "token_url"),
    [
        ({}, "https://eu1.api.matillion.com/dpc", "https://id.core.matillion.com/oauth/dpc/token"),
        (
            {"region": "us1"},
            "https://us1.api.matillion.com/dpc",
            "https://id.core.matillion.com/oauth/dpc/token",
        ),
        (
            {
                "region": "us1",
                "base_url": "http://x/dpc/",
                "token_url": "http://x/t",
                "allow_plain_http": True,
            },
            "http://x/dpc",
            "http://x/t",
        ),
    ],
)
def test_region_and_url_extras(monkeypatch, extra, base_url, token_url):
    conn = {"conn_type": "maia", "login": "id", "password": "pw-9f8e7d", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_MAIA_OTHER", json.dumps(conn))
    creds = MaiaHook("maia_other")._credentials()
    assert (creds.base_url, creds.token_url) == (base_url, token_url)
    assert "pw-9f8e7d" not in repr(creds)


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        ({"conn_type": "maia", "password": "s"}, "client id as its login"),
        (
            {"conn_type": "maia", "login": "i", "password": "s", "extra": {"region": "ap9"}},
            "regions are eu1, us1",
        ),
        ({"conn_type": "maia", "login": "i", "password": "s", "extra": {"base_url": "ftp://x"}}, "http"),
    ],
)
def test_bad_connections_say_what_to_fix(monkeypatch, conn, match):
    monkeypatch.setenv("AIRFLOW_CONN_MAIA_OTHER", json.dumps(conn))
    with pytest.raises(DuneConfigurationError, match=match):
        MaiaHook("maia_other")._credentials()


def test_missing_connection_says_how_to_create_it():
    with pytest.raises(DuneConfigurationError, match="AIRFLOW_CONN_MAIA_NOWHERE"):
        MaiaHook("maia_nowhere")._credentials()


def test_secret_and_token_never_reach_the_logs(requests_mock, caplog):
    requests_mock.post(TOKEN_URL, **token_answer("tok-secret-value"))
    requests_mock.get(STATUS, [problem(401, "Unauthorized"), {"json": {"status": "SUCCESS"}}])
    with caplog.at_level(logging.DEBUG):
        MaiaHook().get_pipeline_status(PROJECT, EXEC_ID)
    assert CLIENT_SECRET not in caplog.text
    assert "tok-secret-value" not in caplog.text


def test_connection_test_reports_success_and_rejection(requests_mock):
    requests_mock.post(TOKEN_URL, **token_answer())
    requests_mock.get(f"{BASE_URL}/v1/projects?size=1", json={"results": []})
    assert MaiaHook().test_connection() == (True, "Connected to Maia: the client credentials were accepted.")
    maia_hook.tokens.clear()
    requests_mock.post(TOKEN_URL, status_code=401, json={"error": "invalid_client"})
    ok, message = MaiaHook().test_connection()
    assert not ok and "HTTP 401" in message

"""The attack table: one row per hole of the security review (issue 15), each an attack that
must now come to nothing. Emulator rows go through its HTTP API; provider rows through the
hooks, operators and triggers against real loopback servers. docs/security.md lists the rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from itertools import islice
from typing import Any

import pytest
import requests
import requests_mock

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneError, MaiaApiError
from airflow_provider_dune.hooks import http as transport
from airflow_provider_dune.hooks.dune import DuneHook, close_shared_async_session
from airflow_provider_dune.hooks.maia import MaiaHook
from airflow_provider_dune.models.dune import parse_pipeline_status
from airflow_provider_dune.models.pipeline_spec import validate_nodes
from airflow_provider_dune.operators.dune import (
    DuneResultTooLargeForXCom,
    DuneRunPipelineOperator,
    DuneRunSQLOperator,
)
from airflow_provider_dune.sensors.dune import DuneExecutionSensor
from airflow_provider_dune.triggers.dune import DuneExecutionTrigger
from tests.helpers import FakeTI
from tests.scripted_server import Answer, ThreadedScriptedServer

from .conftest import Attacker

PROJECT = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
HTTPS_DUNE = "https://dune.attack.test/api"
HTTPS_MAIA = "https://maia.attack.test/dpc"
HTTPS_TOKEN = "https://maia.attack.test/oauth/dpc/token"


def servers(count: int) -> list[ThreadedScriptedServer]:
    started = []
    for _ in range(count):
        server = ThreadedScriptedServer()
        server.start_in_thread()
        started.append(server)
    return started


def stop(*started: ThreadedScriptedServer) -> None:
    for server in started:
        server.stop_thread()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_async(coroutine_function: Callable[[], Any]) -> Any:
    async def wrapped() -> Any:
        try:
            return await coroutine_function()
        finally:
            await close_shared_async_session()

    return asyncio.run(wrapped())


# =============================================================================== the emulator


def sql_cannot_read_files(a: Attacker) -> None:
    """Emulator SQL cannot read files."""
    for sql in (
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM glob('/*')",
    ):
        status = a.run_sql(sql)
        assert status["state"] == "QUERY_STATE_FAILED", (sql, status)
        assert "root:" not in json.dumps(status)


def sql_cannot_write_files(a: Attacker) -> None:
    """Emulator SQL cannot write files (COPY, ATTACH, a second statement)."""
    target = a.tmp_path / "written.pth"
    for sql in (
        f"COPY (SELECT 'import os') TO '{target}'",
        f"SELECT 1; COPY (SELECT 'import os') TO '{target}'",
        f"SELECT 1; ATTACH '{a.tmp_path / 'other.db'}' AS other",
    ):
        assert a.run_sql(sql)["state"] == "QUERY_STATE_FAILED", sql
    assert list(a.tmp_path.iterdir()) == []


def one_statement_per_execution(a: Attacker) -> None:
    """Emulator runs one statement per execution."""
    status = a.run_sql("SELECT 1 AS x; SELECT 2 AS y")
    assert status["state"] == "QUERY_STATE_FAILED"
    assert "one SQL statement per execution" in status["error"]["message"]


def result_filters_cannot_reach_files_or_chain_statements(a: Attacker) -> None:
    """Results filters/sort_by cannot read files or chain statements."""
    execution_id = a.run_sql("SELECT range AS n FROM range(10)")["execution_id"]
    for filters in (
        "length((SELECT string_agg(content) FROM read_text('/etc/passwd'))) > 0",
        f"n > 0; COPY (SELECT 1) TO '{a.tmp_path / 'x.csv'}'",
    ):
        answer = a.results(execution_id, filters=filters)
        assert answer.status_code == 400, (filters, answer.text)
    answer = a.results(execution_id, sort_by=f"n; COPY (SELECT 1) TO '{a.tmp_path / 'y.csv'}'")
    assert answer.status_code == 400
    assert list(a.tmp_path.iterdir()) == []
    # The documented use still works.
    rows = a.results(execution_id, filters="n > 7", sort_by="n desc").json()["result"]["rows"]
    assert rows == [{"n": 9}, {"n": 8}]


def duckdb_configuration_is_locked_down(a: Attacker) -> None:
    """DuckDB locked down: no extensions, capped memory, locked configuration."""
    status = a.run_sql(
        "SELECT current_setting('enable_external_access') AS external, "
        "current_setting('autoinstall_known_extensions') AS autoinstall, "
        "current_setting('autoload_known_extensions') AS autoload, "
        "current_setting('lock_configuration') AS locked, current_setting('memory_limit') AS memory"
    )
    row = a.results(status["execution_id"]).json()["result"]["rows"][0]
    import duckdb

    capped = duckdb.connect(config={"memory_limit": "1GB"}).execute("SELECT current_setting('memory_limit')")
    assert row == {
        "external": False,
        "autoinstall": False,
        "autoload": False,
        "locked": True,
        "memory": capped.fetchone()[0],  # not DuckDB's default of 80% of the machine's memory
    }
    for sql in ("SELECT 1; SET enable_external_access = true", "SELECT 1; INSTALL httpfs", "LOAD httpfs"):
        assert a.run_sql(sql)["state"] == "QUERY_STATE_FAILED", sql


def sql_time_is_capped(a: Attacker) -> None:
    """Emulator SQL time is capped."""
    with DuneEmulator(execution_seconds=0.0, sql_timeout_seconds=0.5) as dune:
        session = requests.Session()
        session.headers["X-Dune-Api-Key"] = dune.api_key
        started = session.post(
            dune.base_url + "/v1/sql/execute", json={"sql": "SELECT count(*) FROM range(1000000000000)"}
        )
        status = dune.wait_for_execution(started.json()["execution_id"], timeout=60)
        assert status["state"] == "QUERY_STATE_FAILED"
        assert "time limit" in status["error"]["message"]


def result_page_rows_are_capped(a: Attacker) -> None:
    """Results limit is capped."""
    cap = 250_000
    execution_id = a.run_sql(f"SELECT range AS n FROM range({cap + 5})")["execution_id"]
    page = a.results(execution_id, limit=10**9).json()
    assert len(page["result"]["rows"]) == cap
    assert page["next_offset"] == cap


def foreign_host_header_is_refused(a: Attacker) -> None:
    """Foreign Host header refused (DNS rebinding)."""
    # A DNS-rebinding page makes the browser send its own name to 127.0.0.1.
    for url in (a.emulator.base_url + "/v1/query/1000", a.emulator.url + "/_emulator/health"):
        answer = a.session.get(url, headers={"Host": f"rebind.attacker.test:{a.emulator.port}"}, timeout=5)
        assert answer.status_code == 403, url
    token = requests.post(
        a.emulator.maia_token_url,
        data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"},
        headers={"Host": "rebind.attacker.test"},
        timeout=5,
    )
    assert token.status_code == 403
    assert a.session.get(a.emulator.base_url + "/v1/query/1000", timeout=5).status_code == 200


def cross_origin_browser_requests_are_refused(a: Attacker) -> None:
    """Cross-origin browser requests refused (Maia token form POST)."""
    form = {
        "grant_type": "client_credentials",
        "client_id": a.emulator.maia_client_id,
        "client_secret": a.emulator.maia_client_secret,
    }
    issued = a.emulator.maia_tokens_issued
    for headers in (
        {"Origin": "https://attacker.test"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        answer = requests.post(a.emulator.maia_token_url, data=form, headers=headers, timeout=5)
        assert answer.status_code == 403, headers
        assert "access_token" not in answer.text
    before = len(a.emulator.execution_ids())
    answer = a.session.post(
        a.emulator.base_url + "/v1/sql/execute",
        json={"sql": "SELECT 1"},
        headers={"Origin": f"http://localhost:{a.emulator.port + 1}"},
        timeout=5,
    )
    assert answer.status_code == 403
    assert len(a.emulator.execution_ids()) == before
    assert a.emulator.maia_tokens_issued == issued
    # The emulator's own origin, and clients that send no Origin, are served.
    own = {"Origin": a.emulator.url, "Sec-Fetch-Site": "same-origin"}
    assert requests.post(a.emulator.maia_token_url, data=form, headers=own, timeout=5).status_code == 200


def next_uri_ignores_the_host_header(a: Attacker) -> None:
    """Next_uri not built from the Host header."""
    execution_id = a.run_sql("SELECT range AS n FROM range(10)")["execution_id"]
    page = a.session.get(
        f"{a.emulator.base_url}/v1/execution/{execution_id}/results",
        params={"limit": 2},
        headers={"Host": f"localhost:{a.emulator.port}"},
        timeout=5,
    ).json()
    assert page["next_uri"].startswith(a.emulator.base_url + "/v1/execution/")


def default_secrets_are_random(a: Attacker) -> None:
    """Emulator key and Maia secret random by default."""
    first, second = DuneEmulator(), DuneEmulator()
    assert first.api_key != second.api_key
    assert first.maia_client_secret != second.maia_client_secret
    assert {first.api_key, first.maia_client_secret}.isdisjoint({"dune-emulator-key", "maia-emulator-secret"})
    assert len(first.api_key) >= 32


def non_loopback_bind_needs_a_flag(a: Attacker) -> None:
    """Non-loopback bind needs an explicit flag, with a warning."""
    for host in ("0.0.0.0", "::", "192.0.2.10", "my-laptop.example"):
        with pytest.raises(ValueError, match="allow_remote"):
            DuneEmulator(host=host)
    with a.caplog.at_level(logging.WARNING, logger="airflow_provider_dune.emulator.server"):
        DuneEmulator(host="0.0.0.0", allow_remote=True)
    assert "reachable from other machines" in a.caplog.text
    done = subprocess.run(
        [sys.executable, "-m", "airflow_provider_dune.emulator", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "--allow-remote" in done.stderr


def emulator_memory_is_bounded(a: Attacker) -> None:
    """Emulator executions, results and pipelines are bounded."""
    with DuneEmulator(execution_seconds=0.0, max_executions=5, max_result_bytes=5_000) as dune:
        session = requests.Session()
        session.headers["X-Dune-Api-Key"] = dune.api_key
        ids = []
        for _ in range(12):
            answer = session.post(
                dune.base_url + "/v1/sql/execute", json={"sql": "SELECT range FROM range(400)"}
            )
            ids.append(answer.json()["execution_id"])
            dune.wait_for_execution(ids[-1])
        assert len(dune.execution_ids()) <= 5
        assert session.get(f"{dune.base_url}/v1/execution/{ids[0]}/status").status_code == 404
        # 400 rows are ~1,100 bytes of result: only the newest results fit in 5,000 bytes.
        kept = [dune.execution_status(i)["state"] for i in dune.execution_ids()]
        assert kept[-1] == "QUERY_STATE_COMPLETED" and "QUERY_STATE_EXPIRED" in kept
        for _ in range(7):
            session.post(dune.base_url + "/v1/pipelines/execute", json={"query_id": 1003})
        for pipeline_id in dune.pipeline_execution_ids():
            dune.wait_for_pipeline(pipeline_id)
        session.post(dune.base_url + "/v1/pipelines/execute", json={"query_id": 1003})
        assert len(dune.pipeline_execution_ids()) <= 5


def maia_tokens_and_runs_are_bounded(a: Attacker) -> None:
    """Emulator Maia tokens and runs are bounded."""
    from airflow_provider_dune.emulator import maia_state

    a.monkeypatch.setattr(maia_state, "MAX_TOKENS", 3, raising=False)
    with DuneEmulator(execution_seconds=0.0, maia_execution_seconds=0.0, max_executions=3) as dune:
        form = {
            "grant_type": "client_credentials",
            "client_id": dune.maia_client_id,
            "client_secret": dune.maia_client_secret,
        }
        tokens = [requests.post(dune.maia_token_url, data=form).json()["access_token"] for _ in range(4)]
        projects = dune.maia_base_url + "/v1/projects"
        assert requests.get(projects, headers={"Authorization": f"Bearer {tokens[0]}"}).status_code == 401
        assert requests.get(projects, headers={"Authorization": f"Bearer {tokens[-1]}"}).status_code == 200
        bearer = {"Authorization": f"Bearer {tokens[-1]}"}
        runs = f"{dune.maia_base_url}/v1/projects/{PROJECT}/pipeline-executions"
        started = [
            requests.post(runs, json={"pipelineName": "p", "environmentName": "Dev"}, headers=bearer).json()
            for _ in range(5)
        ]
        first = f"{runs}/{started[0]['pipelineExecutionId']}/status"
        assert requests.get(first, headers=bearer).status_code == 404


def missing_extra_is_named(a: Attacker) -> None:
    """Missing emulator extra is named, no traceback."""
    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "from airflow_provider_dune.emulator.__main__ import main\n"
        "sys.exit(main(['--port', '0']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "pip install 'airflow-provider-dune[emulator]'" in done.stderr
    assert "Traceback" not in done.stderr


# =============================================================================== the provider


def dune_key_never_follows_a_redirect(a: Attacker) -> None:
    """Dune key never follows a redirect (sync, async)."""
    good, other = servers(2)
    try:
        target = f"{other.base_url}/v1/execution/E1/status"
        good.script("GET", "/api/v1/execution/E1/status", Answer(307, {}, {"Location": target}))
        a.dune_connection(good.base_url, retry_limit=1)
        with pytest.raises(DuneApiError, match="redirect to " + target) as err:
            DuneHook().get_execution_status("E1")
        assert err.value.status_code == 307
        with pytest.raises(DuneApiError, match="redirect"):
            run_async(lambda: DuneHook().aget_execution_status("E1"))
        assert other.requests == []
    finally:
        stop(good, other)


def maia_secret_never_follows_a_redirect(a: Attacker) -> None:
    """Maia client secret never follows a redirect."""
    good, other = servers(2)
    try:
        moved = Answer(307, {}, {"Location": other.base_url + "/oauth/dpc/token"})
        good.script("POST", "/oauth/dpc/token", moved)
        a.maia_connection(
            good.base_url.replace("/api", "/dpc"), good.base_url.replace("/api", "/oauth/dpc/token")
        )
        with pytest.raises(MaiaApiError, match="redirect"):
            MaiaHook(retry_limit=1).get_pipeline_status(PROJECT, "E1")
        with pytest.raises(MaiaApiError, match="redirect"):
            run_async(lambda: MaiaHook(retry_limit=1).aget_pipeline_status(PROJECT, "E1"))
        assert other.requests == []
    finally:
        stop(good, other)


def plain_http_only_to_loopback(a: Attacker) -> None:
    """Plain http only to loopback unless allow_plain_http."""
    with requests_mock.Mocker() as mock:
        mock.register_uri(requests_mock.ANY, requests_mock.ANY, json={"state": "QUERY_STATE_PENDING"})
        a.dune_connection("http://dune.attack.test/api")
        with pytest.raises(DuneConfigurationError, match="allow_plain_http"):
            DuneHook().get_execution_status("E1")
        a.maia_connection("http://maia.attack.test/dpc", HTTPS_TOKEN)
        with pytest.raises(DuneConfigurationError, match="allow_plain_http"):
            MaiaHook().get_pipeline_status(PROJECT, "E1")
        a.maia_connection(HTTPS_MAIA, "http://maia.attack.test/oauth/dpc/token")
        with pytest.raises(DuneConfigurationError, match="allow_plain_http"):
            MaiaHook().get_pipeline_status(PROJECT, "E1")
        assert mock.call_count == 0
        # The documented escape hatch, for a private network.
        a.dune_connection("http://dune.attack.test/api", allow_plain_http=True)
        DuneHook().get_execution_status("E1")
        assert mock.call_count == 1


def ids_cannot_change_the_path(a: Attacker) -> None:
    """Ids cannot change the URL path."""
    a.dune_connection(HTTPS_DUNE)
    a.maia_connection(HTTPS_MAIA, HTTPS_TOKEN)
    with requests_mock.Mocker() as mock:
        mock.register_uri(requests_mock.ANY, requests_mock.ANY, json={"success": True, "access_token": "t"})
        hook, maia = DuneHook(), MaiaHook()
        calls: list[Callable[[str], Any]] = [
            hook.delete_materialized_view,
            hook.get_materialized_view,
            hook.refresh_materialized_view,
            hook.get_execution_status,
            hook.cancel_execution,
            hook.get_pipeline_status,
            partial(maia.get_pipeline_status, PROJECT),
            partial(maia.cancel_pipeline, pipeline_execution_id="E1"),
            partial(maia.start_pipeline, pipeline_name="p", environment_name="Dev"),
        ]
        for bad in ("..", ".", "../x", "a/b", "%2e%2e", "a?b", "a#b", "a\\b", "", " "):
            for call in calls:
                # Refused as a bad id, or (view calls) as a name that is no view name.
                with pytest.raises(DuneConfigurationError, match=r"not a valid|materialized view name"):
                    call(bad)
        assert mock.call_count == 0


def credentials_in_urls_never_reach_messages(a: Attacker) -> None:
    """User:password in a base URL never reaches messages or events."""
    base = f"http://user:s3cret-in-url@127.0.0.1:{closed_port()}/api"
    a.dune_connection(base, retry_limit=1)
    with pytest.raises(DuneApiError) as err:
        DuneHook().get_execution_status("E1")
    assert "s3cret-in-url" not in str(err.value)
    trigger = DuneExecutionTrigger(execution_id="E1", poll_interval=1)

    async def first_event() -> Any:
        return (await anext(trigger.run())).payload

    event = run_async(first_event)
    assert event["status"] == "error" and "s3cret-in-url" not in json.dumps(event)
    a.dune_connection("ftp://user:s3cret-in-url@dune.attack.test/api")
    with pytest.raises(DuneConfigurationError) as bad_scheme:
        DuneHook().get_execution_status("E1")
    assert "s3cret-in-url" not in str(bad_scheme.value)
    assert "s3cret-in-url" not in repr(DuneHook()._credentials_from(_conn(base), {}))


def _conn(host: str) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(conn_id="x", host=host, port=None, password="k", login=None)


def numbers_must_be_positive_and_finite(a: Attacker) -> None:
    """NaN, inf, zero, negative refused for waits, timeouts, retries."""
    operator = partial(DuneRunPipelineOperator, task_id="t", query_id=1)
    makers = [
        (DuneHook, ("timeout", "retry_delay", "retry_max_seconds", "retry_limit")),
        (MaiaHook, ("timeout", "retry_delay", "retry_max_seconds", "retry_limit")),
        (operator, ("poll_interval", "timeout")),
    ]
    for make, names in makers:
        for name in names:
            for value in (math.nan, math.inf, -math.inf, 0, -1, True, "nan"):
                with pytest.raises(DuneConfigurationError, match=name):
                    make(**{name: value})
    for value in (math.nan, "inf", -5):
        a.dune_connection(HTTPS_DUNE, timeout=value)
        with pytest.raises(DuneConfigurationError, match="timeout"):
            DuneHook().get_execution_status("E1")
    with pytest.raises(DuneConfigurationError, match="whole number"):
        DuneHook(retry_limit=2.5)
    for kwargs in ({"poke_interval": 0}, {"timeout": 0}, {"timeout": timedelta(0)}):
        with pytest.raises(DuneConfigurationError, match="positive, finite"):
            DuneExecutionSensor(task_id="s", execution_id="E1", **kwargs)


def bad_token_lifetime_keeps_the_cache(a: Attacker) -> None:
    """Bad token expires_in keeps the token cache working."""
    a.maia_connection(HTTPS_MAIA, HTTPS_TOKEN)
    status = f"{HTTPS_MAIA}/v1/projects/{PROJECT}/pipeline-executions/E1/status"
    from airflow_provider_dune.hooks import maia as maia_module

    for expires_in in ("NaN", -5, 0, "soon", "1e400", math.inf):
        maia_module.tokens.clear()
        with requests_mock.Mocker() as mock:
            token = mock.post(HTTPS_TOKEN, json={"access_token": "tok", "expires_in": expires_in})
            mock.get(status, json={"status": "RUNNING"})
            hook = MaiaHook()
            hook.get_pipeline_status(PROJECT, "E1")
            hook.get_pipeline_status(PROJECT, "E1")
            assert token.call_count == 1, expires_in
        cached = maia_module.tokens._tokens
        assert all(math.isfinite(entry.refresh_at) for entry in cached.values()), expires_in
        assert all(entry.refresh_at < maia_module._now() + 2 * 86400 for entry in cached.values())


def response_bodies_are_capped(a: Attacker) -> None:
    """Response bodies are capped."""
    (server,) = servers(1)
    try:
        huge_error = "x" * (8 * 1024 * 1024)
        server.script("GET", "/api/v1/execution/E1/status", Answer(500, huge_error))
        a.dune_connection(server.base_url, retry_limit=1)
        hook = DuneHook()
        url = server.base_url + "/v1/execution/E1/status"
        reply = hook._send("GET", url, {})
        assert reply.status == 500 and len(reply.body) <= 64 * 1024
        areply = run_async(lambda: hook._asend("GET", url, {}))
        assert areply.status == 500 and len(areply.body) <= 64 * 1024
        a.monkeypatch.setattr(transport, "MAX_RESPONSE_BYTES", 1024 * 1024, raising=False)
        big_page = {"state": "QUERY_STATE_COMPLETED", "padding": "y" * (2 * 1024 * 1024)}
        server.script("GET", "/api/v1/execution/E2/status", Answer(200, big_page))
        with pytest.raises(DuneApiError, match="more than 1 MiB"):
            hook.get_execution_status("E2")
        with pytest.raises(DuneApiError, match="more than 1 MiB"):
            run_async(lambda: DuneHook().aget_execution_status("E2"))
    finally:
        stop(server)


def xcom_rows_are_capped_by_bytes(a: Attacker) -> None:
    """XCom rows capped by bytes as well as count."""
    operator = DuneRunSQLOperator(
        task_id="wide",
        sql="SELECT repeat('x', 100000) AS wide FROM range(50)",  # 50 rows, 5 MB
        push_rows_to_xcom=True,
        max_xcom_rows=100,
        poll_interval=0.05,
    )
    ti = FakeTI()
    with pytest.raises(DuneResultTooLargeForXCom, match="max_xcom_bytes"):
        operator.execute({"ti": ti})
    assert "rows" not in ti.pushed


def repeating_next_uri_stops(a: Attacker) -> None:
    """A repeating next_uri stops paging."""
    (server,) = servers(1)
    try:
        same_page = f"{server.base_url}/v1/execution/E1/results?limit=1&offset=1"
        body = {
            "execution_id": "E1",
            "state": "QUERY_STATE_COMPLETED",
            "result": {"rows": [{"n": 1}], "metadata": {"column_names": ["n"]}},
            "next_offset": 1,
            "next_uri": same_page,
        }
        server.script("GET", "/api/v1/execution/E1/results", Answer(200, body))
        # The hook sizes pages from the column count the status gives.
        status = {
            "execution_id": "E1",
            "state": "QUERY_STATE_COMPLETED",
            "query_id": 1,
            "result_metadata": {"column_names": ["n"], "row_count": 2, "total_row_count": 2},
        }
        server.script("GET", "/api/v1/execution/E1/status", Answer(200, status))
        csv_headers = {
            "X-Dune-Next-Uri": same_page.replace("/results", "/results/csv"),
            "X-Dune-Next-Offset": "1",
        }
        server.script("GET", "/api/v1/execution/E1/results/csv", Answer(200, "n\n1\n", csv_headers))
        a.dune_connection(server.base_url)
        with pytest.raises(DuneError, match="no next page that starts further on"):
            list(islice(DuneHook().iter_results("E1", page_size=1), 50))
        with pytest.raises(DuneError, match="no next page that starts further on"):
            list(islice(DuneHook().iter_results_csv("E1", page_size=1), 50))
    finally:
        stop(server)


def long_pipelines_validate_without_recursion(a: Attacker) -> None:
    """Long pipelines validate without recursion."""
    chain = [
        {"id": i, "dependencies": [i - 1] if i > 1 else [], "query_execution": {"query_id": 7}}
        for i in range(1, 5001)
    ]
    assert len(validate_nodes(chain)) == 5000
    looped = [*chain[:-1], {**chain[-1], "dependencies": [4999, 5000]}]
    with pytest.raises(DuneConfigurationError, match="depends on itself"):
        validate_nodes(looped)
    cycle = [{**chain[0], "dependencies": [5000]}, *chain[1:]]
    with pytest.raises(DuneConfigurationError, match="cycle: 1 -> 5000 -> 4999"):
        validate_nodes(cycle)
    with pytest.raises(DuneConfigurationError, match=r"used more than once: \[5000\]"):
        validate_nodes([*chain, chain[-1]])


def server_text_cannot_forge_log_lines(a: Attacker) -> None:
    """Server text cannot forge log lines."""
    forged = "boom\n[2026-01-01 00:00:00] INFO - Task succeeded\r\x1b[2K\u202e"
    a.dune_connection(HTTPS_DUNE)
    a.maia_connection(HTTPS_MAIA, HTTPS_TOKEN)
    with requests_mock.Mocker() as mock:
        mock.get(f"{HTTPS_DUNE}/v1/execution/E1/status", status_code=400, json={"error": forged})
        mock.post(HTTPS_TOKEN, json={"access_token": "t", "expires_in": 1800})
        mock.get(
            f"{HTTPS_MAIA}/v1/projects/{PROJECT}/pipeline-executions/E1/status",
            status_code=400,
            json={"title": forged, "detail": forged, "violations": [forged]},
        )
        with pytest.raises(DuneApiError) as dune_error:
            DuneHook().get_execution_status("E1")
        with pytest.raises(MaiaApiError) as maia_error:
            MaiaHook().get_pipeline_status(PROJECT, "E1")
    node = {"id": 1, "query_execution_status": {"query_id": 7, "status": "failed", "error": forged}}
    pipeline = parse_pipeline_status("P1", {"status": forged, "node_executions": [node]})
    for text in (str(dune_error.value), str(maia_error.value), pipeline.failure_message()):
        # The provider's own message may span lines; none of them may be the server's.
        assert not any(line.startswith("[2026") for line in text.splitlines()), text
        assert not {"\r", "\x1b", "\u202e"} & set(text), text


ROWS: list[Callable[[Attacker], None]] = [
    # the emulator
    sql_cannot_read_files,
    sql_cannot_write_files,
    one_statement_per_execution,
    result_filters_cannot_reach_files_or_chain_statements,
    duckdb_configuration_is_locked_down,
    sql_time_is_capped,
    result_page_rows_are_capped,
    foreign_host_header_is_refused,
    cross_origin_browser_requests_are_refused,
    next_uri_ignores_the_host_header,
    default_secrets_are_random,
    non_loopback_bind_needs_a_flag,
    emulator_memory_is_bounded,
    maia_tokens_and_runs_are_bounded,
    missing_extra_is_named,
    # the provider
    dune_key_never_follows_a_redirect,
    maia_secret_never_follows_a_redirect,
    plain_http_only_to_loopback,
    ids_cannot_change_the_path,
    credentials_in_urls_never_reach_messages,
    numbers_must_be_positive_and_finite,
    bad_token_lifetime_keeps_the_cache,
    response_bodies_are_capped,
    xcom_rows_are_capped_by_bytes,
    repeating_next_uri_stops,
    long_pipelines_validate_without_recursion,
    server_text_cannot_forge_log_lines,
]


@pytest.mark.parametrize("attack", ROWS, ids=[row.__name__ for row in ROWS])
def test_attack_comes_to_nothing(attacker: Attacker, attack: Callable[[Attacker], None]) -> None:
    """Each row is an attack (its docstring says which); it must come to nothing."""
    attack(attacker)

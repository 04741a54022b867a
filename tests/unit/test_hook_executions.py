"""Hook methods for executions, results, query pipelines and materialized views (requests_mock)."""

from __future__ import annotations

import pytest

from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError, DuneResponseError
from airflow_provider_dune.hooks import http as transport
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.models.dune import (
    find_node_execution,
    parse_execution_status,
    refreshed_view_names,
)
from airflow_provider_dune.runs.outcome import RunOutcome, unknown_states
from tests.conftest import TEST_API_KEY, TEST_BASE_URL

API = TEST_BASE_URL


@pytest.fixture
def hook(dune_conn, monkeypatch):
    monkeypatch.setattr(transport.time, "sleep", lambda _: None)
    return DuneHook(retry_delay=0.01)


def assert_key_only_in_headers(m):
    for req in m.request_history:
        assert req.headers["X-Dune-Api-Key"] == TEST_API_KEY
        assert TEST_API_KEY not in req.url and "api_key" not in req.url


def page(rows, next_offset=None, next_uri=None, columns=("n",)):
    metadata = {"column_names": list(columns), "column_types": ["bigint"] * len(columns)}
    body = {"execution_id": "E1", "result": {"rows": rows, "metadata": metadata}}
    if next_offset is not None:
        body["next_offset"] = next_offset
    if next_uri is not None:
        body["next_uri"] = next_uri
    return body


# ------------------------------------------------------------------ execute


def test_execute_query_sends_documented_request(hook, requests_mock):
    requests_mock.post(
        f"{API}/v1/query/42/execute", json={"execution_id": "E1", "state": "QUERY_STATE_PENDING"}
    )
    assert hook.execute_query("42", query_parameters={"day": "2024-01-01"}, performance="large") == "E1"
    assert requests_mock.last_request.json() == {
        "performance": "large",
        "query_parameters": {"day": "2024-01-01"},
    }
    assert_key_only_in_headers(requests_mock)


def test_execute_sql_sends_documented_request(hook, requests_mock):
    requests_mock.post(f"{API}/v1/sql/execute", json={"execution_id": "E2"})
    assert hook.execute_sql("SELECT 1") == "E2"
    # No tier chosen, none sent: Dune applies its default.
    assert requests_mock.last_request.json() == {"sql": "SELECT 1"}
    hook.execute_sql("SELECT 1", performance="large")
    assert requests_mock.last_request.json() == {"sql": "SELECT 1", "performance": "large"}


@pytest.mark.parametrize(
    "call",
    [
        lambda h: h.execute_sql("  "),
        lambda h: h.execute_sql("SELECT 1", performance="huge"),
        lambda h: h.execute_sql("SELECT 1", performance="small"),
        lambda h: h.execute_query(0),
    ],
)
def test_bad_input_fails_before_any_request(hook, requests_mock, call):
    with pytest.raises(DuneConfigurationError):
        call(hook)
    assert requests_mock.request_history == []


def test_execute_is_not_retried_after_a_5xx(hook, requests_mock):
    requests_mock.post(f"{API}/v1/query/42/execute", status_code=502, json={"error": "bad gateway"})
    with pytest.raises(DuneApiError) as err:
        hook.execute_query(42)
    assert err.value.may_have_started and err.value.status_code == 502
    assert requests_mock.call_count == 1


def test_execute_without_an_id_says_work_may_have_started(hook, requests_mock):
    requests_mock.post(f"{API}/v1/sql/execute", json={"state": "QUERY_STATE_PENDING"})
    with pytest.raises(DuneResponseError, match="may have started"):
        hook.execute_sql("SELECT 1")


# ------------------------------------------------------------------ results


def status_of(columns=("n",)):
    """A finished execution's status: its result's column names size the pages."""
    names = list(columns)
    return {
        "execution_id": "E1",
        "state": "QUERY_STATE_COMPLETED",
        "is_execution_finished": True,
        "result_metadata": {"column_names": names, "column_types": ["bigint"] * len(names)},
    }


@pytest.fixture
def finished(requests_mock):
    requests_mock.get(f"{API}/v1/execution/E1/status", json=status_of())


def test_iter_results_follows_next_offset_lazily(hook, requests_mock):
    url = f"{API}/v1/execution/E1/results"
    requests_mock.get(
        url,
        [
            {"json": page([{"n": 0}, {"n": 1}], next_offset=2)},
            {"json": page([{"n": 2}, {"n": 3}], next_offset=4)},
            {"json": page([{"n": 4}])},
        ],
    )
    rows = hook.iter_results("E1", columns=["n"], filters="n >= 0", sort_by=["n asc"], page_size=2)
    assert next(rows) == {"n": 0}
    assert requests_mock.call_count == 1  # nothing fetched before it is needed
    assert [r["n"] for r in rows] == [1, 2, 3, 4]
    queries = [r.qs for r in requests_mock.request_history]
    assert [q["offset"] for q in queries] == [["0"], ["2"], ["4"]]
    assert queries[0]["columns"] == ["n"] and queries[0]["filters"] == ["n >= 0"]
    assert queries[0]["sort_by"] == ["n asc"] and queries[0]["limit"] == ["2"]
    assert_key_only_in_headers(requests_mock)


def test_iter_results_follows_next_uri_on_the_same_host_only(hook, requests_mock, finished):
    url = f"{API}/v1/execution/E1/results"
    requests_mock.get(
        url,
        [
            {"json": page([{"n": 0}], next_uri=f"{url}?limit=1&offset=1&api_key=leak")},
            {"json": page([{"n": 1}], next_offset=2, next_uri="https://evil.example/api/v1/x?offset=2")},
            {"json": page([{"n": 2}])},
        ],
    )
    rows = hook.iter_results("E1", page_size=1, allow_partial_results=True, sort_by="n desc")
    assert [r["n"] for r in rows] == [0, 1, 2]
    pages = [r for r in requests_mock.request_history if r.path.endswith("/results")]
    assert all(r.hostname == "dune.test" for r in requests_mock.request_history)
    assert "api_key" not in pages[1].qs
    assert pages[2].qs["offset"] == ["2"]
    # The request's own options carry over to the pages next_uri names, though it does not repeat them.
    for request in pages:
        assert request.qs["allow_partial_results"] == ["true"]
        assert request.qs["sort_by"] == ["n desc"]


def test_next_uri_parameters_win_over_the_request_s_own(hook, requests_mock, finished):
    url = f"{API}/v1/execution/E1/results"
    requests_mock.get(
        url,
        [
            {"json": page([{"n": 0}], next_uri=f"{url}?offset=1&sort_by=n+asc")},
            {"json": page([{"n": 1}])},
        ],
    )
    list(hook.iter_results("E1", page_size=1, sort_by="n desc"))
    assert requests_mock.request_history[-1].qs["sort_by"] == ["n asc"]


def test_pages_stay_under_250k_datapoints_by_the_status_column_count(hook, requests_mock):
    requests_mock.get(f"{API}/v1/execution/E1/status", json=status_of([f"c{i}" for i in range(40)]))
    results = requests_mock.get(f"{API}/v1/execution/E1/results", json=page([{"n": 0}]))
    list(hook.iter_results("E1"))
    # 40 columns: 6,250 rows make 250,000 datapoints, Dune's default limit per request.
    assert results.last_request.qs["limit"] == ["6250"]
    list(hook.iter_results("E1", columns=["c0", "c1"]))  # two columns: the page size decides
    assert results.last_request.qs["limit"] == ["32000"]
    list(hook.iter_results("E1", ignore_max_datapoints_per_request=True, page_size=50_000))
    assert results.last_request.qs["limit"] == ["50000"]
    assert results.last_request.qs["ignore_max_datapoints_per_request"] == ["true"]


def test_the_status_this_hook_just_read_sizes_the_pages_without_a_second_read(hook, requests_mock):
    status = requests_mock.get(f"{API}/v1/execution/E1/status", json=status_of(["a", "b", "c", "d", "e"]))
    results = requests_mock.get(f"{API}/v1/execution/E1/results", json=page([{"n": 0}]))
    hook.get_execution_status("E1")
    list(hook.iter_results("E1", page_size=100_000))
    assert status.call_count == 1
    assert results.last_request.qs["limit"] == ["50000"]


def test_sample_count_is_one_request_without_paging(hook, requests_mock, finished):
    results = requests_mock.get(f"{API}/v1/execution/E1/results", json=page([{"n": 7}], next_offset=1))
    assert list(hook.iter_results("E1", sample_count=10)) == [{"n": 7}]
    assert results.call_count == 1
    assert results.last_request.qs == {"sample_count": ["10"]}
    with pytest.raises(DuneConfigurationError, match="sample_count cannot be combined with filters"):
        list(hook.iter_results("E1", sample_count=10, filters="n > 1"))


def test_a_csv_export_leaves_the_json_accept_header_alone(hook, requests_mock, finished):
    requests_mock.get(f"{API}/v1/execution/E1/results/csv", text="n\n0\n")
    assert b"".join(hook.iter_results_csv("E1")) == b"n\n0\n"
    assert requests_mock.last_request.headers["Accept"] == "text/csv, */*"
    hook.get_execution_status("E1")
    assert requests_mock.last_request.headers["Accept"] == "application/json"


def test_latest_result_pages_start_with_a_one_row_probe(hook, requests_mock):
    latest = f"{API}/v1/query/1003/results"
    by_execution = f"{API}/v1/execution/E7/results"
    wide = [f"c{i}" for i in range(10)]
    requests_mock.get(latest, json={**page([{"c0": 0}], next_uri=f"{by_execution}?offset=1", columns=wide)})
    requests_mock.get(by_execution, json=page([{"c0": 1}], columns=wide))
    pages = list(hook.iter_latest_result_pages(1003, allow_partial_results=True))
    assert [p.rows for p in pages] == [[{"c0": 0}], [{"c0": 1}]]
    first, second = requests_mock.request_history
    assert first.qs == {"limit": ["1"], "offset": ["0"], "allow_partial_results": ["true"]}
    # Ten columns: the next page is sized to 25,000 rows, on the execution the result came from.
    assert second.path == "/api/v1/execution/e7/results"
    assert second.qs == {"limit": ["25000"], "offset": ["1"], "allow_partial_results": ["true"]}


def test_latest_result_and_its_csv(hook, requests_mock):
    requests_mock.get(
        f"{API}/v1/query/1003/results",
        json={
            **page([{"n": 0}]),
            "query_id": 1003,
            "state": "QUERY_STATE_COMPLETED",
            "execution_ended_at": "2026-11-30T10:00:00.000Z",
        },
    )
    latest = hook.get_latest_result(1003)
    assert (latest.execution_id, latest.query_id, latest.state, latest.execution_ended_at) == (
        "E1",
        1003,
        "QUERY_STATE_COMPLETED",
        "2026-11-30T10:00:00.000Z",
    )
    assert requests_mock.last_request.qs == {"limit": ["1"], "offset": ["0"]}
    csv_url = f"{API}/v1/query/1003/results/csv"
    requests_mock.get(
        csv_url,
        [
            {
                "text": "a,b\n1,2\n",
                "headers": {"X-Dune-Next-Uri": f"{API}/v1/execution/E1/results/csv?offset=1"},
            },
        ],
    )
    requests_mock.get(f"{API}/v1/execution/E1/results/csv", text="a,b\n3,4\n")
    assert b"".join(hook.iter_latest_results_csv(1003)) == b"a,b\n1,2\n3,4\n"
    assert requests_mock.last_request.qs["limit"] == ["32000"]


def test_iter_results_refuses_a_page_that_goes_nowhere(hook, requests_mock, finished):
    requests_mock.get(f"{API}/v1/execution/E1/results", json=page([{"n": 0}], next_offset=0))
    with pytest.raises(DuneResponseError, match="names no next page that starts further on"):
        list(hook.iter_results("E1"))


def test_iter_results_retries_reads_and_raises_api_errors(hook, requests_mock, finished):
    url = f"{API}/v1/execution/E1/results"
    requests_mock.get(url, [{"status_code": 503, "json": {"error": "busy"}}, {"json": page([{"n": 0}])}])
    assert list(hook.iter_results("E1")) == [{"n": 0}]
    requests_mock.get(url, status_code=400, json={"error": "the result of this execution is partial"})
    with pytest.raises(DuneApiError, match="partial"):
        list(hook.iter_results("E1"))


def test_iter_results_csv_keeps_one_header_and_follows_headers(hook, requests_mock, finished):
    url = f"{API}/v1/execution/E1/results/csv"
    requests_mock.get(
        url,
        [
            {
                "text": "n,label\n0,a\n1,b\n",
                "headers": {"X-Dune-Next-Offset": "2", "X-Dune-Next-Uri": f"{url}?limit=2&offset=2"},
            },
            {"text": 'n,label\n2,"multi\nline"\n', "headers": {"X-Dune-Next-Offset": "3"}},
            {"text": "n,label\n3,d"},
        ],
    )
    body = b"".join(hook.iter_results_csv("E1", page_size=2))
    assert body == b'n,label\n0,a\n1,b\n2,"multi\nline"\n3,d\n'
    pages = [r for r in requests_mock.request_history if r.path.endswith("/csv")]
    assert [r.qs["offset"] for r in pages] == [["0"], ["2"], ["3"]]
    assert_key_only_in_headers(requests_mock)


def test_bad_page_size_is_refused(hook):
    with pytest.raises(DuneConfigurationError, match="page_size"):
        list(hook.iter_results("E1", page_size=0))


# ------------------------------------------------------------------ query pipelines


def test_get_query_pipeline_returns_typed_nodes(hook, requests_mock):
    requests_mock.get(
        f"{API}/v1/query/1001/pipeline",
        json={
            "query_id": 1001,
            "pipeline": {
                "nodes": [
                    {
                        "id": 1,
                        "dependencies": [],
                        "materialized_view_refresh": {"name": "dune.t.result_v", "performance": "medium"},
                    },
                    {
                        "id": 2,
                        "dependencies": [1],
                        "query_execution": {"query_id": 1001, "query_parameters": {"x": 1}},
                    },
                ]
            },
        },
    )
    pipeline = hook.get_query_pipeline(1001)
    assert pipeline.view_names == ("dune.t.result_v",)
    first, second = pipeline.nodes
    assert (first.type, first.name, first.dependencies) == ("materialized_view", "dune.t.result_v", ())
    assert (second.type, second.query_id, second.dependencies, dict(second.query_parameters)) == (
        "query",
        1001,
        (1,),
        {"x": 1},
    )
    assert second.label == "node 2 (query 1001)"


def test_get_query_pipeline_rejects_a_body_without_nodes(hook, requests_mock):
    requests_mock.get(f"{API}/v1/query/5/pipeline", json={"query_id": 5})
    with pytest.raises(DuneResponseError, match=r"pipeline\.nodes"):
        hook.get_query_pipeline(5)


def test_execute_query_pipeline(hook, requests_mock):
    requests_mock.post(f"{API}/v1/query/5/pipeline/execute", json={"pipeline_execution_id": "P9"})
    assert hook.execute_query_pipeline(5, performance="large") == "P9"
    assert requests_mock.last_request.json() == {"performance": "large"}
    # This endpoint requires a tier: unset means Dune's default.
    hook.execute_query_pipeline(5)
    assert requests_mock.last_request.json() == {"performance": "medium"}


# ------------------------------------------------------------------ materialized views


VIEW = {
    "id": "5ef1f0b2-2c53-4d7e-9b8a-0d6b4f3f1a11",
    "sql_id": "dune.t.result_v",
    "query_id": 7,
    "is_private": False,
    "table_size_bytes": 1024,
}


def test_list_views_follows_next_offset(hook, requests_mock):
    url = f"{API}/v1/materialized-views"
    requests_mock.get(
        url,
        [
            {"json": {"materialized_views": [VIEW], "next_offset": 1}},
            {"json": {"materialized_views": [{**VIEW, "sql_id": "dune.t.result_w"}]}},
        ],
    )
    assert [v.name for v in hook.list_materialized_views(page_size=1)] == [
        "dune.t.result_v",
        "dune.t.result_w",
    ]
    assert [r.qs["offset"] for r in requests_mock.request_history] == [["0"], ["1"]]


def test_get_upsert_delete_refresh_view(hook, requests_mock):
    requests_mock.get(
        f"{API}/v1/materialized-views/dune.t.result_v",
        json={**VIEW, "last_execution_ids": ["E4", "E3"], "owner_team_id": 3, "owner_user_id": 9},
    )
    view = hook.get_materialized_view("dune.t.result_v")
    assert (view.name, view.query_id, view.is_private, view.table_size_bytes, view.last_execution_ids) == (
        "dune.t.result_v",
        7,
        False,
        1024,
        ("E4", "E3"),
    )
    assert (view.owner_team_id, view.owner_user_id) == (3, 9)

    requests_mock.post(f"{API}/v1/materialized-views", json={"execution_id": "E6", "name": "dune.t.result_v"})
    upsert = hook.upsert_materialized_view("result_v", 7, performance="large", cron_expression="0 * * * *")
    # The upsert starts a refresh: its execution id comes back to the caller.
    assert (upsert.execution_id, upsert.name) == ("E6", "dune.t.result_v")
    assert requests_mock.last_request.json() == {
        "name": "result_v",
        "query_id": 7,
        "performance": "large",
        "cron_expression": "0 * * * *",
    }

    requests_mock.delete(f"{API}/v1/materialized-views/dune.t.result_v", json={"message": "deleted"})
    assert hook.delete_materialized_view("dune.t.result_v") is True

    requests_mock.post(
        f"{API}/v1/materialized-views/result_v/refresh",
        json={"execution_id": "E5", "sql_id": "dune.t.result_v"},
    )
    refresh = hook.refresh_materialized_view("result_v", performance="large")
    # Dune's answer names the view in full, whatever name the refresh was given.
    assert (refresh.execution_id, refresh.name) == ("E5", "dune.t.result_v")
    assert requests_mock.last_request.json() == {"performance": "large"}
    hook.refresh_materialized_view("result_v")
    assert requests_mock.last_request.json() == {}
    assert_key_only_in_headers(requests_mock)


def test_the_upsert_starts_work_and_is_not_resent(hook, requests_mock):
    requests_mock.post(f"{API}/v1/materialized-views", status_code=502, json={"error": "bad gateway"})
    with pytest.raises(DuneApiError) as err:
        hook.upsert_materialized_view("result_v", 7)
    assert err.value.may_have_started
    assert requests_mock.call_count == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: h.upsert_materialized_view("dune.other.result_v", 7), "short name 'result_v'"),
        (lambda h: h.upsert_materialized_view("daily", 7), "start with result_"),
        (lambda h: h.upsert_materialized_view("result_v", 7, cron_expression="hourly"), "5 fields"),
        (lambda h: h.upsert_materialized_view("result_v", 7, performance="small"), "medium and large"),
        (lambda h: h.get_materialized_view("result_v"), "not a full materialized view name"),
        (lambda h: h.delete_materialized_view("result_v"), "not a full materialized view name"),
    ],
)
def test_view_names_are_checked_before_any_request(hook, requests_mock, call, message):
    with pytest.raises(DuneConfigurationError, match=message):
        call(hook)
    assert requests_mock.request_history == []


def test_view_errors(hook, requests_mock):
    requests_mock.get(
        f"{API}/v1/materialized-views/dune.t.result_x", status_code=404, json={"error": "not found"}
    )
    with pytest.raises(DuneApiError) as err:
        hook.get_materialized_view("dune.t.result_x")
    assert err.value.status_code == 404
    with pytest.raises(DuneConfigurationError):
        hook.refresh_materialized_view("../etc")
    requests_mock.post(
        f"{API}/v1/materialized-views/dune.t.result_v/refresh", status_code=500, json={"error": "x"}
    )
    with pytest.raises(DuneApiError):
        hook.refresh_materialized_view("dune.t.result_v")
    assert requests_mock.call_count == 2  # a refresh starts work: no retry after a 5xx
    requests_mock.post(
        f"{API}/v1/materialized-views/dune.t.result_v/refresh", json={"sql_id": "dune.t.result_v"}
    )
    with pytest.raises(DuneResponseError, match="may have started"):
        hook.refresh_materialized_view("dune.t.result_v")


# ------------------------------------------------------------------ single-execution states


def status(state, **extra):
    return parse_execution_status("E1", {"state": state, "query_id": 9, **extra})


@pytest.mark.parametrize(
    ("state", "allow", "outcome", "text"),
    [
        ("QUERY_STATE_COMPLETED", False, RunOutcome.SUCCEEDED, "completed"),
        ("QUERY_STATE_COMPLETED_PARTIAL", False, RunOutcome.FAILED, "allow_partial_results=True"),
        ("QUERY_STATE_COMPLETED_PARTIAL", True, RunOutcome.SUCCEEDED, "PARTIAL result"),
        ("QUERY_STATE_CANCELLED", False, RunOutcome.FAILED, "Dune execution E1 (query 9) was cancelled."),
        ("QUERY_STATE_CANCELLED", False, RunOutcome.FAILED, "was cancelled."),
        ("QUERY_STATE_EXPIRED", False, RunOutcome.FAILED, "expired: its result is no longer available"),
        ("QUERY_STATE_PENDING", False, RunOutcome.RUNNING, ""),
        ("QUERY_STATE_EXECUTING", False, RunOutcome.RUNNING, ""),
    ],
)
def test_execution_states(state, allow, outcome, text):
    s = status(state)
    assert s.decide(allow_partial_results=allow) is outcome
    assert text in s.end_message(allow_partial_results=allow)


def test_failed_state_names_type_message_line_and_column():
    s = status(
        "QUERY_STATE_FAILED",
        error={
            "type": "FAILED_TYPE_EXECUTION_FAILED",
            "message": "bad column",
            "metadata": {"line": 3, "column": 7},
        },
    )
    assert (
        s.end_message()
        == "Dune execution E1 (query 9) failed: FAILED_TYPE_EXECUTION_FAILED: bad column (line 3, column 7)"
    )
    # The XCom shape parses back to the same status.
    assert parse_execution_status("E1", s.to_dict()) == s


def test_unknown_state_is_running_and_warned_once(caplog):
    unknown_states.reset()
    for _ in range(3):
        assert status("QUERY_STATE_THINKING").decide() is RunOutcome.RUNNING
    assert caplog.text.count("QUERY_STATE_THINKING") == 1


def test_result_metadata_is_typed():
    s = status(
        "QUERY_STATE_COMPLETED",
        result_metadata={
            "column_names": ["a"],
            "row_count": 2,
            "total_row_count": 5,
            "datapoint_count": 5,
            "result_set_bytes": 10,
        },
    )
    assert s.metadata is not None
    assert (s.metadata.total_row_count, s.metadata.datapoint_count, s.metadata.column_names) == (5, 5, ("a",))
    assert s.summary() == "QUERY_STATE_COMPLETED, 5 rows"


NODES = [
    {
        "node_id": 1,
        "type": "materialized_view",
        "name": "dune.t.result_v",
        "query_id": None,
        "execution_id": "M1",
        "status": "completed",
        "error": None,
    },
    {
        "node_id": 2,
        "type": "query",
        "name": None,
        "query_id": 7,
        "execution_id": "E2",
        "status": "completed",
        "error": None,
    },
    {
        "node_id": 3,
        "type": "materialized_view",
        "name": "dune.t.result_w",
        "query_id": None,
        "execution_id": "M3",
        "status": "failed",
        "error": "x",
    },
]


def test_pipeline_node_lookup_and_refreshed_views():
    assert find_node_execution(NODES, node_id=2) == "E2"
    assert find_node_execution(NODES, query_id=7) == "E2"
    with pytest.raises(DuneConfigurationError, match=r"no query 8; its nodes are: node 1"):
        find_node_execution(NODES, query_id=8)
    with pytest.raises(DuneConfigurationError):
        find_node_execution(NODES)
    assert refreshed_view_names(NODES) == ["dune.t.result_v"]

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import API_KEY, Api

STATUS_KEYS = {
    "execution_id",
    "query_id",
    "is_execution_finished",
    "state",
    "submitted_at",
    "expires_at",
    "execution_started_at",
    "execution_ended_at",
    "execution_cost_credits",
    "result_metadata",
}
METADATA_KEYS = {
    "column_names",
    "column_types",
    "row_count",
    "total_row_count",
    "datapoint_count",
    "result_set_bytes",
    "total_result_set_bytes",
    "execution_time_millis",
    "pending_time_millis",
}


def run_sql(emulator: DuneEmulator, api: Api, sql: str) -> str:
    execution_id: str = api.post("/v1/sql/execute", json={"sql": sql}).json()["execution_id"]
    emulator.wait_for_execution(execution_id)
    return execution_id


def test_states_progress_and_completed_status_shape(emulator: DuneEmulator, api: Api) -> None:
    emulator.execution_seconds = 0.4
    execution_id = api.post("/v1/query/1003/execute", json={"performance": "large"}).json()["execution_id"]
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status = api.get(f"/v1/execution/{execution_id}/status").json()
        if not seen or seen[-1] != status["state"]:
            seen.append(status["state"])
        if status["is_execution_finished"]:
            break
        time.sleep(0.02)
    assert seen == ["QUERY_STATE_PENDING", "QUERY_STATE_EXECUTING", "QUERY_STATE_COMPLETED"]
    assert set(status) == STATUS_KEYS
    assert status["query_id"] == 1003
    assert status["submitted_at"].endswith("Z")
    assert set(status["result_metadata"]) == METADATA_KEYS
    assert status["result_metadata"]["column_names"] == ["day", "blocks", "gas_used"]
    assert status["result_metadata"]["total_row_count"] == 3
    assert status["execution_cost_credits"] > 0


def test_pending_status_has_no_result_fields(emulator: DuneEmulator, api: Api) -> None:
    emulator.execution_seconds = 5
    execution_id = api.post("/v1/sql/execute", json={"sql": "SELECT 1"}).json()["execution_id"]
    status = api.get(f"/v1/execution/{execution_id}/status").json()
    assert status["state"] == "QUERY_STATE_PENDING"
    assert status["is_execution_finished"] is False
    assert "result_metadata" not in status and "execution_ended_at" not in status
    results = api.get(f"/v1/execution/{execution_id}/results").json()
    assert results["is_execution_finished"] is False and "result" not in results
    assert api.post(f"/v1/execution/{execution_id}/cancel").json() == {"success": True}


def test_sql_error_has_dune_line_and_column(emulator: DuneEmulator, api: Api) -> None:
    execution_id = api.post("/v1/query/1002/execute").json()["execution_id"]
    status = emulator.wait_for_execution(execution_id)
    assert status["state"] == "QUERY_STATE_FAILED"
    assert status["is_execution_finished"] is True
    error = status["error"]
    assert error["type"] == "FAILED_TYPE_EXECUTION_FAILED"
    assert error["metadata"] == {"line": 3, "column": 3}
    assert error["message"].startswith("line 3:3: Column 'amount_usd_typo' cannot be resolved")
    assert execution_id in error["message"]
    assert "result_metadata" not in status


def test_sql_error_position_on_first_line(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT x FROM dex.trades")
    error = api.get(f"/v1/execution/{execution_id}/status").json()["error"]
    assert error["metadata"] == {"line": 1, "column": 8}
    assert error["message"].startswith("line 1:8: ")


def test_error_without_position_has_no_metadata(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(
        emulator, api, "SELECT * FROM range(3) WHERE 1 / (range - 1) > 0 AND error('boom')"
    )
    error = api.get(f"/v1/execution/{execution_id}/status").json()["error"]
    assert "metadata" not in error
    assert "boom" in error["message"]


def test_cancel_running_execution(emulator: DuneEmulator, api: Api) -> None:
    emulator.execution_seconds = 10
    execution_id = api.post("/v1/query/1003/execute").json()["execution_id"]
    assert api.post(f"/v1/execution/{execution_id}/cancel").json() == {"success": True}
    status = api.get(f"/v1/execution/{execution_id}/status").json()
    assert status["state"] == "QUERY_STATE_CANCELLED"
    assert status["is_execution_finished"] is True
    assert "cancelled_at" in status


def test_unknown_execution_is_404(api: Api) -> None:
    for path in ("status", "results", "results/csv"):
        response = api.get(f"/v1/execution/01NOPE/{path}")
        assert response.status_code == 404
        assert "error" in response.json()
    assert api.post("/v1/execution/01NOPE/cancel").status_code == 404


def test_json_results_page_through(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT range AS n FROM range(25)")
    rows: list[int] = []
    url = f"{api.base_url}/v1/execution/{execution_id}/results?limit=10"
    offsets = []
    while url:
        page = api.session.get(url, timeout=5).json()
        rows += [row["n"] for row in page["result"]["rows"]]
        assert page["result"]["metadata"]["total_row_count"] == 25
        offsets.append(page.get("next_offset"))
        url = page.get("next_uri")
    assert rows == list(range(25))
    assert offsets == [10, 20, None]


def test_csv_results_page_through(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT range AS n, 'v' || range AS label FROM range(7)")
    offset: str | None = "0"
    collected: list[list[str]] = []
    pages = 0
    while offset is not None:
        response = api.get(f"/v1/execution/{execution_id}/results/csv", params={"limit": 3, "offset": offset})
        assert response.headers["Content-Type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(response.text)))
        assert table[0] == ["n", "label"]
        collected += table[1:]
        offset = response.headers.get("X-Dune-Next-Offset")
        if offset is not None:
            assert response.headers["X-Dune-Next-Uri"].endswith(f"offset={offset}")
        pages += 1
    assert pages == 3
    assert collected == [[str(n), f"v{n}"] for n in range(7)]


def test_million_row_result_pages_from_storage(emulator: DuneEmulator, api: Api) -> None:
    execution_id = api.post("/v1/query/1004/execute").json()["execution_id"]
    status = emulator.wait_for_execution(execution_id)
    assert status["result_metadata"]["total_row_count"] == 1_000_000
    total = 0
    offset: str | None = "0"
    while offset is not None:
        # Two columns: 125,000 rows is the most one request may carry (250,000 datapoints).
        response = api.get(
            f"/v1/execution/{execution_id}/results/csv", params={"limit": 125_000, "offset": offset}
        )
        lines = response.text.count("\n") - 1
        total += lines
        offset = response.headers.get("X-Dune-Next-Offset")
    assert total == 1_000_000
    last = api.get(f"/v1/execution/{execution_id}/results", params={"limit": 2, "offset": 999_998}).json()
    assert [row["n"] for row in last["result"]["rows"]] == [999_998, 999_999]
    assert "next_offset" not in last


def test_columns_sort_and_filters(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT range AS n, range % 3 AS r FROM range(10)")
    page = api.get(
        f"/v1/execution/{execution_id}/results",
        params={"columns": "n", "filters": "r = 1", "sort_by": "n desc"},
    ).json()
    assert page["result"]["rows"] == [{"n": 7}, {"n": 4}, {"n": 1}]
    assert page["result"]["metadata"]["column_names"] == ["n"]
    assert api.get(f"/v1/execution/{execution_id}/results", params={"columns": "nope"}).status_code == 400
    assert api.get(f"/v1/execution/{execution_id}/results", params={"filters": "bogus ="}).status_code == 400


def test_value_types_are_json_friendly(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(
        emulator, api, "SELECT block_time, block_date, amount_usd FROM dex.trades ORDER BY block_time LIMIT 1"
    )
    [row] = api.get(f"/v1/execution/{execution_id}/results").json()["result"]["rows"]
    assert row == {"block_time": "2024-01-01 00:00:00.000 UTC", "block_date": "2024-01-01", "amount_usd": 1.0}


def test_expired_execution_has_no_result(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT 1 AS one")
    assert emulator.expire_execution(execution_id)
    body = api.get(f"/v1/execution/{execution_id}/results").json()
    assert body["state"] == "QUERY_STATE_EXPIRED" and "result" not in body


def test_partial_results_need_allow_partial_results() -> None:
    with DuneEmulator(api_key="k", execution_seconds=0, max_result_rows=5) as emulator:
        api = Api(emulator)
        execution_id = run_sql(emulator, api, "SELECT range AS n FROM range(50)")
        assert (
            api.get(f"/v1/execution/{execution_id}/status").json()["state"] == "QUERY_STATE_COMPLETED_PARTIAL"
        )
        assert api.get(f"/v1/execution/{execution_id}/results").status_code == 400
        page = api.get(
            f"/v1/execution/{execution_id}/results", params={"allow_partial_results": "true"}
        ).json()
        assert len(page["result"]["rows"]) == 5


def test_a_page_over_250k_datapoints_is_refused_unless_the_request_says_so(
    emulator: DuneEmulator, api: Api
) -> None:
    execution_id = run_sql(emulator, api, "SELECT range AS a, range AS b, range AS c FROM range(90000)")
    path = f"/v1/execution/{execution_id}/results"
    # 3 columns: 83,333 rows are 249,999 datapoints, one more row is over the limit.
    assert len(api.get(path, params={"limit": 83_333}).json()["result"]["rows"]) == 83_333
    refused = api.get(path, params={"limit": 83_334})
    assert refused.status_code == 400
    assert "250,000 datapoints" in refused.json()["error"]
    assert api.get(path + "/csv", params={"limit": 90_000}).status_code == 400
    # Fewer columns make the same rows fit; the flag lifts the limit.
    assert api.get(path, params={"limit": 90_000, "columns": "a,b"}).status_code == 200
    allowed = api.get(path, params={"limit": 90_000, "ignore_max_datapoints_per_request": "true"})
    assert len(allowed.json()["result"]["rows"]) == 90_000


def test_sample_count_returns_one_sample_page(emulator: DuneEmulator, api: Api) -> None:
    execution_id = run_sql(emulator, api, "SELECT range AS n FROM range(1000)")
    path = f"/v1/execution/{execution_id}/results"
    page = api.get(path, params={"sample_count": 10}).json()
    assert len(page["result"]["rows"]) == 10
    assert "next_uri" not in page
    # Dune documents sample_count as incompatible with paging and filters.
    assert api.get(path, params={"sample_count": 10, "limit": 5}).status_code == 400
    assert api.get(path, params={"sample_count": 10, "filters": "n > 1"}).status_code == 400


def test_latest_result_serves_the_most_recent_finished_execution(emulator: DuneEmulator, api: Api) -> None:
    query_id = api.post("/v1/query", json={"name": "latest", "query_sql": "SELECT range AS n FROM range(5)"})
    query_id = query_id.json()["query_id"]
    assert api.get(f"/v1/query/{query_id}/results").status_code == 404  # never ran
    first = api.post(f"/v1/query/{query_id}/execute").json()["execution_id"]
    emulator.wait_for_execution(first)
    second = api.post(f"/v1/query/{query_id}/execute").json()["execution_id"]
    emulator.wait_for_execution(second)
    emulator.execution_seconds = 10
    api.post(f"/v1/query/{query_id}/execute")  # still running: not a result yet

    page = api.get(f"/v1/query/{query_id}/results", params={"limit": 2, "sort_by": "n desc"}).json()
    assert page["execution_id"] == second
    assert [row["n"] for row in page["result"]["rows"]] == [4, 3]
    # Later pages come from that execution, keeping the request's own options.
    assert f"/api/v1/execution/{second}/results?" in page["next_uri"]
    assert "sort_by=n+desc" in page["next_uri"]
    csv_page = api.get(f"/v1/query/{query_id}/results/csv", params={"limit": 2})
    assert csv_page.text.splitlines() == ["n", "0", "1"]
    assert csv_page.headers["X-Dune-Next-Uri"].split("?")[0].endswith(f"/execution/{second}/results/csv")
    assert api.get("/v1/query/424242/results").status_code == 404


def test_archived_query_cannot_execute(emulator: DuneEmulator, api: Api) -> None:
    query_id = api.post("/v1/query", json={"name": "old", "query_sql": "SELECT 1 AS one"}).json()["query_id"]
    assert api.post(f"/v1/query/{query_id}/archive").json() == {"query_id": query_id}
    assert api.get(f"/v1/query/{query_id}").json()["is_archived"] is True
    refused = api.post(f"/v1/query/{query_id}/execute")
    assert refused.status_code == 403
    assert refused.json()["error"].startswith("Not allowed to execute query")
    api.post(f"/v1/query/{query_id}/unarchive")
    assert api.post(f"/v1/query/{query_id}/execute").status_code == 200


def test_credit_limit_refuses_work_with_402_before_starting_it() -> None:
    # Medium executions cost 10 credits: a limit of 25 allows two.
    with DuneEmulator(api_key="k", execution_seconds=0, credit_limit=25) as dune:
        api = Api(dune)
        assert api.post("/v1/sql/execute", json={"sql": "SELECT 1"}).status_code == 200
        assert api.post("/v1/query/1003/execute").status_code == 200
        for refused in (
            api.post("/v1/query/1003/execute"),
            api.post("/v1/sql/execute", json={"sql": "SELECT 1"}),
            api.post("/v1/pipelines/execute", json={"query_id": 1003}),
            api.post("/v1/materialized-views/result_dex_daily_volume/refresh"),
        ):
            assert refused.status_code == 402
            assert "exceed your configured limits per billing cycle" in refused.json()["error"]
        assert len(dune.execution_ids()) == 2
        assert dune.credits_used == 20
        period = api.post("/v1/usage", json={}).json()["billing_periods"][0]
        assert (period["credits_used"], period["credits_included"]) == (20, 25)


def test_a_query_that_fails_on_its_first_run_succeeds_on_the_next() -> None:
    # Its own emulator: the shared one's 1005 may have used its failing run already.
    with DuneEmulator(api_key=API_KEY, execution_seconds=0.0) as emulator:
        api = Api(emulator)
        states = []
        for _ in range(2):
            execution_id = api.post("/v1/query/1005/execute", json={}).json()["execution_id"]
            emulator.wait_for_execution(execution_id)
            states.append(api.get(f"/v1/execution/{execution_id}/status").json())
    assert [s["state"] for s in states] == ["QUERY_STATE_FAILED", "QUERY_STATE_COMPLETED"]
    assert "fails_on_its_first_run" in states[0]["error"]["message"]


def test_decimals_keep_every_digit_in_json_and_csv(emulator: DuneEmulator, api: Api) -> None:
    digits = "12345678901234567890.123456789012345678"
    execution_id = run_sql(
        emulator,
        api,
        f"SELECT CAST('{digits}' AS DECIMAL(38,18)) AS d, CAST('-0.5' AS DECIMAL(4,2)) AS small, "
        f"[CAST('1.25' AS DECIMAL(4,2))] AS listed",
    )
    body = api.get(f"/v1/execution/{execution_id}/results").text
    # A JSON number with all its digits (as Dune sends it), not a string and not a float's 17.
    assert f'"d": {digits}' in body and '"small": -0.50' in body and '"listed": [1.25]' in body
    assert json.loads(body, parse_float=Decimal)["result"]["rows"][0]["d"] == Decimal(digits)
    table = list(csv.reader(io.StringIO(api.get(f"/v1/execution/{execution_id}/results/csv").text)))
    assert table[1] == [digits, "-0.50", "[1.25]"]

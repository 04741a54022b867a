from __future__ import annotations

import csv
import io
import time

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api

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
    assert status["state"] == "QUERY_STATE_CANCELED"
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
        response = api.get(
            f"/v1/execution/{execution_id}/results/csv", params={"limit": 250_000, "offset": offset}
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

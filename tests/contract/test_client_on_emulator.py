"""Every call of the hook, over real HTTP against the emulator: what the contract gate checks."""

from __future__ import annotations

import csv
import io

import pytest

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.exceptions import DuneApiError
from airflow_provider_dune.hooks.dune import DuneHook

WIDE_SQL = "SELECT " + ", ".join(f"range AS c{i}" for i in range(30)) + " FROM range(20000)"


@pytest.fixture
def hook(dune_emulator: DuneEmulator) -> DuneHook:
    return DuneHook()


def test_view_lifecycle(hook: DuneHook, dune_emulator: DuneEmulator) -> None:
    query_id = 1003
    upsert = hook.upsert_materialized_view(
        "result_blocks", query_id, performance="large", cron_expression="0 * * * *"
    )
    assert upsert.name == "dune.emulator.result_blocks"
    assert dune_emulator.wait_for_execution(upsert.execution_id)["state"] == "QUERY_STATE_COMPLETED"
    assert upsert.name in [view.name for view in hook.list_materialized_views(page_size=1)]
    view = hook.get_materialized_view(upsert.name)
    assert (view.query_id, view.last_execution_ids) == (query_id, (upsert.execution_id,))
    refresh = hook.refresh_materialized_view("result_blocks")
    assert refresh.name == upsert.name
    assert hook.delete_materialized_view(upsert.name) is True
    with pytest.raises(DuneApiError) as err:
        hook.get_materialized_view(upsert.name)
    assert err.value.status_code == 404


def test_query_pipeline_and_latest_result(hook: DuneHook, dune_emulator: DuneEmulator) -> None:
    assert hook.get_query_pipeline(1001).view_names == ("dune.emulator.result_dex_daily_volume",)
    execution_id = hook.execute_query(1003, performance="medium")
    dune_emulator.wait_for_execution(execution_id)
    latest = hook.get_latest_result(1003)
    assert (latest.execution_id, latest.state) == (execution_id, "QUERY_STATE_COMPLETED")
    assert latest.execution_ended_at and latest.total_row_count
    rows = list(hook.iter_latest_results(1003, page_size=7))
    assert len(rows) == latest.total_row_count
    table = list(csv.reader(io.StringIO(b"".join(hook.iter_latest_results_csv(1003, page_size=7)).decode())))
    assert table[0] == latest.column_names and len(table) == len(rows) + 1


def test_a_wide_result_is_read_in_pages_dune_accepts(hook: DuneHook, dune_emulator: DuneEmulator) -> None:
    execution_id = hook.execute_sql(WIDE_SQL)
    dune_emulator.wait_for_execution(execution_id)
    # 30 columns x 32,000 rows would be refused (960,000 datapoints); pages of 8,333 are not.
    assert sum(len(page.rows) for page in hook.iter_result_pages(execution_id)) == 20_000
    limits = {
        e.status
        for e in dune_emulator.request_log.filter(path_prefix=f"/api/v1/execution/{execution_id}/results")
    }
    assert limits == {200}
    csv_rows = b"".join(hook.iter_results_csv(execution_id)).count(b"\n") - 1
    assert csv_rows == 20_000
    assert len(list(hook.iter_results(execution_id, sample_count=5))) == 5
    ignored = hook.iter_result_pages(execution_id, ignore_max_datapoints_per_request=True)
    assert len(next(ignored).rows) == 20_000


def test_connection_and_a_wrong_key(hook: DuneHook, dune_emulator: DuneEmulator, monkeypatch) -> None:
    assert hook.test_connection() == (True, "Connected to Dune: the API key was accepted.")
    monkeypatch.setenv(
        "AIRFLOW_CONN_DUNE_DEFAULT",
        dune_emulator.airflow_conn_json().replace(dune_emulator.api_key, "wrong-key"),
    )
    ok, message = DuneHook().test_connection()
    assert not ok and "HTTP 401" in message


def test_pipelines_and_cancel(hook: DuneHook, dune_emulator: DuneEmulator) -> None:
    done = hook.execute_pipeline(query_id=1001, performance="large", query_parameters={"min_volume_usd": 0})
    dune_emulator.wait_for_pipeline(done)
    assert hook.get_pipeline_status(done).progress() == "2/2 nodes done"
    assert dune_emulator.wait_for_pipeline(hook.execute_query_pipeline(1003))["status"] == "completed"
    dune_emulator.execution_seconds = 10
    assert hook.cancel_execution(hook.execute_query(1003)) is True

"""Dune's official Python SDK (dune-client 1.12.2), unchanged, against the emulator.

If the emulator serves what Dune serves, the SDK works on it as on Dune: creating a query
(POST /v1/query/, with the slash), reading and updating it, running it, its results as JSON
and CSV and the latest result, a query pipeline, a cancelled execution (the SDK knows only
QUERY_STATE_CANCELLED) and a wrong key.
"""

from __future__ import annotations

import pytest
from dune_client.client import DuneClient
from dune_client.models import ExecutionState
from dune_client.query import QueryBase
from requests import HTTPError

from airflow_provider_dune.emulator import DuneEmulator


@pytest.fixture
def sdk(dune_emulator: DuneEmulator) -> DuneClient:
    # The SDK appends /api/v1 itself: its base URL is the host.
    return DuneClient(api_key=dune_emulator.api_key, base_url=dune_emulator.url, request_timeout=10)


def test_sdk_round_trip(sdk: DuneClient, dune_emulator: DuneEmulator) -> None:
    created = sdk.create_query("sdk query", "SELECT range AS n, range * 2 AS twice FROM range(40)")
    assert dune_emulator.request_log.count(method="POST", path_prefix="/api/v1/query/", status=200) == 1
    query_id = created.base.query_id
    assert sdk.get_query(query_id).sql.startswith("SELECT range AS n")
    assert sdk.update_query(query_id, name="renamed") == query_id
    assert sdk.get_query(query_id).base.name == "renamed"

    results = sdk.run_query(QueryBase(query_id), ping_frequency=0, batch_size=15)
    assert [row["n"] for row in results.get_rows()] == list(range(40))  # three pages, by next_uri
    csv_text = sdk.run_query_csv(QueryBase(query_id), ping_frequency=0, batch_size=15).data.read().decode()
    assert csv_text.splitlines()[0] == "n,twice" and len(csv_text.splitlines()) == 41

    latest = sdk.get_latest_result(query_id, batch_size=15)
    assert latest.state == ExecutionState.COMPLETED and len(latest.get_rows()) == 40
    assert sdk.download_csv(query_id).data.read().decode().count("\n") == 41
    assert len(sdk.run_sql("SELECT 1 AS one", ping_frequency=0).get_rows()) == 1


def test_sdk_pipeline_and_cancel(sdk: DuneClient, dune_emulator: DuneEmulator) -> None:
    # The SDK parses query nodes only (it fails on view refresh nodes): query 1003 has no view.
    pipeline = sdk.execute_query_pipeline(1003)
    dune_emulator.wait_for_pipeline(pipeline.pipeline_execution_id)
    status = sdk.get_pipeline_status(pipeline.pipeline_execution_id)
    assert status.status == "completed"
    assert [node.query_execution_status.query_id for node in status.node_executions] == [1003]

    dune_emulator.execution_seconds = 10
    execution = sdk.execute_query(QueryBase(1003))
    assert sdk.cancel_execution(execution.execution_id) is True
    assert sdk.get_execution_status(execution.execution_id).state == ExecutionState.CANCELLED


def test_sdk_with_a_wrong_key(dune_emulator: DuneEmulator) -> None:
    wrong = DuneClient(api_key="not-the-key", base_url=dune_emulator.url, request_timeout=10)
    with pytest.raises(HTTPError) as err:
        wrong.get_execution_status("01ANYTHING")
    assert err.value.response.status_code == 401
    assert err.value.response.json() == {"error": "invalid API Key"}

from __future__ import annotations

from airflow_provider_dune.emulator import DuneEmulator, FaultConfig
from tests.emulator.conftest import Api


def test_counts_by_method_path_status_and_fault(emulator: DuneEmulator, api: Api) -> None:
    pipeline_execution_id = api.post("/v1/pipelines/execute", json={"query_id": 1003}).json()[
        "pipeline_execution_id"
    ]
    for _ in range(3):
        api.get(f"/v1/pipelines/executions/{pipeline_execution_id}/status")
    emulator.faults = FaultConfig(sequence=("503",))
    api.post("/v1/pipelines/execute", json={"query_id": 1003})

    log = emulator.request_log
    assert len(log) == 5
    assert log.count(method="POST", path_prefix="/api/v1/pipelines/execute") == 2
    assert log.count(method="get", path_prefix="/api/v1/pipelines/executions/") == 3
    assert log.count(status=503) == 1
    assert log.count(fault="503") == 1
    [rejected] = log.filter(status=503)
    assert rejected.method == "POST" and rejected.path == "/api/v1/pipelines/execute"
    times = [entry.time for entry in log]
    assert times == sorted(times)


def test_clear_and_admin_endpoints_are_not_logged(emulator: DuneEmulator, api: Api) -> None:
    api.get("/v1/query/1001")
    api.session.get(emulator.url + "/_emulator/requests", timeout=5)
    assert [entry.path for entry in emulator.request_log.entries()] == ["/api/v1/query/1001"]
    emulator.request_log.clear()
    assert emulator.request_log.count() == 0


def test_log_is_readable_over_http(emulator: DuneEmulator, api: Api) -> None:
    api.get("/v1/query/1001")
    body = api.session.get(emulator.url + "/_emulator/requests", timeout=5).json()
    assert body["requests"][0]["path"] == "/api/v1/query/1001"
    assert body["requests"][0]["key_in_url"] is False
    api.session.delete(emulator.url + "/_emulator/requests", timeout=5)
    assert len(emulator.request_log) == 0

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests

from airflow_provider_dune.emulator import DuneEmulator, FaultConfig
from tests.emulator.conftest import Api

STATUS = "/v1/query/1003"


def fault_pattern(emulator: DuneEmulator, api: Api, config: FaultConfig, requests_made: int) -> list[int]:
    emulator.faults = config
    return [api.get(STATUS).status_code for _ in range(requests_made)]


def test_shares_roughly_match_configuration(emulator: DuneEmulator, api: Api) -> None:
    config = FaultConfig(rate_429=0.1, rate_429_retry_after=0.1, rate_5xx=0.2, seed=7)
    statuses = Counter(fault_pattern(emulator, api, config, 600))
    assert 0.14 < statuses[429] / 600 < 0.26
    assert 0.14 < sum(statuses[code] for code in (500, 502, 503, 504)) / 600 < 0.26
    assert 0.52 < statuses[200] / 600 < 0.68
    faults = Counter(entry.fault for entry in emulator.request_log.entries())
    assert faults["429"] + faults["429_retry_after"] == statuses[429]
    assert faults[None] == statuses[200]


def test_same_seed_same_faults(emulator: DuneEmulator, api: Api) -> None:
    config = FaultConfig(rate_5xx=0.3, rate_429=0.2, seed=42)
    first = fault_pattern(emulator, api, config, 60)
    second = fault_pattern(emulator, api, config, 60)  # assigning again resets the random stream
    assert first == second
    assert set(first) > {200}


def test_retry_after_header_only_on_its_share(emulator: DuneEmulator, api: Api) -> None:
    emulator.faults = FaultConfig(sequence=("429", "429_retry_after"), retry_after_seconds=3)
    plain, with_header = api.get(STATUS), api.get(STATUS)
    assert plain.status_code == with_header.status_code == 429
    assert "Retry-After" not in plain.headers
    assert with_header.headers["Retry-After"] == "3"
    assert plain.json() == {"error": plain.json()["error"]}
    assert api.get(STATUS).status_code == 200  # the sequence is used up


def test_gateway_errors_are_html_and_500_503_are_json(emulator: DuneEmulator, api: Api) -> None:
    emulator.faults = FaultConfig(sequence=("502", "504", "500", "503"))
    responses = [api.get(STATUS) for _ in range(4)]
    assert [response.status_code for response in responses] == [502, 504, 500, 503]
    assert responses[0].headers["Content-Type"].startswith("text/html")
    assert "error" in responses[2].json() and "error" in responses[3].json()


def test_rejected_posts_start_nothing(emulator: DuneEmulator, api: Api) -> None:
    before = len(emulator.execution_ids()), len(emulator.pipeline_execution_ids())
    emulator.faults = FaultConfig(
        sequence=("429", "429_retry_after", "500", "502", "503", "504", "slow"), slow_seconds=0.01
    )
    codes = [api.post("/v1/pipelines/execute", json={"query_id": 1003}).status_code for _ in range(7)]
    assert codes == [429, 429, 500, 502, 503, 504, 200]
    assert len(emulator.pipeline_execution_ids()) == before[1] + 1
    assert len(emulator.execution_ids()) == before[0] + 1


def test_dropped_post_has_started_the_work(emulator: DuneEmulator, api: Api) -> None:
    started = len(emulator.execution_ids())
    emulator.faults = FaultConfig(sequence=("drop",))
    with pytest.raises(requests.ConnectionError):
        api.post("/v1/sql/execute", json={"sql": "SELECT 1"})
    assert len(emulator.execution_ids()) == started + 1
    [entry] = emulator.request_log.entries()
    assert entry.status is None and entry.fault == "drop"


def test_drop_before_work_starts_nothing(emulator: DuneEmulator, api: Api) -> None:
    started = len(emulator.execution_ids())
    emulator.faults = FaultConfig(sequence=("drop",), drop_before_work=True)
    with pytest.raises(requests.ConnectionError):
        api.post("/v1/sql/execute", json={"sql": "SELECT 1"})
    assert len(emulator.execution_ids()) == started


def test_malformed_json(emulator: DuneEmulator, api: Api) -> None:
    emulator.faults = FaultConfig(rate_malformed=1.0)
    response = api.get(STATUS)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_slow_response(emulator: DuneEmulator, api: Api) -> None:
    emulator.faults = FaultConfig(rate_slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert api.get(STATUS).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_faults_scoped_by_method_and_path(emulator: DuneEmulator, api: Api) -> None:
    emulator.faults = FaultConfig(
        rate_5xx=1.0, statuses_5xx=(503,), methods=("POST",), path_prefixes=("/api/v1/pipelines/execute",)
    )
    assert api.post("/v1/pipelines/execute", json={"query_id": 1003}).status_code == 503
    assert api.post("/v1/sql/execute", json={"sql": "SELECT 1"}).status_code == 200
    assert api.get(STATUS).status_code == 200


def test_several_rules_first_match_wins(emulator: DuneEmulator, api: Api) -> None:
    emulator.fault_rules = (
        FaultConfig(rate_429=1.0, methods=("POST",)),
        FaultConfig(rate_5xx=1.0, statuses_5xx=(500,)),
    )
    assert api.post("/v1/sql/execute", json={"sql": "SELECT 1"}).status_code == 429
    assert api.get(STATUS).status_code == 500
    emulator.clear_faults()
    assert api.get(STATUS).status_code == 200


def test_faults_changed_at_runtime_over_http(emulator: DuneEmulator, api: Api) -> None:
    admin = emulator.url + "/_emulator/faults"
    headers = {"X-Dune-Api-Key": emulator.api_key}
    assert requests.put(admin, json={"rate_429": 1.0}, timeout=5).status_code == 401
    response = requests.put(admin, json={"rules": [{"rate_429": 1.0, "seed": 1}]}, headers=headers, timeout=5)
    assert response.json()["rules"][0]["rate_429"] == 1.0
    assert emulator.faults.rate_429 == 1.0
    assert api.get(STATUS).status_code == 429
    requests.put(admin, json={}, headers=headers, timeout=5)
    assert api.get(STATUS).status_code == 200
    bad = requests.put(admin, json={"rate_429": 2}, headers=headers, timeout=5)
    assert bad.status_code == 400


def test_unauthenticated_requests_are_not_faulted(emulator: DuneEmulator) -> None:
    emulator.faults = FaultConfig(rate_5xx=1.0)
    assert requests.get(emulator.base_url + STATUS, timeout=5).status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_429": 0.7, "rate_5xx": 0.5},
        {"rate_drop": -0.1},
        {"sequence": ("418",)},
        {"statuses_5xx": (404,)},
    ],
)
def test_invalid_fault_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultConfig(**kwargs)  # type: ignore[arg-type]

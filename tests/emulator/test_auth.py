from __future__ import annotations

import requests

from airflow_provider_dune.emulator import DuneEmulator
from tests.emulator.conftest import Api

STATUS_PATH = "/v1/query/1001"


def test_missing_key_is_401(emulator: DuneEmulator) -> None:
    response = requests.get(emulator.base_url + STATUS_PATH, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid API Key"}


def test_wrong_key_is_401(emulator: DuneEmulator) -> None:
    response = requests.get(emulator.base_url + STATUS_PATH, headers={"X-Dune-Api-Key": "nope"}, timeout=5)
    assert response.status_code == 401


def test_key_in_url_is_rejected_and_logged(emulator: DuneEmulator) -> None:
    response = requests.get(emulator.base_url + STATUS_PATH, params={"api_key": emulator.api_key}, timeout=5)
    assert response.status_code == 401
    [entry] = emulator.request_log.entries()
    assert entry.key_in_url is True
    assert entry.status == 401


def test_header_key_works_and_url_key_is_still_flagged(emulator: DuneEmulator, api: Api) -> None:
    assert api.get(STATUS_PATH).status_code == 200
    assert api.get(STATUS_PATH, params={"api_key": "x"}).status_code == 200
    assert emulator.request_log.count(key_in_url=True) == 1
    assert emulator.request_log.count(key_in_url=False) == 1


def test_unknown_api_path_is_json_404(api: Api) -> None:
    response = api.get("/v1/does-not-exist")
    assert response.status_code == 404
    assert "error" in response.json()

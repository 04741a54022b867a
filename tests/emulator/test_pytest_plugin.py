from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from airflow_provider_dune.emulator import DuneEmulator


def test_fixture_yields_running_emulator_and_sets_connection(dune_emulator: DuneEmulator) -> None:
    conn = json.loads(os.environ["AIRFLOW_CONN_DUNE_DEFAULT"])
    assert conn == {"conn_type": "dune", "password": dune_emulator.api_key, "host": dune_emulator.base_url}
    assert conn["host"].endswith("/api")
    response = requests.get(
        conn["host"] + "/v1/query/1001", headers={"X-Dune-Api-Key": conn["password"]}, timeout=5
    )
    assert response.status_code == 200
    assert dune_emulator.execution_seconds == 0.0


@pytest.mark.dune_emulator(api_key="marker-key", execution_seconds=0.25)
def test_marker_configures_fixture(dune_emulator: DuneEmulator) -> None:
    assert dune_emulator.api_key == "marker-key"
    assert dune_emulator.execution_seconds == 0.25


def test_session_fixture(dune_emulator_session: DuneEmulator) -> None:
    assert json.loads(os.environ["AIRFLOW_CONN_DUNE_DEFAULT"])["host"] == dune_emulator_session.base_url


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, airflow_provider_dune.emulator.pytest_plugin; "
        "heavy = ('duckdb', 'yaml', 'airflow_provider_dune.emulator.server'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_emulator_stops_cleanly_and_frees_port() -> None:
    emulator = DuneEmulator(api_key="k", execution_seconds=0).start()
    url = emulator.base_url
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/v1/query/1001", timeout=2)
    with pytest.raises(RuntimeError):
        _ = emulator.url

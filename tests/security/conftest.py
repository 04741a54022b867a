"""What the attack table runs against: one emulator for the module, and scripted servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.hooks import maia as maia_hook


@pytest.fixture(scope="module")
def security_emulator() -> Iterator[DuneEmulator]:
    # Built with the defaults, as a user would start it: the rows test what those defaults allow.
    with DuneEmulator(execution_seconds=0.0) as emulator:
        yield emulator


class Attacker:
    """Everything a row needs: the emulator, an authenticated session on it, and fixtures."""

    def __init__(
        self,
        emulator: DuneEmulator,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        self.emulator = emulator
        self.monkeypatch = monkeypatch
        self.tmp_path = tmp_path
        self.caplog = caplog
        self.session = requests.Session()
        self.session.headers["X-Dune-Api-Key"] = emulator.api_key
        monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", emulator.airflow_conn_json())
        monkeypatch.setenv("AIRFLOW_CONN_MAIA_DEFAULT", emulator.maia_airflow_conn_json())

    def run_sql(self, sql: str) -> dict:
        """Run ``sql`` through ``POST /v1/sql/execute`` and wait; the final status body."""
        answer = self.session.post(self.emulator.base_url + "/v1/sql/execute", json={"sql": sql}, timeout=10)
        answer.raise_for_status()
        return self.emulator.wait_for_execution(answer.json()["execution_id"], timeout=60)

    def results(self, execution_id: str, **params: object) -> requests.Response:
        url = f"{self.emulator.base_url}/v1/execution/{execution_id}/results"
        return self.session.get(url, params=params, timeout=30)

    def dune_connection(self, host: str, **extra: object) -> None:
        self.monkeypatch.setenv(
            "AIRFLOW_CONN_DUNE_DEFAULT",
            json.dumps({"conn_type": "dune", "password": "attack-table-key", "host": host, "extra": extra}),
        )

    def maia_connection(self, base_url: str, token_url: str, **extra: object) -> None:
        self.monkeypatch.setenv(
            "AIRFLOW_CONN_MAIA_DEFAULT",
            json.dumps(
                {
                    "conn_type": "maia",
                    "login": "attack-client",
                    "password": "attack-client-secret",
                    "extra": {"base_url": base_url, "token_url": token_url, **extra},
                }
            ),
        )


@pytest.fixture
def attacker(security_emulator, monkeypatch, tmp_path, caplog) -> Iterator[Attacker]:
    maia_hook.tokens.clear()
    helper = Attacker(security_emulator, monkeypatch, tmp_path, caplog)
    yield helper
    helper.session.close()
    maia_hook.tokens.clear()

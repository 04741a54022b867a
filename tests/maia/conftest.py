"""Maia fixtures: a connection aimed at mocked URLs, and the local emulator's Maia side."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.hooks import maia as maia_hook
from airflow_provider_dune.runs.outcome import unknown_states

# Values no test or log could contain by chance: tests scan for them to prove they never leak.
CLIENT_ID = "maia-test-client"
CLIENT_SECRET = "maia-test-secret-5b2e8d17c4"
BASE_URL = "https://maia.test/dpc"
TOKEN_URL = "https://maia.test/oauth/dpc/token"
PROJECT = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
EXEC_ID = "1398aa31-af57-4a6a-9752-27c2e8556c3f"


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    # The token cache is process-wide on purpose (triggers share it); tests must not.
    maia_hook.tokens.clear()
    unknown_states.reset()
    yield
    maia_hook.tokens.clear()


@pytest.fixture
def maia_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MAIA_DEFAULT",
        json.dumps(
            {
                "conn_type": "maia",
                "login": CLIENT_ID,
                "password": CLIENT_SECRET,
                "extra": {"base_url": BASE_URL, "token_url": TOKEN_URL},
            }
        ),
    )
    return CLIENT_SECRET


@pytest.fixture(scope="session")
def maia_emulator_session() -> Iterator[DuneEmulator]:
    with DuneEmulator(execution_seconds=0.0, maia_execution_seconds=0.2) as emulator:
        yield emulator


@pytest.fixture
def maia_emulator(
    maia_emulator_session: DuneEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[DuneEmulator]:
    """The shared emulator, reset, with ``maia_default`` (and ``dune_default``) aimed at it."""
    emulator = maia_emulator_session
    emulator.clear_faults()
    emulator.request_log.clear()
    emulator.maia_execution_seconds = 0.2
    monkeypatch.setenv("AIRFLOW_CONN_MAIA_DEFAULT", emulator.maia_airflow_conn_json())
    monkeypatch.setenv("AIRFLOW_CONN_DUNE_DEFAULT", emulator.airflow_conn_json())
    yield emulator
    emulator.clear_faults()

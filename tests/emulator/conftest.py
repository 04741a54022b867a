"""One emulator shared by the emulator tests (fast), reset between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_dune.emulator import DuneEmulator

API_KEY = "emulator-test-key"


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[DuneEmulator]:
    with DuneEmulator(api_key=API_KEY, execution_seconds=0.0) as emulator:
        yield emulator


@pytest.fixture
def emulator(shared_emulator: DuneEmulator) -> Iterator[DuneEmulator]:
    shared_emulator.clear_faults()
    shared_emulator.request_log.clear()
    shared_emulator.execution_seconds = 0.0
    yield shared_emulator
    shared_emulator.clear_faults()
    shared_emulator.execution_seconds = 0.0


class Api:
    """requests against the emulator with the key in the header, paths relative to /api."""

    def __init__(self, emulator: DuneEmulator) -> None:
        self.base_url = emulator.base_url
        self.session = requests.Session()
        self.session.headers["X-Dune-Api-Key"] = emulator.api_key

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.post(self.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def patch(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.patch(self.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]

    def delete(self, path: str, **kwargs: object) -> requests.Response:
        return self.session.delete(self.base_url + path, timeout=10, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api(emulator: DuneEmulator) -> Iterator[Api]:
    client = Api(emulator)
    yield client
    client.session.close()

"""Pytest fixtures for the Dune API emulator (registered through the ``pytest11`` entry point).

``dune_emulator`` (per test) and ``dune_emulator_session`` (one per session) yield a started
:class:`~airflow_provider_dune.emulator.DuneEmulator` with ``AIRFLOW_CONN_DUNE_DEFAULT`` pointing
at it. Options for the per-test fixture come from a marker::

    @pytest.mark.dune_emulator(execution_seconds=0.2, faults=FaultConfig(rate_429=0.3, seed=1))
    def test_retries(dune_emulator): ...

The emulator itself (aiohttp, DuckDB) is imported inside the fixtures: this module is loaded in
every pytest run of anyone who installs the package.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from airflow_provider_dune.emulator.server import DuneEmulator

CONN_ENV = "AIRFLOW_CONN_DUNE_DEFAULT"
# Tests want finished executions quickly unless they ask otherwise.
FIXTURE_DEFAULTS: dict[str, Any] = {"execution_seconds": 0.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "dune_emulator(**kwargs): keyword arguments for the DuneEmulator of the dune_emulator fixture",
    )


@pytest.fixture
def dune_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuneEmulator]:
    from airflow_provider_dune.emulator.server import DuneEmulator

    marker = request.node.get_closest_marker("dune_emulator")
    options = {**FIXTURE_DEFAULTS, **(marker.kwargs if marker else {})}
    with DuneEmulator(**options) as emulator:
        monkeypatch.setenv(CONN_ENV, emulator.airflow_conn_json())
        yield emulator


@pytest.fixture(scope="session")
def dune_emulator_session() -> Iterator[DuneEmulator]:
    """Shared by the whole session: clear ``request_log`` and faults in tests that rely on them."""
    from airflow_provider_dune.emulator.server import DuneEmulator

    with DuneEmulator(**FIXTURE_DEFAULTS) as emulator, pytest.MonkeyPatch.context() as patch:
        patch.setenv(CONN_ENV, emulator.airflow_conn_json())
        yield emulator

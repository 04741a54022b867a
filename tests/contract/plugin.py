"""The session-wide contract gate: every exchange with any emulator in the test run, checked at
the end against Dune's specification.

Registered by ``tests/conftest.py``. While the session runs, every emulator in this process
hands its exchanges to :class:`TrafficRecorder` (through ``airflow_provider_dune.emulator.traffic``);
exchanges of the same shape (see ``validation.signature``) are kept once, so a suite that
polls a status ten thousand times validates it once. At the end each kept request of this
provider's client and each kept answer of the emulator is validated; any violation fails the
run, listed in the summary with the contract report (also ``make contract``).
"""

from __future__ import annotations

import json
import queue
import threading
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from airflow_provider_dune.emulator import traffic
from airflow_provider_dune.emulator.traffic import Exchange
from tests.contract.report import contract_report
from tests.contract.validation import ContractChecker, Violation, is_client_request, signature

# Result pages can be megabytes; every row has the same shape, so a few are enough to check.
_BIG_BODY = 256 * 1024
_KEPT_ROWS = 50


def _trimmed(exchange: Exchange) -> Exchange:
    if len(exchange.response_body) <= _BIG_BODY or "json" not in exchange.response_content_type:
        return exchange
    try:
        body = json.loads(exchange.response_body)
        body["result"]["rows"] = body["result"]["rows"][:_KEPT_ROWS]
    except (ValueError, KeyError, TypeError):
        return exchange
    return replace(exchange, response_body=json.dumps(body).encode())


@dataclass
class TrafficRecorder:
    """Receives exchanges on the emulators' threads; keeps one of each shape on its own thread."""

    checker: ContractChecker = field(default_factory=ContractChecker)
    kept: dict[tuple[Any, ...], Exchange] = field(default_factory=dict)
    client_calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    answers: Counter[tuple[str, str]] = field(default_factory=Counter)
    _inbox: queue.SimpleQueue[Exchange | None] = field(default_factory=queue.SimpleQueue)
    _worker: threading.Thread | None = None

    def __call__(self, exchange: Exchange) -> None:
        self._inbox.put(exchange)

    def start(self) -> None:
        self._worker = threading.Thread(target=self._drain, name="contract-recorder", daemon=True)
        self._worker.start()

    def stop(self) -> None:
        self._inbox.put(None)
        if self._worker is not None:
            self._worker.join()

    def _drain(self) -> None:
        while (exchange := self._inbox.get()) is not None:
            self.record(exchange)

    def record(self, exchange: Exchange) -> None:
        template = self.checker.operation_of(exchange.method, exchange.path)
        if template is not None:
            self.answers[(exchange.method, template)] += 1
            if is_client_request(exchange):
                self.client_calls[(exchange.method, template)] += 1
        exchange = _trimmed(exchange)
        self.kept.setdefault(signature(exchange, template), exchange)

    def violations(self) -> list[Violation]:
        found: dict[str, Violation] = {}
        for exchange in self.kept.values():
            checks = self.checker.check_answer(exchange)
            if is_client_request(exchange):
                checks += self.checker.check_request(exchange)
            for violation in checks:
                found.setdefault(str(violation), violation)
        return list(found.values())


_RECORDER = pytest.StashKey[TrafficRecorder]()
_OBSERVING = pytest.StashKey[Any]()
_VIOLATIONS = pytest.StashKey[list[Violation]]()


def pytest_configure(config: pytest.Config) -> None:
    recorder = TrafficRecorder()
    recorder.start()
    observing = traffic.observing(recorder)
    observing.__enter__()
    config.stash[_RECORDER] = recorder
    config.stash[_OBSERVING] = observing


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    recorder = config.stash.get(_RECORDER, None)
    if recorder is None:
        return
    config.stash[_OBSERVING].__exit__(None, None, None)
    recorder.stop()
    violations = recorder.violations()
    config.stash[_VIOLATIONS] = violations
    if violations and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorder = config.stash.get(_RECORDER, None)
    if recorder is None or not recorder.kept:
        return
    violations = config.stash.get(_VIOLATIONS, [])
    terminalreporter.section("Dune API contract")
    terminalreporter.write_line(contract_report(recorder, violations))
    terminalreporter.write_line(
        f"{sum(recorder.answers.values())} exchanges with Dune's API; {len(recorder.kept)} distinct "
        "shapes validated against tests/contract/dune-openapi.json."
    )
    if violations:
        terminalreporter.write_line(
            f"{len(violations)} exchange(s) break Dune's contract (tests/contract/spec.py):", red=True
        )
        for violation in violations:
            terminalreporter.write_line(f"  {violation}", red=True)

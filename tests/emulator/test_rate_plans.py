"""Dune's per-plan rate limits: sliding windows per key and endpoint class, 429 past them."""

from __future__ import annotations

import pytest

from airflow_provider_dune.emulator import DuneEmulator
from airflow_provider_dune.emulator.__main__ import build_parser
from airflow_provider_dune.emulator.rate_limits import (
    HIGH,
    LOW,
    PLANS,
    RateBudget,
    RatePlan,
    endpoint_class,
    resolve_plan,
)
from tests.emulator.conftest import Api


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_documented_plans() -> None:
    assert {name: (plan.low_limit, plan.high_limit) for name, plan in PLANS.items()} == {
        "free": (15, 40),
        "plus": (70, 200),
        "enterprise": (350, 1000),
    }
    assert resolve_plan("plus") is PLANS["plus"]
    custom = RatePlan("tiny", 1, 2, window_seconds=5)
    assert resolve_plan(custom) is custom
    with pytest.raises(ValueError, match="unknown rate plan 'gold'"):
        resolve_plan("gold")


def test_reads_are_high_limit_and_everything_else_low() -> None:
    assert endpoint_class("GET", "/api/v1/execution/E/status") == HIGH
    assert endpoint_class("POST", "/api/v1/usage") == HIGH
    for method, path in (
        ("POST", "/api/v1/query/1/execute"),
        ("POST", "/api/v1/execution/E/cancel"),
        ("DELETE", "/api/v1/materialized-views/dune.t.result_v"),
        ("PATCH", "/api/v1/query/1"),
    ):
        assert endpoint_class(method, path) == LOW


def test_sliding_window_per_key_and_class() -> None:
    clock = FakeClock()
    budget = RateBudget(RatePlan("t", low_limit=2, high_limit=3, window_seconds=60), clock)
    assert budget.admit("k", LOW) is None
    clock.now += 5
    assert budget.admit("k", LOW) is None
    clock.now += 5
    # The third low-limit request waits for the first to leave the window: 50 s.
    assert budget.admit("k", LOW) == pytest.approx(50)
    # The high-limit budget and other keys are separate.
    assert budget.admit("k", HIGH) is None
    assert budget.admit("other", LOW) is None
    clock.now += 50
    assert budget.admit("k", LOW) is None  # the first request left the window
    assert budget.admit("k", LOW) == pytest.approx(5)  # the second (at +5 s) is still in it


def test_refused_requests_do_not_use_the_budget() -> None:
    clock = FakeClock()
    budget = RateBudget(RatePlan("t", low_limit=1, high_limit=1, window_seconds=60), clock)
    assert budget.admit("k", LOW) is None
    for _ in range(100):
        assert budget.admit("k", LOW) is not None
    clock.now += 60
    assert budget.admit("k", LOW) is None


def test_free_plan_answers_429_past_its_budget_and_logs_it() -> None:
    with DuneEmulator(api_key="k", execution_seconds=0, plan="free") as dune:
        api = Api(dune)
        submits = [api.post("/v1/sql/execute", json={"sql": "SELECT 1"}) for _ in range(16)]
        assert [response.status_code for response in submits] == [200] * 15 + [429]
        assert "Retry-After" not in submits[-1].headers  # Dune documents no rate-limit headers
        assert len(dune.execution_ids()) == 15  # the refused request started nothing
        # Reads have their own budget of 40 a minute.
        reads = [api.get("/v1/query/1003") for _ in range(41)]
        assert [response.status_code for response in reads] == [200] * 40 + [429]
        log = dune.request_log
        assert log.count(rate_limited=True) == 2
        assert log.count(endpoint_class=LOW) == 16 and log.count(endpoint_class=HIGH) == 41
        assert log.count(status=429, rate_limited=True, method="POST") == 1


def test_a_plan_can_send_retry_after() -> None:
    plan = RatePlan("strict", low_limit=1, high_limit=1, retry_after=True)
    with DuneEmulator(api_key="k", execution_seconds=0, plan=plan) as dune:
        api = Api(dune)
        api.get("/v1/query/1003")
        refused = api.get("/v1/query/1003")
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 61


def test_plan_from_the_command_line_and_the_marker(dune_emulator: DuneEmulator) -> None:
    args = build_parser().parse_args(
        ["--plan", "plus", "--credit-limit", "100", "--node-vocabulary", "upper"]
    )
    assert (args.plan, args.credit_limit, args.node_vocabulary) == ("plus", 100.0, "upper")
    assert dune_emulator.plan is None  # no marker: no limits


@pytest.mark.dune_emulator(plan="enterprise")
def test_plan_through_the_pytest_marker(dune_emulator: DuneEmulator) -> None:
    assert dune_emulator.plan is PLANS["enterprise"]

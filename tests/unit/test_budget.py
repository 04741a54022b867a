"""The per-key request budget: spacing, classes, urgency, adaptation (a fake clock, no HTTP)."""

from __future__ import annotations

import pytest

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.hooks.budget import (
    BudgetSettings,
    RequestBudget,
    RequestClass,
    budget_for,
    forget_budgets,
)

HIGH, LOW = RequestClass.HIGH, RequestClass.LOW


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def budget(high=60.0, low=None, clock=None):
    return RequestBudget(BudgetSettings(low_per_minute=low, high_per_minute=high), clock=clock or Clock())


@pytest.mark.parametrize(
    ("extras", "low", "high"),
    [
        ({"plan": "plus"}, 56.0, 160.0),  # Dune's 70/200, with a fifth left to other clients
        ({"plan": "Free", "rate_limit_share": 1}, 15.0, 40.0),
        ({"plan": "enterprise", "rate_limit_processes": 2}, 140.0, 400.0),
        ({"rate_limit_per_minute": 100, "rate_limit_share": 0.5}, None, 50.0),
        ({"plan": "plus", "rate_limit_per_minute": "300"}, 56.0, 240.0),
        ({}, None, None),
    ],
)
def test_settings_come_from_the_connection(extras, low, high):
    settings = BudgetSettings.from_extras(extras, "dune_default")
    assert (settings.low_per_minute, settings.high_per_minute) == (
        pytest.approx(low) if low else None,
        pytest.approx(high) if high else None,
    )


@pytest.mark.parametrize(
    ("extras", "match"),
    [
        ({"plan": "gold"}, "plan='gold'; use one of free, plus, enterprise"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute=0; it must be a positive number"),
        ({"rate_limit_per_minute": "nan"}, "positive number"),
        ({"rate_limit_per_minute": "inf"}, "positive number"),
        ({"rate_limit_share": 1.5, "plan": "plus"}, "at most 1"),
        ({"rate_limit_processes": -1, "plan": "plus"}, "positive number"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(extras, match):
    with pytest.raises(DuneConfigurationError, match=match):
        BudgetSettings.from_extras(extras, "dune_default")


def test_requests_are_spaced_evenly_in_the_order_they_ask():
    b = budget(high=60.0)  # one a second
    assert [b.reserve(HIGH) for _ in range(6)] == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]


def test_spacing_follows_the_clock():
    clock = Clock()
    b = budget(high=30.0, clock=clock)  # one every 2 s
    waits = []
    for _ in range(5):
        waits.append(b.reserve(HIGH))
        clock.now += 2.0  # each caller comes back after its poll interval
    assert waits == [0.0] * 5  # never more than the budget: nobody waits


def test_classes_are_separate_and_a_cancel_never_waits():
    b = budget(high=6.0, low=6.0)
    for _ in range(20):
        b.reserve(HIGH)  # polls queue up for minutes
    assert b.reserve(LOW) == 0.0  # a submission does not wait behind polls
    for _ in range(20):
        b.reserve(LOW)
    assert b.reserve(LOW, urgent=True) == 0.0  # a cancel goes now...
    assert b.reserve(LOW) > 20 * 10 - 1  # ...and still counts against the class


def test_a_429_halves_the_rate_once_per_storm_and_answers_recover_it():
    clock = Clock()
    b = budget(high=120.0, clock=clock)
    for _ in range(10):
        b.throttled(HIGH)  # ten polls in flight all met the limit: one decrease
    assert b.per_minute(HIGH) == pytest.approx(60.0)
    clock.now += 5
    b.throttled(HIGH)
    assert b.per_minute(HIGH) == pytest.approx(30.0)
    answers = 0
    while b.per_minute(HIGH) < 120.0:
        b.answered(HIGH)
        answers += 1
    assert 80 <= answers <= 100  # slowly: about 90 answers to get back to the ceiling
    assert b.per_minute(HIGH) == 120.0  # never above it


def test_the_rate_never_falls_below_a_twentieth_of_the_ceiling():
    clock = Clock()
    b = budget(high=100.0, clock=clock)
    for _ in range(20):
        b.throttled(HIGH)
        clock.now += 120
    assert b.per_minute(HIGH) == pytest.approx(5.0)


def test_without_a_ceiling_the_budget_is_open_until_dune_says_429():
    clock = Clock()
    b = budget(high=None, clock=clock)
    assert all(b.reserve(HIGH) == 0.0 for _ in range(100))  # 100 in the last minute
    b.throttled(HIGH)
    assert b.per_minute(HIGH) == pytest.approx(50.0)  # half of what met the limit
    quiet = budget(high=None, clock=clock)
    quiet.reserve(HIGH)
    quiet.throttled(HIGH)
    assert quiet.per_minute(HIGH) == 40.0  # never below Dune's Free plan (40 reads a minute)
    assert [b.reserve(HIGH) > 0 for _ in range(3)] == [False, False, True]  # now spaced
    clock.now += 120
    before = b.per_minute(HIGH)
    for _ in range(50):
        b.answered(HIGH)
    assert before < b.per_minute(HIGH) < before + 2  # probes upwards, slowly


def test_one_budget_per_key_and_base_url_keyed_by_a_digest():
    forget_budgets()
    try:
        settings = BudgetSettings(high_per_minute=10.0)
        first = budget_for("https://api.dune.com/api", "key-A", settings)
        assert budget_for("https://api.dune.com/api", "key-A", BudgetSettings()) is first
        assert budget_for("https://api.dune.com/api", "key-B", settings) is not first
        assert budget_for("http://127.0.0.1:8089/api", "key-A", settings) is not first
        from airflow_provider_dune.hooks import budget as module

        assert "key-A" not in repr(list(module._budgets))
    finally:
        forget_budgets()

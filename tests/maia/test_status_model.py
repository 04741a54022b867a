"""Every documented Maia status, and the ones Maia has not documented yet."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_dune.models.maia import MaiaPipelineStatus, parse_problem
from airflow_provider_dune.runs.outcome import RunOutcome

RUNNING, SUCCEEDED, FAILED = RunOutcome.RUNNING, RunOutcome.SUCCEEDED, RunOutcome.FAILED


def status(value: str) -> MaiaPipelineStatus:
    return MaiaPipelineStatus("proj", "exec-1", value)


@pytest.mark.parametrize(
    ("value", "outcome", "message"),
    [
        ("SUCCESS", SUCCEEDED, "succeeded."),
        ("SKIPPED", SUCCEEDED, "was skipped (SKIPPED): nothing ran; counted as success."),
        ("FAILED", FAILED, "failed."),
        ("CANCELLED", FAILED, "was cancelled."),
        ("FORBIDDEN", FAILED, "was refused (FORBIDDEN)"),
        ("RUNNING", RUNNING, "is RUNNING."),
        ("CANCELLING", RUNNING, "is CANCELLING."),
        ("UNKNOWN", RUNNING, "is UNKNOWN."),
        ("success", SUCCEEDED, "succeeded."),
    ],
)
def test_every_documented_status(value, outcome, message):
    assert status(value).outcome() is outcome
    assert status(value).message().startswith("Maia pipeline execution exec-1 (project proj) ")
    assert message in status(value).message()


def test_skipped_fails_only_when_asked():
    assert status("SKIPPED").outcome(fail_on_skipped=True) is FAILED
    assert "fail_on_skipped=True" in status("SKIPPED").message(fail_on_skipped=True)


def test_unknown_and_new_states_wait_and_are_warned_once(caplog):
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            assert status("UNKNOWN").outcome() is RUNNING
            assert status("QUEUED_FOR_AGENT").outcome() is RUNNING
            assert status("RUNNING").outcome() is RUNNING
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "'UNKNOWN'" in warnings[0] and "'QUEUED_FOR_AGENT'" in warnings[1]


def test_problem_bodies_of_every_shape():
    body = b'{"type":"about:blank","title":"Not Found","status":404,"detail":"Pipeline Execution not Found"}'
    assert parse_problem(body).title == "Not Found"
    assert parse_problem(body).detail == "Pipeline Execution not Found"
    assert parse_problem(b'{"title":"Bad","violations":["a: b"]}').violations == ("a: b",)
    assert parse_problem(b'{"error":"invalid_client","error_description":"no"}').title == "invalid_client"
    assert "HTML page" in parse_problem(b"<html>504</html>", "text/html").title
    assert parse_problem(b"").title == "empty response body"
    assert parse_problem(b"plain words").title == "plain words"


def test_failure_details_come_from_the_steps_and_the_execution_message():
    from airflow_provider_dune.models.maia import MaiaExecutionDetails, parse_execution_message, parse_steps

    steps = parse_steps(
        {
            "results": [
                {"id": "s1", "name": "Start", "result": {"status": "SUCCESS", "message": "Success"}},
                {"id": "s2", "name": "Load\norders", "result": {"status": "FAILED", "message": "no table"}},
            ]
        }
    )
    assert [(s.name, s.failed) for s in steps] == [("Start", False), ("Load\\norders", True)]
    # The reference lists the fields at the top level; answers seen in the wild wrap them.
    assert parse_execution_message({"message": "m", "pipelineName": "p"}) == ("m", "p")
    assert parse_execution_message({"result": {"message": "m", "pipelineName": "p"}}) == ("m", "p")
    details = MaiaExecutionDetails("Orchestration failed", "p", tuple(s for s in steps if s.failed))
    assert details.describe().splitlines() == [
        "  step 'Load\\\\norders' FAILED: no table",
        "  Maia says: Orchestration failed",
    ]

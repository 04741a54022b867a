"""What a task cost, and a budget that stops a pipeline: real HTTP against the emulator.

The emulator bills 10 credits an execution on the medium tier and 20 on large, reported as
``execution_cost_credits`` on the execution's status once it has finished, as Dune's spec says.
"""

from __future__ import annotations

from unittest import mock

import pytest

from airflow_provider_dune.emulator.executions import CREDITS_PER_TIER
from airflow_provider_dune.hooks.dune import DuneHook
from airflow_provider_dune.operators.base import RemoteRunFailed
from airflow_provider_dune.operators.dune import DuneRunPipelineOperator, DuneRunQueryOperator
from tests.helpers import FakeTI

MEDIUM = CREDITS_PER_TIER["medium"]


def chain(length: int) -> list[dict]:
    return [
        {"id": i, "dependencies": [i - 1] if i > 1 else [], "query_execution": {"query_id": 1003}}
        for i in range(1, length + 1)
    ]


def logged(log: mock.MagicMock) -> str:
    return "\n".join(c.args[0] % c.args[1:] for c in log.info.call_args_list)


def test_a_pipeline_reports_each_nodes_credits_and_the_total(dune_emulator):
    ti = FakeTI()
    op = DuneRunPipelineOperator(task_id="t", query_id=1001, poll_interval=0.05)
    with mock.patch.object(type(op), "log", mock.MagicMock()) as log:
        op.execute({"ti": ti})
    nodes = ti.pushed["node_executions"]
    assert [n["credits"] for n in nodes] == [MEDIUM, MEDIUM]
    assert ti.pushed["credits_used"] == 2 * MEDIUM
    assert f"{2 * MEDIUM} credits (node 1: {MEDIUM}, node 2: {MEDIUM})" in logged(log)


def test_a_query_reports_its_credits(dune_emulator):
    ti = FakeTI()
    DuneRunQueryOperator(task_id="t", query_id=1003, performance="large", poll_interval=0.05).execute(
        {"ti": ti}
    )
    assert ti.pushed["credits_used"] == CREDITS_PER_TIER["large"]
    assert ti.pushed["execution"]["execution_cost_credits"] == CREDITS_PER_TIER["large"]


@pytest.mark.dune_emulator(execution_seconds=0.4)
def test_a_pipeline_past_max_credits_is_stopped_and_fails(dune_emulator):
    ti = FakeTI()
    op = DuneRunPipelineOperator(task_id="t", nodes=chain(4), poll_interval=0.05, max_credits=1.5 * MEDIUM)
    with pytest.raises(RemoteRunFailed, match=r"more than max_credits=15\. Cancelled"):
        op.execute({"ti": ti})
    status = DuneHook().get_pipeline_status(ti.pushed["pipeline_execution_id"])
    # Nodes 1 and 2 ran (the second one passed the budget); the last node never started.
    assert [n.execution_id is not None for n in status.nodes][:2] == [True, True]
    assert status.nodes[3].execution_id is None
    assert ti.pushed["credits_used"] >= 2 * MEDIUM
    # The budget was watched economically: one status read per finished node, not per poll.
    reads = dune_emulator.request_log.count(method="GET", path_prefix="/api/v1/execution/")
    assert reads <= len(status.nodes)


def test_a_deferred_pipelines_cost_is_read_by_the_resuming_task_not_the_trigger(dune_emulator):
    """The trigger fires without reading the cost (its reads queue behind every other wait's
    polls); the task resuming from the event reads it, and the XCom and log say it all the same."""
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    op = DuneRunPipelineOperator(
        task_id="t", query_id=1001, poll_interval=0.05, deferrable=True, defer_after=0
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})

    async def fire() -> dict:
        return (await anext(deferred.value.trigger.run())).payload

    event = asyncio.run(fire())
    cost_path = "/api/v1/execution/"
    assert event["status"] == "success" and event["credits_used"] is None
    assert dune_emulator.request_log.count(method="GET", path_prefix=cost_path) == 0
    assert "credits" not in event["message"]

    ti = FakeTI()
    with mock.patch.object(type(op), "log", mock.MagicMock()) as log:
        op.execute_complete({"ti": ti}, event)
    assert [n["credits"] for n in ti.pushed["node_executions"]] == [MEDIUM, MEDIUM]
    assert ti.pushed["credits_used"] == 2 * MEDIUM
    assert f"{2 * MEDIUM} credits (node 1: {MEDIUM}, node 2: {MEDIUM})" in logged(log)
    assert dune_emulator.request_log.count(method="GET", path_prefix=cost_path) == 2


def test_a_deferred_pipeline_with_max_credits_is_priced_by_the_trigger(dune_emulator):
    """With a budget the trigger must price nodes as they finish; the resuming task reads nothing more."""
    import asyncio

    from airflow.providers.common.compat.sdk import TaskDeferred

    op = DuneRunPipelineOperator(
        task_id="t", query_id=1001, poll_interval=0.05, deferrable=True, defer_after=0, max_credits=100
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({"ti": FakeTI()})

    async def fire() -> dict:
        return (await anext(deferred.value.trigger.run())).payload

    event = asyncio.run(fire())
    assert event["credits_used"] == 2 * MEDIUM
    reads = dune_emulator.request_log.count(method="GET")
    ti = FakeTI()
    op.execute_complete({"ti": ti}, event)
    assert ti.pushed["credits_used"] == 2 * MEDIUM
    assert dune_emulator.request_log.count(method="GET") == reads

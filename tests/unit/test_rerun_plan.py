"""Which nodes a retry submits after a failed pipeline: the failed and not-run ones only."""

from __future__ import annotations

from airflow_provider_dune.models.dune import parse_query_pipeline
from airflow_provider_dune.models.rerun import plan_rerun, query_pipeline_nodes

VIEW = "dune.team.result_v"
NODES = [
    {"id": 1, "dependencies": [], "materialized_view_refresh": {"name": VIEW}},
    {"id": 2, "dependencies": [1], "query_execution": {"query_id": 20}},
    {"id": 3, "dependencies": [1, 2], "query_execution": {"query_id": 30}},
    {"id": 4, "dependencies": [1], "query_execution": {"query_id": 40}},
]


def ran(node_id, status, query_id=None, name=None, error=None):
    return {
        "node_id": node_id,
        "type": "materialized_view" if name else "query",
        "query_id": query_id,
        "name": name,
        "execution_id": f"E{node_id}",
        "status": status,
        "error": error,
    }


def test_the_middle_node_failed_so_it_and_what_follows_rerun_without_the_done_ones():
    plan = plan_rerun(
        NODES,
        [
            ran(1, "completed", name=VIEW),
            ran(2, "failed", 20, error="boom"),
            ran(3, "skipped", 30),
            ran(4, "completed", 40),
        ],
    )
    assert plan is not None
    assert plan.nodes == [
        {"id": 2, "dependencies": [], "query_execution": {"query_id": 20}},
        {"id": 3, "dependencies": [2], "query_execution": {"query_id": 30}},
    ]
    assert plan.skipped == [
        f"node 1 (view {VIEW}, execution E1)",
        "node 4 (query 40, execution E4)",
    ]


def test_a_node_missing_from_the_status_never_ran_and_reruns():
    plan = plan_rerun(NODES, [ran(1, "completed", name=VIEW), ran(2, "failed", 20)])
    assert plan is not None and [n["id"] for n in plan.nodes] == [2, 3, 4]


def test_nothing_to_skip_or_nothing_to_match_means_the_whole_pipeline():
    assert plan_rerun(NODES, [ran(1, "failed", name=VIEW)]) is None
    everything_done = [ran(1, "completed", name=VIEW), *(ran(i, "completed", i * 10) for i in (2, 3, 4))]
    assert plan_rerun(NODES, everything_done) is None
    # The earlier run's node 2 ran another query: the ids cannot be trusted.
    assert plan_rerun(NODES, [ran(1, "completed", name=VIEW), ran(2, "failed", 99)]) is None


def test_a_querys_pipeline_becomes_explicit_nodes_with_the_tasks_parameters():
    pipeline = parse_query_pipeline(
        30,
        {
            "pipeline": {
                "nodes": [
                    {"id": 1, "materialized_view_refresh": {"name": VIEW, "performance": "large"}},
                    {"id": 2, "dependencies": [1], "query_execution": {"query_id": 30}},
                ]
            }
        },
    )
    nodes = query_pipeline_nodes(pipeline, query_parameters={"x": 1}, performance="medium")
    assert nodes == [
        {"id": 1, "dependencies": [], "materialized_view_refresh": {"performance": "large", "name": VIEW}},
        {
            "id": 2,
            "dependencies": [1],
            "query_execution": {"performance": "medium", "query_id": 30, "query_parameters": {"x": 1}},
        },
    ]

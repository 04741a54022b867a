from __future__ import annotations

import pytest

from airflow_provider_dune.exceptions import DuneConfigurationError
from airflow_provider_dune.models.pipeline_spec import build_pipeline_request, validate_nodes


def q(node_id, query_id=10, deps=(), **extra):
    return {"id": node_id, "dependencies": list(deps), "query_execution": {"query_id": query_id, **extra}}


def mv(node_id, name="dune.team.result_v", deps=()):
    return {"id": node_id, "dependencies": list(deps), "materialized_view_refresh": {"name": name}}


def test_query_id_form():
    body = build_pipeline_request(query_id=123, performance="large", query_parameters={"d": "2024-01-01"})
    assert body == {"query_id": 123, "performance": "large", "query_parameters": {"d": "2024-01-01"}}


def test_query_id_form_accepts_rendered_digit_string():
    assert build_pipeline_request(query_id="42")["query_id"] == 42


def test_nodes_form_defaults_each_node_to_the_operator_tier():
    body = build_pipeline_request(nodes=[mv(1), q(2, deps=[1], performance="medium")], performance="large")
    nodes = body["pipeline"]["nodes"]
    assert nodes[0]["materialized_view_refresh"] == {"name": "dune.team.result_v", "performance": "large"}
    assert nodes[1]["query_execution"] == {"query_id": 10, "performance": "medium"}
    assert nodes[1]["dependencies"] == [1]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "exactly one of query_id"),
        ({"query_id": 1, "nodes": [q(1)]}, "exactly one of query_id"),
        ({"query_id": 1, "performance": "xl"}, "performance is 'xl'"),
        ({"query_id": "abc"}, "query_id must be an integer"),
        ({"query_id": -4}, "positive integer"),
        ({"query_id": True}, "query_id must be an integer"),
        ({"query_id": 1, "query_parameters": ["a"]}, "query_parameters must be a mapping"),
        ({"nodes": [q(1)], "query_parameters": {"a": 1}}, "inside each node's query_execution"),
        ({"nodes": []}, "at least one node"),
        ({"nodes": "not a list"}, "nodes must be a list"),
        ({"nodes": [q(1), q(1)]}, "used more than once: [1]"),
        ({"nodes": [q(1, deps=[7])]}, "node 1 depends on [7], which is not a node"),
        ({"nodes": [q(1, deps=[1])]}, "node 1 depends on itself"),
        ({"nodes": [q(1, deps=[3]), q(2, deps=[1]), q(3, deps=[2])]}, "cycle: 1 -> 3 -> 2 -> 1"),
        ({"nodes": [{"id": 1, "dependencies": []}]}, "node 1 has neither"),
        (
            {
                "nodes": [
                    {"id": 1, "query_execution": {"query_id": 1}, "materialized_view_refresh": {"name": "x"}}
                ]
            },
            "node 1 has query_execution and materialized_view_refresh",
        ),
        ({"nodes": [{"dependencies": [], "query_execution": {"query_id": 1}}]}, "nodes[0] has no 'id'"),
        ({"nodes": [{"id": "x", "query_execution": {"query_id": 1}}]}, "nodes[0].id must be an integer"),
        ({"nodes": [q(1, performance="huge")]}, "node 1.query_execution.performance is 'huge'"),
        ({"nodes": [{"id": 1, "query_execution": {}}]}, "node 1.query_execution needs a 'query_id'"),
        ({"nodes": [{"id": 1, "materialized_view_refresh": {}}]}, "needs a 'name'"),
        ({"nodes": [{"id": 1, "query_execution": {"query_id": 1, "sql": "x"}}]}, "unknown keys ['sql']"),
        ({"nodes": [{"id": 1, "kind": "q", "query_execution": {"query_id": 1}}]}, "unknown keys ['kind']"),
        ({"nodes": [{"id": 1, "dependencies": 2, "query_execution": {"query_id": 1}}]}, "must be a list"),
        ({"nodes": [q(2), q(1, deps=[2, 2])]}, "lists a dependency twice"),
        ({"nodes": [5]}, "nodes[0] must be a mapping"),
    ],
)
def test_bad_input_is_named(kwargs, expected):
    with pytest.raises(DuneConfigurationError) as err:
        build_pipeline_request(**kwargs)
    assert expected in str(err.value)


def test_diamond_is_not_a_cycle():
    nodes = validate_nodes([mv(1), q(2, deps=[1]), q(3, deps=[1]), q(4, deps=[2, 3])])
    assert [n["id"] for n in nodes] == [1, 2, 3, 4]

"""The copy of Dune's specification, its corrections, and the checker built on them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_provider_dune.emulator.traffic import Exchange
from tests.conftest import REPO_ROOT
from tests.contract.spec import SPEC_CORRECTIONS, SPEC_PATH, contract, raw_spec
from tests.contract.validation import ContractChecker

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "dune-openapi.json"


@pytest.mark.skipif(not REFERENCE.exists(), reason="no ../shared/reference beside this checkout")
def test_the_copy_is_the_reference() -> None:
    assert SPEC_PATH.read_bytes() == REFERENCE.read_bytes()


def test_every_correction_still_finds_the_error_it_corrects() -> None:
    # Each asserts its error is in the document: a fixed upstream spec names the stale one.
    spec = raw_spec()
    for correct in SPEC_CORRECTIONS:
        correct(spec)
    with pytest.raises(AssertionError):
        SPEC_CORRECTIONS[0](spec)


@pytest.fixture(scope="module")
def checker() -> ContractChecker:
    return ContractChecker()


def exchange(method: str, path: str, body: object = None, query: str = "", **answer: object) -> Exchange:
    return Exchange(
        method=method,
        path=path,
        query_string=query,
        request_headers={"Content-Type": "application/json", "User-Agent": "airflow-provider-dune/0.1.0"},
        request_body=json.dumps(body).encode() if body is not None else b"",
        status=int(answer.get("status", 200)),  # type: ignore[call-overload]
        response_content_type=str(answer.get("content_type", "application/json")),
        response_body=json.dumps(answer.get("json", {})).encode(),
        fault=None,
        key_supplied=True,
    )


def test_a_valid_request_and_answer_pass(checker: ContractChecker) -> None:
    sent = exchange(
        "POST", "/api/v1/sql/execute", {"sql": "SELECT 1", "performance": "large"}, json={"execution_id": "E"}
    )
    assert checker.check_request(sent) == [] and checker.check_answer(sent) == []


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (
            exchange("POST", "/api/v1/sql/execute", {"sql": "SELECT 1", "performance": "small"}),
            "InvalidRequestBody",
        ),
        (
            exchange("POST", "/api/v1/sql/execute", {"sql": "SELECT 1", "perfomance": "large"}),
            "InvalidRequestBody",
        ),
        (
            exchange("GET", "/api/v1/execution/E/results", query="limt=5"),
            "undeclared query parameters ['limt']",
        ),
        (
            exchange("GET", "/api/v1/execution/E/results", query="limit=five"),
            "cast value to integer type: five",
        ),
        (exchange("GET", "/api/v1/executions/E/results"), "not an operation of Dune's API"),
        (
            exchange("POST", "/api/v1/materialized-views", {"name": "result_v", "query_id": "7"}),
            "InvalidRequestBody",
        ),
    ],
)
def test_a_request_off_the_contract_is_a_violation(
    checker: ContractChecker, sent: Exchange, expected: str
) -> None:
    assert expected in " ".join(str(v) for v in checker.check_request(sent))


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"json": {"execution_id": "E", "name": "dune.t.result_v", "performance": "medium"}}, "InvalidData"),
        ({"json": {"execution_id": 7}}, "InvalidData"),
        ({"status": 418, "json": {"error": "teapot"}}, "status not documented"),
        ({"status": 404, "json": {"message": "not found"}}, "InvalidData"),
    ],
)
def test_an_answer_off_the_contract_is_a_violation(
    checker: ContractChecker, answer: dict, expected: str
) -> None:
    sent = exchange("POST", "/api/v1/materialized-views/dune.t.result_v/refresh", {}, **answer)
    assert expected in " ".join(str(v) for v in checker.check_answer(sent))


def test_row_values_may_be_any_json(checker: ContractChecker) -> None:
    rows = [{"n": 1, "s": "x", "f": 1.5, "b": True, "none": None, "list": [1], "map": {"a": 1}}]
    sent = exchange(
        "GET", "/api/v1/execution/E/results", json={"execution_id": "E", "result": {"rows": rows}}
    )
    assert checker.check_answer(sent) == []


def test_an_unknown_path_may_only_be_refused(checker: ContractChecker) -> None:
    assert checker.check_answer(exchange("GET", "/api/v1/nope", status=404)) == []
    assert checker.check_answer(exchange("GET", "/api/v1/nope", status=200))


def test_the_strict_contract_closes_declared_objects_only() -> None:
    schemas = contract()["components"]["schemas"]
    assert schemas["matviews.MatviewsGetResponse"]["additionalProperties"] is False
    # query_parameters is a free-form map and stays open.
    node = schemas["models.PipelineQueryExecutionNode"]["properties"]["query_parameters"]
    assert "additionalProperties" not in node


def test_a_bad_request_fails_the_whole_run(tmp_path: Path) -> None:
    """The session gate, run for real: a passing test whose client sends an undocumented tier."""
    test_file = tmp_path / "test_sends_a_bad_request.py"
    test_file.write_text(
        textwrap.dedent(
            """
            from airflow_provider_dune.hooks.dune import DuneHook
            from airflow_provider_dune.models import pipeline_spec


            def test_passes_but_sends_small(dune_emulator, monkeypatch):
                # The client refuses "small" itself; pretend it did not, as a regression would.
                monkeypatch.setattr(pipeline_spec, "PERFORMANCE_TIERS", ("small", "medium", "large"))
                try:
                    DuneHook().execute_sql("SELECT 1", performance="small")
                except Exception:
                    pass  # the emulator refuses it too; the test still passes
            """
        )
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.contract.plugin",
            str(test_file),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "1 passed" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 1, run.stdout
    assert "break Dune's contract" in run.stdout
    assert "request POST /api/v1/sql/execute -> 400: InvalidRequestBody" in run.stdout

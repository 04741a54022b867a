"""Property-based tests of the running emulator, generated from Dune's specification (schemathesis).

Every operation the emulator serves is called with requests generated from the contract
(valid ones, and ones with random ids, names and bodies); each answer must not be a server
error, must carry a status the operation documents, the content type it documents and a
body valid against that status's schema. The datasets, uploads, custom endpoints and query
list are not emulated (the contract report lists them).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from airflow_provider_dune.emulator import DuneEmulator
from tests.contract.spec import contract

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Names the built-in catalog has, as examples: random ones would only ever meet a 404.
EXAMPLES = {"name": "dune.emulator.result_dex_daily_volume", "query_id": 1003, "queryId": 1003}


def _with_examples(spec: dict) -> dict:
    for item in spec["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path" and parameter["name"] in EXAMPLES:
                    parameter["example"] = EXAMPLES[parameter["name"]]
    return spec


schema = schemathesis.openapi.from_dict(_with_examples(contract())).exclude(
    path_regex=r"^/v1/(datasets|uploads|endpoints|queries)\b"
)


@pytest.fixture(scope="module")
def emulator() -> Iterator[DuneEmulator]:
    with DuneEmulator(execution_seconds=0) as dune:
        yield dune


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_emulator_answers_as_the_contract_says(case, emulator: DuneEmulator) -> None:
    case.call_and_validate(
        base_url=emulator.base_url, headers={"X-Dune-Api-Key": emulator.api_key}, checks=CHECKS, timeout=10
    )

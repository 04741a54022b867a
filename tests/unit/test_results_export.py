"""DuneResultsToStorageOperator over real HTTP: exact numbers, whole files or none, a fenced path.

The server is the scripted loopback server, so each test chooses the exact bytes Dune sends:
numbers wider than a float, a page that fails halfway through an export.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from airflow_provider_dune.exceptions import DuneApiError, DuneConfigurationError
from airflow_provider_dune.operators.result_encoding import DuneResultTypeError
from airflow_provider_dune.operators.results import DuneResultsToStorageOperator
from tests.helpers import FakeTI
from tests.scripted_server import Answer

STATUS = "/api/v1/execution/E1/status"
RESULTS = "/api/v1/execution/E1/results"
RESULTS_CSV = "/api/v1/execution/E1/results/csv"
COMPLETED = {"execution_id": "E1", "state": "QUERY_STATE_COMPLETED", "is_execution_finished": True}

UINT256_MAX = 2**256 - 1
# One row as Dune's JSON text: a decimal(38,18) with 38 digits as a JSON number (a float keeps
# 17), another decimal sent as a JSON string, the largest ubigint and uint256, a double.
EXACT_PAGE = (
    '{"execution_id": "E1", "state": "QUERY_STATE_COMPLETED", "result": {"rows": ['
    '{"amount": 12345678901234567890.123456789012345678, "fee": "0.000000000000000001", '
    f'"supply": 18446744073709551615, "raw": {UINT256_MAX}, "price": 0.1, "n": -9223372036854775808}},'
    '{"amount": null, "fee": null, "supply": 0, "raw": 0, "price": null, "n": 7}'
    '], "metadata": {"column_names": ["amount", "fee", "supply", "raw", "price", "n"], '
    '"column_types": ["decimal(38,18)", "decimal(38,18)", "ubigint", "uint256", "double", "bigint"], '
    '"total_row_count": 2}}}'
)


def page(rows: list[dict], next_offset: int | None = None) -> dict:
    body: dict = {
        "execution_id": "E1",
        "state": "QUERY_STATE_COMPLETED",
        "result": {"rows": rows, "metadata": {"column_names": ["n"], "column_types": ["bigint"]}},
    }
    if next_offset is not None:
        body["next_offset"] = next_offset
    return body


def export(path: str, fmt: str, **kwargs) -> dict:
    op = DuneResultsToStorageOperator(task_id="save", execution_id="E1", path=path, format=fmt, **kwargs)
    return op.execute({"ti": FakeTI()})


# ------------------------------------------------------------------ exact numbers


def test_parquet_keeps_decimals_and_unsigned_integers_exact(threaded_dune, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script("GET", RESULTS, Answer(body=EXACT_PAGE))
    export(str(tmp_path / "x.parquet"), "parquet")

    table = pq.read_table(tmp_path / "x.parquet")
    assert table.schema.field("amount").type == pa.decimal128(38, 18)
    assert table.schema.field("supply").type == pa.uint64()
    assert table.schema.field("raw").type == pa.string()  # 78 digits: wider than any Parquet decimal
    assert table.schema.field("price").type == pa.float64()
    assert table.to_pylist() == [
        {
            "amount": Decimal("12345678901234567890.123456789012345678"),
            "fee": Decimal("0.000000000000000001"),
            "supply": 18446744073709551615,
            "raw": str(UINT256_MAX),
            "price": 0.1,
            "n": -9223372036854775808,
        },
        {"amount": None, "fee": None, "supply": 0, "raw": "0", "price": None, "n": 7},
    ]


def test_jsonl_writes_every_digit_dune_sent(threaded_dune, tmp_path):
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script("GET", RESULTS, Answer(body=EXACT_PAGE))
    result = export(str(tmp_path / "x.jsonl"), "jsonl")

    text = (tmp_path / "x.jsonl").read_text()
    assert result["rows"] == 2
    assert '"amount": 12345678901234567890.123456789012345678' in text
    first, second = (json.loads(line, parse_float=Decimal) for line in text.splitlines())
    assert first == {
        "amount": Decimal("12345678901234567890.123456789012345678"),
        "fee": "0.000000000000000001",
        "supply": 18446744073709551615,
        "raw": UINT256_MAX,
        "price": Decimal("0.1"),
        "n": -9223372036854775808,
    }
    assert second["n"] == 7 and second["amount"] is None


def test_csv_is_dunes_own_text_byte_for_byte(threaded_dune, tmp_path):
    body = f"amount,raw\n12345678901234567890.123456789012345678,{UINT256_MAX}\n"
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script("GET", RESULTS_CSV, Answer(body=body))
    assert export(str(tmp_path / "x.csv"), "csv")["rows"] == 1
    assert (tmp_path / "x.csv").read_text() == body


def test_a_value_that_does_not_fit_its_column_fails_by_name_instead_of_rounding(threaded_dune, tmp_path):
    rows = '[{"amount": 1.234}]'
    body = (
        '{"result": {"rows": ' + rows + ', "metadata": {"column_names": ["amount"], '
        '"column_types": ["decimal(10,2)"]}}}'
    )
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script("GET", RESULTS, Answer(body=body))
    with pytest.raises(DuneResultTypeError, match=r"'amount' is declared decimal128\(10, 2\).*1\.234"):
        export(str(tmp_path / "x.parquet"), "parquet")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ whole files or none


@pytest.fixture
def memory_store():
    """An fsspec memory filesystem as Airflow object storage: an object store with no rename,
    whose files, like S3's uploads, are committed when closed (even after an error)."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io.store import _STORE_CACHE, attach
    except ImportError:  # Airflow 2
        from airflow.io.store import _STORE_CACHE, attach  # type: ignore[no-redef]

    fs = MemoryFileSystem()
    attach("memory", fs=fs)
    bucket = f"bucket-{uuid.uuid4().hex[:8]}"
    yield fs, f"memory://{bucket}"
    fs.rm(f"/{bucket}", recursive=True)
    _STORE_CACHE.pop("memory", None)


def script_failing_second_page(server, fmt: str) -> None:
    server.script("GET", STATUS, Answer(body=COMPLETED))
    failure = Answer(status=400, body={"error": "execution result expired"})
    if fmt == "csv":
        first = Answer(body="n\n1\n2\n", headers={"X-Dune-Next-Offset": "2"})
        server.script("GET", RESULTS_CSV, first, failure)
    else:
        server.script("GET", RESULTS, Answer(body=page([{"n": 1}, {"n": 2}], next_offset=2)), failure)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_a_failed_export_leaves_the_previous_file_untouched_and_no_partial_one(threaded_dune, tmp_path, fmt):
    target = tmp_path / "out" / f"daily.{fmt}"
    target.parent.mkdir()
    target.write_bytes(b"yesterday's complete export")
    script_failing_second_page(threaded_dune, fmt)

    with pytest.raises(DuneApiError, match="expired"):
        export(f"file://{target}", fmt, page_size=2)

    assert target.read_bytes() == b"yesterday's complete export"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_on_an_object_store_a_failed_export_publishes_nothing(threaded_dune, memory_store, fmt):
    fs, root = memory_store
    script_failing_second_page(threaded_dune, fmt)

    with pytest.raises(DuneApiError, match="expired"):
        export(f"{root}/dune/daily.{fmt}", fmt, page_size=2)

    assert fs.find(root.removeprefix("memory://")) == []


def test_on_an_object_store_the_export_is_published_by_copy_then_delete(threaded_dune, memory_store):
    fs, root = memory_store
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script(
        "GET",
        RESULTS_CSV,
        Answer(body="n\n1\n", headers={"X-Dune-Next-Offset": "1"}),
        Answer(body="n\n2\n"),
    )
    result = export(f"{root}/dune/daily.csv", "csv", page_size=1)

    bucket = root.removeprefix("memory://")
    assert (result["rows"], result["path"].rsplit(bucket, 1)[1]) == (2, "/dune/daily.csv")
    assert fs.find(bucket) == [f"/{bucket}/dune/daily.csv"]
    assert fs.cat(f"/{bucket}/dune/daily.csv") == b"n\n1\n2\n"


def test_a_successful_export_replaces_the_previous_file(threaded_dune, tmp_path):
    target = tmp_path / "daily.jsonl"
    target.write_text("old\n")
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script(
        "GET", RESULTS, Answer(body=page([{"n": 1}], next_offset=1)), Answer(body=page([{"n": 2}]))
    )
    assert export(str(target), "jsonl", page_size=1)["rows"] == 2
    assert target.read_text() == '{"n": 1}\n{"n": 2}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["daily.jsonl"]


# ------------------------------------------------------------------ base_path


@pytest.mark.parametrize(
    "rendered",
    [
        "../escaped.csv",
        "daily/../../escaped.csv",
        "..",
        "",
        ".",
        "/etc/cron.d/escaped",
        "file:///tmp/escaped.csv",
        "s3://another-bucket/escaped.csv",
    ],
)
def test_a_path_that_leaves_base_path_fails_before_any_request(threaded_dune, tmp_path, rendered):
    base = tmp_path / "exports"
    op = DuneResultsToStorageOperator(
        task_id="save", execution_id="E1", base_path=f"file://{base}", path="{{ params.name }}"
    )
    op.render_template_fields({"params": {"name": rendered}})

    with pytest.raises(DuneConfigurationError, match="base_path"):
        op.execute({"ti": FakeTI()})

    assert threaded_dune.requests == []
    assert list(tmp_path.iterdir()) == []


def test_a_relative_path_is_written_inside_base_path(threaded_dune, tmp_path):
    threaded_dune.script("GET", STATUS, Answer(body=COMPLETED))
    threaded_dune.script("GET", RESULTS_CSV, Answer(body="n\n1\n"))
    base = tmp_path / "exports"
    op = DuneResultsToStorageOperator(
        task_id="save", execution_id="E1", base_path=f"file://{base}/", path="daily/./{{ ds }}.csv"
    )
    op.render_template_fields({"ds": "2024-01-01"})

    result = op.execute({"ti": FakeTI()})

    assert result["path"] == f"file://{base}/daily/2024-01-01.csv"
    assert list(csv.reader(io.StringIO((base / "daily" / "2024-01-01.csv").read_text()))) == [["n"], ["1"]]


def test_base_path_needs_a_relative_string_path():
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    with pytest.raises(DuneConfigurationError, match="relative"):
        DuneResultsToStorageOperator(
            task_id="save",
            execution_id="E1",
            base_path="file:///data",
            path=ObjectStoragePath(f"file://{Path('/data/x.csv')}"),
        )

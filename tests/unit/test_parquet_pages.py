"""A result page becomes an Arrow table with Dune's column types, whatever JSON values it holds."""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_dune.operators.result_encoding import arrow_schema, page_table


def test_columns_follow_dune_types_and_odd_values_survive_as_text():
    schema = arrow_schema(pa, ["n", "price", "label", "ok"], ["bigint", "double", "varchar", "boolean"])
    rows = [
        {"n": 1, "price": 2, "label": "a", "ok": True},
        {"n": None, "price": 2.5, "label": 7, "ok": False},
        {"n": 3, "price": None, "label": {"k": [1, 2]}, "ok": None},
    ]
    table = page_table(pa, rows, schema)
    assert table.schema == schema
    assert table.column("n").to_pylist() == [1, None, 3]
    assert table.column("price").to_pylist() == [2.0, 2.5, None]
    assert table.column("label").to_pylist() == ["a", "7", '{"k": [1, 2]}']
    assert table.column("ok").to_pylist() == [True, False, None]


def test_unknown_types_are_kept_as_text_and_missing_keys_are_null():
    schema = arrow_schema(pa, ["when", "extra"], ["timestamp(3) with time zone"])
    table = page_table(pa, [{"when": "2024-01-01 00:00:00.000 UTC"}], schema)
    assert table.column("when").to_pylist() == ["2024-01-01 00:00:00.000 UTC"]
    assert table.column("extra").to_pylist() == [None]


def test_each_dune_type_gets_an_arrow_type_that_holds_all_its_values():
    from airflow_provider_dune.operators.result_encoding import arrow_type

    expected = {
        "tinyint": pa.int8(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "uinteger": pa.uint32(),
        "ubigint": pa.uint64(),
        "hugeint": pa.decimal256(39, 0),
        "decimal(38,18)": pa.decimal128(38, 18),
        "DECIMAL(50, 10)": pa.decimal256(50, 10),
        "decimal(77,0)": pa.string(),
        "decimal": pa.string(),
        "uint256": pa.string(),
        "int256": pa.string(),
        "real": pa.float64(),
        "boolean": pa.bool_(),
        "varbinary": pa.string(),
    }
    assert {name: arrow_type(pa, name) for name in expected} == expected

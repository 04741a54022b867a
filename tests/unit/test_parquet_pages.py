"""A result page becomes an Arrow table with Dune's column types, whatever JSON values it holds."""

from __future__ import annotations

import pyarrow as pa

from airflow_provider_dune.operators.results import _page_table, arrow_schema


def test_columns_follow_dune_types_and_odd_values_survive_as_text():
    schema = arrow_schema(pa, ["n", "price", "label", "ok"], ["bigint", "double", "varchar", "boolean"])
    rows = [
        {"n": 1, "price": 2, "label": "a", "ok": True},
        {"n": None, "price": 2.5, "label": 7, "ok": False},
        {"n": 3, "price": None, "label": {"k": [1, 2]}, "ok": None},
    ]
    table = _page_table(pa, rows, schema)
    assert table.schema == schema
    assert table.column("n").to_pylist() == [1, None, 3]
    assert table.column("price").to_pylist() == [2.0, 2.5, None]
    assert table.column("label").to_pylist() == ["a", "7", '{"k": [1, 2]}']
    assert table.column("ok").to_pylist() == [True, False, None]


def test_unknown_types_are_kept_as_text_and_missing_keys_are_null():
    schema = arrow_schema(pa, ["when", "extra"], ["timestamp(3) with time zone"])
    table = _page_table(pa, [{"when": "2024-01-01 00:00:00.000 UTC"}], schema)
    assert table.column("when").to_pylist() == ["2024-01-01 00:00:00.000 UTC"]
    assert table.column("extra").to_pylist() == [None]

"""Dune result rows as JSON Lines and Arrow tables, without losing a digit on the way.

Rows arrive from :meth:`~airflow_provider_dune.hooks.dune.DuneHook.iter_result_pages` with
``exact_numbers=True``: integers are Python ints of any size, fractional numbers are
:class:`~decimal.Decimal` holding the digits Dune sent. Dune's documentation does not say
whether a ``decimal(p,s)`` or ``uint256`` value travels as a JSON number or as a JSON string,
so every conversion here accepts both, and a value that cannot be stored without loss fails
the export by name instead of being rounded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from json.encoder import encode_basestring  # json's own string escaping for ensure_ascii=False
from typing import Any

from airflow_provider_dune.exceptions import DuneError


class DuneResultTypeError(DuneError):
    """A result value does not fit its column's declared type without loss."""


# Dune's (Trino's) and the emulator's (DuckDB's) integer names, to the Arrow type holding each.
_INTEGERS = {
    "tinyint": "int8",
    "smallint": "int16",
    "integer": "int32",
    "int": "int32",
    "bigint": "int64",
    "utinyint": "uint8",
    "usmallint": "uint16",
    "uinteger": "uint32",
    "ubigint": "uint64",
}
# 128-bit integers need 39 digits: one more than decimal128 holds.
_WIDE_INTEGERS = ("hugeint", "uhugeint", "int128", "uint128")
_FLOATS = ("double", "real", "float")
_DECIMAL = re.compile(r"(?:decimal|numeric)\(\s*(\d+)\s*,\s*(\d+)\s*\)")
_DECIMAL128_DIGITS = 38
_DECIMAL256_DIGITS = 76


def arrow_type(pa: Any, dune_type: str) -> Any:
    """The Arrow type that holds every value of a Dune column type; text when none does.

    ``uint256``/``int256`` (up to 78 digits) and decimals wider than 76 digits exceed Parquet's
    decimals, so they stay text, exactly as Dune sent them.
    """
    kind = dune_type.strip().lower()
    if kind in _INTEGERS:
        return getattr(pa, _INTEGERS[kind])()
    if kind in _WIDE_INTEGERS:
        return pa.decimal256(39, 0)
    if kind in _FLOATS:
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    match = _DECIMAL.fullmatch(kind)
    if match:
        precision, scale = int(match[1]), int(match[2])
        if 0 < precision <= _DECIMAL128_DIGITS and scale <= precision:
            return pa.decimal128(precision, scale)
        if precision <= _DECIMAL256_DIGITS and scale <= precision:
            return pa.decimal256(precision, scale)
    return pa.string()


def arrow_schema(pa: Any, names: Sequence[str], types: Sequence[str]) -> Any:
    """The Parquet schema from Dune's column names and types (text when a type is unknown)."""
    return pa.schema(
        [pa.field(name, arrow_type(pa, types[i] if i < len(types) else "")) for i, name in enumerate(names)]
    )


def page_table(pa: Any, rows: list[dict[str, Any]], schema: Any) -> Any:
    """One page as an Arrow table, built column by column.

    Values already of the column's kind go straight in (the common case, one pass in C).
    Others are converted exactly (``"18446744073709551615"`` to an int, a Decimal to a double
    column's float); a text column that received lists, objects or numbers keeps them as JSON
    text. A value that would lose digits raises :class:`DuneResultTypeError`.
    """
    arrays = []
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_string(field.type):
            if any(v is not None and not isinstance(v, str) for v in values):
                values = [v if v is None or isinstance(v, str) else json_text(v) for v in values]
            arrays.append(pa.array(values, type=field.type))
        else:
            arrays.append(_typed_array(pa, field, values))
    return pa.Table.from_arrays(arrays, schema=schema)


def _typed_array(pa: Any, field: Any, values: list[Any]) -> Any:
    try:
        return pa.array(values, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    convert = _converter(pa, field.type)
    converted = []
    for value in values:
        try:
            converted.append(None if value is None else convert(value))
        except (ValueError, ArithmeticError, TypeError):
            raise _does_not_fit(field, value) from None
    try:
        return pa.array(converted, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        raise _does_not_fit(field, _first_misfit(pa, field.type, converted, values)) from None


def _first_misfit(pa: Any, arrow_type: Any, converted: list[Any], values: list[Any]) -> Any:
    for value, original in zip(converted, values, strict=True):
        try:
            pa.array([value], type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
            return original
    return None


def _does_not_fit(field: Any, value: Any) -> DuneResultTypeError:
    return DuneResultTypeError(
        f"Column {field.name!r} is declared {field.type} but holds {value!r}, which it cannot store "
        "without loss. Export as csv or jsonl (exact text), or cast the column in the query."
    )


def _converter(pa: Any, arrow_type: Any) -> Callable[[Any], Any]:
    if pa.types.is_integer(arrow_type):
        return _exact_int
    if pa.types.is_floating(arrow_type):
        return float
    if pa.types.is_decimal(arrow_type):
        return _exact_decimal
    return lambda value: value


def _exact_int(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value)
    if isinstance(value, (Decimal, float)) and value == int(value):
        return int(value)
    raise ValueError(f"{value!r} is not a whole number")


def _exact_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text that reads back as this float
    return Decimal(value)


def json_line(row: dict[str, Any]) -> str:
    """One row as a line of JSON, numbers written with exactly the digits Dune sent."""
    return json_text(row) + "\n"


def json_text(value: Any) -> str:
    """What ``json.dumps(value, ensure_ascii=False)`` writes, except that a Decimal is a JSON
    number digit for digit (the json module can only write it as a float or a string)."""
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int or kind is Decimal:
        return str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is dict:
        return "{" + ", ".join(f"{encode_basestring(str(k))}: {json_text(v)}" for k, v in value.items()) + "}"
    if kind is list:
        return "[" + ", ".join(json_text(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False, default=str)

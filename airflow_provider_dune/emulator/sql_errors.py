"""Turn a DuckDB error into the error object Dune puts on a failed execution."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_LINE_PATTERN = re.compile(r"^LINE (\d+): (.*)$")
_UNKNOWN_COLUMN = re.compile(
    r'^Binder Error: Referenced column "(?P<name>[^"]+)" not found in FROM clause!\s*'
)


@dataclass(frozen=True)
class SqlError:
    message: str  # without Dune's "line L:C: " prefix and execution id suffix
    line: int | None = None
    column: int | None = None

    def to_api(self, execution_id: str, error_type: str = "FAILED_TYPE_EXECUTION_FAILED") -> dict[str, Any]:
        position = f"line {self.line}:{self.column}: " if self.line and self.column else ""
        body: dict[str, Any] = {
            "type": error_type,
            "message": f"{position}{self.message} [Execution ID: {execution_id}]",
        }
        if self.line and self.column:
            body["metadata"] = {"line": self.line, "column": self.column}
        return body


def parse_duckdb_error(raw: str, statement: str, prefix_length: int) -> SqlError:
    """``statement`` is what DuckDB ran: the user's SQL behind a one-line ``prefix_length`` prefix.

    DuckDB reports a position as a ``LINE n: <snippet>`` line followed by a caret line; long
    lines are shown as a window with ``...`` on either side, so the caret is mapped back onto
    the statement by locating the snippet in the real line.
    """
    lines = raw.splitlines()
    summary = _dune_wording(" ".join(part.strip() for part in _summary_lines(lines) if part.strip()))
    for index, text in enumerate(lines[:-1]):
        match = _LINE_PATTERN.match(text)
        caret_line = lines[index + 1]
        if not match or "^" not in caret_line:
            continue
        line_number = int(match.group(1))
        column = _column_in_statement(
            statement, line_number, match.group(2), caret_line.index("^") - (len(text) - len(match.group(2)))
        )
        if column is None:
            break
        if line_number == 1:
            column -= prefix_length
        if column < 0:
            break
        return SqlError(summary, line_number, column + 1)
    return SqlError(summary)


def _summary_lines(lines: list[str]) -> Iterator[str]:
    for text in lines:
        if _LINE_PATTERN.match(text):
            return
        yield text


def _column_in_statement(statement: str, line_number: int, snippet: str, caret: int) -> int | None:
    statement_lines = statement.splitlines()
    if not 0 < line_number <= len(statement_lines) or caret < 0:
        return None
    actual = statement_lines[line_number - 1]
    if not snippet.startswith("..."):
        return caret
    visible = snippet[3:].removesuffix("...")
    start = actual.find(visible[: max(len(visible), 1)])
    if start < 0:
        return None
    return start + caret - 3


def _dune_wording(message: str) -> str:
    """Dune (Trino) words the most common failure as "Column 'x' cannot be resolved"; clients
    and people grep for that, so the DuckDB equivalent is reworded and its hints kept."""
    match = _UNKNOWN_COLUMN.match(message)
    if match is None:
        return message
    rest = message[match.end() :].strip()
    return f"Column '{match.group('name')}' cannot be resolved" + (f" ({rest})" if rest else "")

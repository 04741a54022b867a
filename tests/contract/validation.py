"""Checking one exchange with the emulator against Dune's contract (openapi-core does the work).

* A **request** our client sent must be an operation of the specification, with declared query
  parameters only, valid parameter values and a valid body (unknown fields and undocumented
  enum values fail: see ``spec.py``).
* An **answer** of the emulator must carry a status the operation documents and a body valid
  against that status's schema. Injected gateway faults (502/503/504 pages, dropped or garbled
  answers) stand for the network in front of Dune, not for Dune, and are not checked. A path
  the specification does not know may only be answered 404 or 405.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from airflow_provider_dune.emulator.traffic import Exchange
from airflow_provider_dune.hooks.http import USER_AGENT
from tests.contract.spec import BASE_PATH, SERVER, contract

UNCHECKED_FAULTS = frozenset({"drop", "malformed", "502", "503", "504"})
UNKNOWN_PATH_STATUSES = frozenset({404, 405})
CLIENT_AGENT = USER_AGENT.split("/", 1)[0] + "/"


def is_client_request(exchange: Exchange) -> bool:
    """Sent by this provider's hooks (not by a test probing the emulator, nor another SDK)."""
    return exchange.request_headers.get("User-Agent", "").startswith(CLIENT_AGENT)


@dataclass(frozen=True)
class Violation:
    side: str  # "request" (our client) or "answer" (the emulator)
    method: str
    path: str
    status: int
    message: str

    def __str__(self) -> str:
        return f"{self.side} {self.method} {self.path} -> {self.status}: {self.message}"


class ContractChecker:
    """Matches exchanges to the specification's operations and validates them."""

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec or contract()
        # CSV answers are text: openapi-core has no deserializer for text/csv of its own.
        csv_as_text = {"text/csv": lambda body: body.decode() if isinstance(body, bytes) else body}
        self.openapi = OpenAPI.from_dict(self.spec, config=Config(extra_media_type_deserializers=csv_as_text))
        # Literal paths first, so /v1/query/ is not read as /v1/query/{queryId}.
        self._templates = sorted(
            ((path, _template_regex(path)) for path in self.spec["paths"]),
            key=lambda item: item[0].count("{"),
        )

    def operation_of(self, method: str, path: str) -> str | None:
        """The specification path (``/v1/...``) of an ``/api/...`` request path, if it has ``method``."""
        relative = path[len(BASE_PATH) :] if path.startswith(BASE_PATH + "/") else None
        if relative is None:
            return None
        for template, pattern in self._templates:
            if pattern.fullmatch(relative) and method.lower() in self.spec["paths"][template]:
                return template
        return None

    def check_request(self, exchange: Exchange) -> list[Violation]:
        template = self.operation_of(exchange.method, exchange.path)
        if template is None:
            return [self._violation("request", exchange, "not an operation of Dune's API")]
        declared = {
            parameter["name"]
            for parameter in self._operation(template, exchange.method).get("parameters", [])
            if parameter["in"] == "query"
        }
        unknown = sorted({name for name, _ in _query(exchange)} - declared)
        problems = [f"undeclared query parameters {unknown}"] if unknown else []
        problems += [_describe(error) for error in self.openapi.iter_request_errors(_request(exchange))]
        return [self._violation("request", exchange, problem) for problem in problems]

    def check_answer(self, exchange: Exchange) -> list[Violation]:
        if exchange.fault in UNCHECKED_FAULTS:
            return []
        template = self.operation_of(exchange.method, exchange.path)
        if template is None:
            if exchange.status in UNKNOWN_PATH_STATUSES:
                return []
            return [self._violation("answer", exchange, "answered a path Dune's API does not have")]
        documented = self._operation(template, exchange.method)["responses"]
        if str(exchange.status) not in documented and "default" not in documented:
            return [
                self._violation(
                    "answer", exchange, f"status not documented (documented: {sorted(documented)})"
                )
            ]
        response = MockResponse(
            exchange.response_body, status_code=exchange.status, content_type=exchange.response_content_type
        )
        errors = self.openapi.iter_response_errors(_request(exchange), response)
        return [self._violation("answer", exchange, _describe(error)) for error in errors]

    def _operation(self, template: str, method: str) -> dict[str, Any]:
        operation: dict[str, Any] = self.spec["paths"][template][method.lower()]
        return operation

    @staticmethod
    def _violation(side: str, exchange: Exchange, message: str) -> Violation:
        return Violation(side, exchange.method, exchange.path, exchange.status, message)

    @cached_property
    def operations(self) -> list[tuple[str, str]]:
        return [(method.upper(), path) for path, item in self.spec["paths"].items() for method in item]


def _template_regex(path: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)))


def _query(exchange: Exchange) -> list[tuple[str, str]]:
    return parse_qsl(exchange.query_string, keep_blank_values=True)


def _request(exchange: Exchange) -> MockRequest:
    headers = {name: value for name, value in exchange.request_headers.items()}
    if exchange.key_supplied:
        headers["X-Dune-Api-Key"] = "redacted"
    content_type = exchange.request_headers.get("Content-Type", "application/json")
    return MockRequest(
        SERVER,
        exchange.method,
        exchange.path,
        args=dict(_query(exchange)),
        headers=headers,
        data=exchange.request_body or None,
        content_type=content_type.split(";")[0],
    )


def _describe(error: Exception) -> str:
    """openapi-core's error with the schema errors it wraps, which say what is wrong."""
    details: Iterable[Any] = getattr(error.__cause__, "schema_errors", None) or ()
    messages = [getattr(detail, "message", str(detail)) for detail in details]
    cause = f" ({'; '.join(messages)})" if messages else (f" ({error.__cause__})" if error.__cause__ else "")
    return f"{type(error).__name__}{cause}"


def skeleton(value: Any, key: str | None = None) -> Any:
    """The shape of a JSON value, for telling exchanges apart without keeping every one: keys and
    types, and the values of ``performance`` fields (the only enums)."""
    if isinstance(value, dict):
        return tuple(sorted((k, skeleton(v, k)) for k, v in value.items()))
    if isinstance(value, list):
        return ("list", tuple(sorted({repr(skeleton(item)) for item in value})))
    if isinstance(value, str):
        return ("str", value) if key == "performance" else "str"
    return type(value).__name__


def signature(exchange: Exchange, template: str | None) -> tuple[Any, ...]:
    """Exchanges with the same signature pass or fail validation alike."""
    return (
        exchange.method,
        template or exchange.path,
        exchange.status,
        exchange.fault,
        is_client_request(exchange),
        exchange.key_supplied,
        tuple(sorted((name, _value_kind(value, name)) for name, value in _query(exchange))),
        exchange.request_headers.get("Content-Type", ""),
        _body_shape(exchange.request_body),
        exchange.response_content_type,
        _body_shape(exchange.response_body),
    )


def _value_kind(value: str, name: str) -> str:
    if name == "performance":
        return value
    if value.lstrip("-").isdigit():
        return "int"
    return value if value.lower() in ("true", "false") else "str"


def _body_shape(body: bytes) -> Any:
    if not body:
        return None
    try:
        return skeleton(json.loads(body))
    except ValueError:
        return "text"

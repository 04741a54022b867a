"""Maia (Matillion Data Productivity Cloud) payloads as typed objects, and the status decision.

This is the only module that reads Maia's answers. ``GET .../pipeline-executions/{id}/status``
documents eight states (``maia-pipeline-execution-status.md``):

=====================  ==========================================================
``SUCCESS``            succeeded
``SKIPPED``            succeeded, with a warning; failed when ``fail_on_skipped``
``FAILED``             failed
``CANCELLED``          failed (stopped by someone or by this provider)
``FORBIDDEN``          failed (the credentials may not run it)
``RUNNING``            still going
``CANCELLING``         still going: it ends as ``CANCELLED`` soon
``UNKNOWN``            still going, warned once: Maia could not tell yet
=====================  ==========================================================

A state not in the list never crashes anything: it counts as still going and is warned once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_dune.exceptions import MaiaResponseError
from airflow_provider_dune.runs.outcome import RunOutcome, unknown_states
from airflow_provider_dune.validation import log_safe

SUCCESS = "SUCCESS"
SKIPPED = "SKIPPED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
FORBIDDEN = "FORBIDDEN"
RUNNING = "RUNNING"
CANCELLING = "CANCELLING"
UNKNOWN = "UNKNOWN"

_FAILURE_REASONS = {
    FAILED: "failed",
    CANCELLED: "was cancelled",
    FORBIDDEN: "was refused (FORBIDDEN): the API credentials may not run pipelines in this project",
}
_STILL_RUNNING = {RUNNING, CANCELLING}
_KIND = "Maia pipeline execution"


@dataclass(frozen=True)
class MaiaPipelineStatus:
    """The answer of ``GET /v1/projects/{projectId}/pipeline-executions/{id}/status``."""

    project_id: str
    pipeline_execution_id: str
    status: str

    @property
    def normalised(self) -> str:
        return self.status.strip().upper()

    def outcome(self, fail_on_skipped: bool = False) -> RunOutcome:
        state = self.normalised
        if state == SUCCESS:
            return RunOutcome.SUCCEEDED
        if state == SKIPPED:
            return RunOutcome.FAILED if fail_on_skipped else RunOutcome.SUCCEEDED
        if state in _FAILURE_REASONS:
            return RunOutcome.FAILED
        if state not in _STILL_RUNNING:
            # UNKNOWN is documented but says nothing about the run; a new string says even less.
            unknown_states.note(_KIND, self.status)
        return RunOutcome.RUNNING

    @property
    def skipped(self) -> bool:
        return self.normalised == SKIPPED

    @property
    def label(self) -> str:
        return f"Maia pipeline execution {self.pipeline_execution_id} (project {self.project_id})"

    def message(self, fail_on_skipped: bool = False) -> str:
        """The line that ends the task: a success note or why the run failed."""
        state = self.normalised
        if state == SUCCESS:
            return f"{self.label} succeeded."
        if state == SKIPPED:
            if fail_on_skipped:
                return f"{self.label} was skipped (SKIPPED) and fail_on_skipped=True."
            return f"{self.label} was skipped (SKIPPED): nothing ran; counted as success."
        reason = _FAILURE_REASONS.get(state)
        if reason is not None:
            return f"{self.label} {reason}."
        return f"{self.label} is {self.status}."


def parse_pipeline_status(project_id: str, pipeline_execution_id: str, payload: Any) -> MaiaPipelineStatus:
    status = payload.get("status") if isinstance(payload, Mapping) else None
    if not isinstance(status, str) or not status.strip():
        raise MaiaResponseError(
            f"Maia's status answer for pipeline execution {pipeline_execution_id} has no 'status': "
            f"{str(payload)[:200]}"
        )
    return MaiaPipelineStatus(project_id, pipeline_execution_id, log_safe(status))


@dataclass(frozen=True)
class MaiaStep:
    """One step (component) of a pipeline execution, from ``GET .../pipeline-executions/{id}/steps``."""

    name: str
    status: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status.strip().upper() in (FAILED, FORBIDDEN)


@dataclass(frozen=True)
class MaiaExecutionDetails:
    """What Maia says of a finished execution: ``GET .../pipeline-executions/{id}`` (its
    ``message``, e.g. ``"Rewrite Table": Success``) and the steps that failed."""

    message: str = ""
    pipeline_name: str = ""
    failed_steps: tuple[MaiaStep, ...] = ()

    def describe(self) -> str:
        """Lines for the task's error: the failing steps with their messages, then Maia's message."""
        lines = [
            f"  step {step.name!r} {step.status}: {step.message or 'no message'}"
            for step in self.failed_steps
        ]
        if self.message and not any(self.message == step.message for step in self.failed_steps):
            lines.append(f"  Maia says: {self.message}")
        return "\n".join(lines)


def parse_execution_message(payload: Any) -> tuple[str, str]:
    """``(message, pipelineName)`` of the execution details answer. Maia's reference lists the
    fields at the top level; answers seen in the wild wrap them in ``result``: both are read."""
    body = payload if isinstance(payload, Mapping) else {}
    inner = body.get("result")
    if isinstance(inner, Mapping):
        body = inner
    return _text(body.get("message")), _text(body.get("pipelineName"))


def parse_steps(payload: Any) -> tuple[MaiaStep, ...]:
    """The steps of one page of ``.../steps``: ``results[].{name, result: {status, message}}``."""
    results = payload.get("results") if isinstance(payload, Mapping) else None
    steps = []
    for raw in results if isinstance(results, list) else []:
        if not isinstance(raw, Mapping):
            continue
        raw_result = raw.get("result")
        result: Mapping[str, Any] = raw_result if isinstance(raw_result, Mapping) else {}
        steps.append(
            MaiaStep(
                name=_text(raw.get("name") or raw.get("id")) or "?",
                status=_text(result.get("status")) or UNKNOWN,
                message=_text(result.get("message")),
            )
        )
    return tuple(steps)


@dataclass(frozen=True)
class ProblemDetail:
    """An ``application/problem+json`` error body (RFC 9457), as Maia sends it."""

    title: str = ""
    detail: str = ""
    status: int | None = None
    type: str = ""
    violations: tuple[str, ...] = field(default_factory=tuple)


_MAX_TEXT = 300


def parse_problem(body: bytes, content_type: str = "") -> ProblemDetail:
    """What an error body says, whatever came back: problem+json, OAuth JSON, HTML or text.

    Every text is escaped for the log (:func:`~airflow_provider_dune.validation.log_safe`):
    the server wrote it, and a newline in it would start a line that looks like the task's own.
    """
    if not body.strip():
        return ProblemDetail(title="empty response body")
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        violations = payload.get("violations")
        status = payload.get("status")
        problem = ProblemDetail(
            # The token endpoint answers in OAuth's shape ({"error", "error_description"}).
            title=_text(payload.get("title") or payload.get("error")),
            detail=_text(payload.get("detail") or payload.get("error_description")),
            status=status if isinstance(status, int) else None,
            type=_text(payload.get("type")),
            violations=tuple(_text(v) for v in violations) if isinstance(violations, list) else (),
        )
        if problem.title or problem.detail or problem.violations:
            return problem
        return ProblemDetail(
            title=log_safe(f"unexpected JSON body: {body[:_MAX_TEXT].decode(errors='replace')}")
        )
    if "html" in content_type or body.lstrip()[:1] == b"<":
        return ProblemDetail(
            title="an HTML page instead of JSON (a proxy or gateway error, or a wrong base URL)"
        )
    return ProblemDetail(title=log_safe(body[:_MAX_TEXT].decode(errors="replace").strip()))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return log_safe(value if isinstance(value, str) else json.dumps(value)[:_MAX_TEXT])

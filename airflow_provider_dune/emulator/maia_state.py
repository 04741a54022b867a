"""The emulated Maia (Matillion Data Productivity Cloud) account: credentials, tokens, executions.

Pipelines are not real: what a run does is decided by its name, so example DAGs and tests
can ask for every outcome:

=========================  ==========================================================
pipeline name contains     what happens
=========================  ==========================================================
``fail``                   RUNNING, then FAILED
``skip``                   RUNNING, then SKIPPED
``forbidden``              RUNNING, then FORBIDDEN
``unknown``                UNKNOWN while it runs, then SUCCESS
``unpublished``            the start is refused: 400 problem+json with violations
anything else              RUNNING, then SUCCESS
=========================  ==========================================================

A run takes ``execution_seconds``, or the ``emulator_seconds`` scalar variable when given.
A cancel (``forceUpdate: false``) shows CANCELLING for ``cancel_seconds``, then CANCELLED;
``forceUpdate: true`` cancels at once. Everything runs on the server's one event loop.

Bounded like the Dune side: past ``max_executions`` the oldest finished runs are forgotten,
expired tokens are dropped, and at most ``MAX_TOKENS`` tokens are valid at once (the oldest
goes first).
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_dune.emulator.bounds import forget_oldest_finished

DEFAULT_CLIENT_ID = "maia-emulator-client"
# The emulator's default secret is random (server.py); this one is for a MaiaService made alone.
DEFAULT_CLIENT_SECRET = "maia-emulator-secret"
MAX_TOKENS = 1000
# The example project id of Maia's own API guide.
DEFAULT_PROJECT_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
DEFAULT_ENVIRONMENTS = ("Dev", "Prod")

RUNNING = "RUNNING"
UNKNOWN = "UNKNOWN"
CANCELLING = "CANCELLING"
CANCELLED = "CANCELLED"
TERMINAL = frozenset({"SUCCESS", "FAILED", "SKIPPED", "FORBIDDEN", CANCELLED})


class MaiaProblem(Exception):
    """Raised by handlers; answered as ``application/problem+json``."""

    def __init__(self, status: int, detail: str, violations: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.violations = violations


@dataclass
class MaiaExecution:
    id: str
    project_id: str
    pipeline_name: str
    environment_name: str
    scalar_variables: dict[str, str]
    grid_variables: dict[str, Any]
    started: float
    duration: float
    final_status: str
    running_status: str = RUNNING
    cancel_requested: float | None = None
    forced: bool = False

    def status(self, now: float, cancel_seconds: float) -> str:
        if self.cancel_requested is not None:
            if self.forced or now >= self.cancel_requested + cancel_seconds:
                return CANCELLED
            return CANCELLING
        if now >= self.started + self.duration:
            return self.final_status
        return self.running_status


# The components every emulated pipeline runs, in order; a failing pipeline fails in the last.
STEP_NAMES = ("Start", "Load orders", "Transform orders")


def failure_message(execution: MaiaExecution) -> str:
    return (
        f"SQL compilation error: Object 'EMULATOR.PUBLIC.ORDERS_STAGE' does not exist "
        f"(pipeline {execution.pipeline_name!r})"
    )


def steps_of(execution: MaiaExecution, status: str) -> list[dict[str, Any]]:
    """``GET .../steps`` results: every step SUCCESS once the run succeeded; the last one FAILED
    (with the message Maia would show) or CANCELLED as the run ended; still RUNNING meanwhile."""
    last = {"FAILED": "FAILED", CANCELLED: CANCELLED}.get(
        status, "SUCCESS" if status in TERMINAL else RUNNING
    )
    steps = []
    for index, name in enumerate(STEP_NAMES):
        state = last if index == len(STEP_NAMES) - 1 else "SUCCESS"
        message = (
            failure_message(execution) if state == "FAILED" else ("" if state == RUNNING else state.title())
        )
        steps.append(
            {
                "id": f"{execution.id}-{index}",
                "name": name,
                "result": {"status": state, "message": message},
                "childPipeline": None,
            }
        )
    return steps


def details_of(execution: MaiaExecution, status: str) -> dict[str, Any]:
    """``GET .../pipeline-executions/{id}``, with the fields Maia's reference lists."""
    message = {"FAILED": failure_message(execution), "SUCCESS": f'"{STEP_NAMES[-1]}": Success'}.get(
        status, ""
    )
    return {
        "pipelineExecutionId": execution.id,
        "pipelineName": execution.pipeline_name,
        "environmentName": execution.environment_name,
        "projectId": execution.project_id,
        "pipelineType": "ORCHESTRATION",
        "trigger": "API",
        "status": status,
        "message": message,
    }


@dataclass
class MaiaService:
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    execution_seconds: float = 0.5
    token_seconds: int = 1800
    cancel_seconds: float = 0.2
    projects: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {DEFAULT_PROJECT_ID: DEFAULT_ENVIRONMENTS}
    )
    max_executions: int = 10_000
    executions: dict[str, MaiaExecution] = field(default_factory=dict)
    # Token -> when it expires, in the order issued.
    tokens: dict[str, float] = field(default_factory=dict)
    tokens_issued: int = 0

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(self) -> str:
        now = time.monotonic()
        # Issued in order with one lifetime, so the oldest token is also the first to expire.
        while self.tokens:
            oldest = next(iter(self.tokens))
            if self.tokens[oldest] > now and len(self.tokens) < MAX_TOKENS:
                break
            del self.tokens[oldest]
        token = "maia-emulated-" + secrets.token_urlsafe(24)
        self.tokens[token] = now + self.token_seconds
        self.tokens_issued += 1
        return token

    def token_valid(self, token: str) -> bool:
        expires = self.tokens.get(token)
        return expires is not None and time.monotonic() < expires

    def revoke_tokens(self) -> None:
        """Every issued token answers 401 from now on, as after a credential rotation."""
        self.tokens.clear()

    # -- executions ---------------------------------------------------------------------------

    def require_project(self, project_id: str) -> tuple[str, ...]:
        environments = self.projects.get(project_id)
        if environments is None:
            raise MaiaProblem(404, f"Project {project_id} not found")
        return environments

    def start(self, project_id: str, body: dict[str, Any]) -> MaiaExecution:
        environments = self.require_project(project_id)
        name, environment = body.get("pipelineName"), body.get("environmentName")
        violations = []
        if not isinstance(name, str) or not name:
            violations.append("pipelineName: must not be blank")
        if not isinstance(environment, str) or not environment:
            violations.append("environmentName: must not be blank")
        elif environment not in environments:
            violations.append(f"environmentName: no environment {environment!r} in this project")
        scalars = body.get("scalarVariables") or {}
        grids = body.get("gridVariables") or {}
        if not isinstance(scalars, dict) or not all(isinstance(v, str) for v in scalars.values()):
            violations.append("scalarVariables: must map variable names to string values")
        if not isinstance(grids, dict):
            violations.append("gridVariables: must map variable names to rows")
        if isinstance(name, str) and "unpublished" in name.lower():
            violations.append(f"pipelineName: pipeline {name!r} is not published in {environment!r}")
        if violations:
            raise MaiaProblem(400, "Invalid pipeline execution request", tuple(violations))
        assert isinstance(name, str) and isinstance(environment, str)
        lowered = name.lower()
        final = "SUCCESS"
        for marker, status in (("fail", "FAILED"), ("skip", "SKIPPED"), ("forbidden", "FORBIDDEN")):
            if marker in lowered:
                final = status
                break
        try:
            duration = float(scalars.get("emulator_seconds", self.execution_seconds))
        except ValueError:
            raise MaiaProblem(
                400, "Invalid pipeline execution request", ("emulator_seconds: not a number",)
            ) from None
        forget_oldest_finished(
            self.executions, self.max_executions - 1, lambda run: self.status_of(run) in TERMINAL
        )
        execution = MaiaExecution(
            id=str(uuid.uuid4()),
            project_id=project_id,
            pipeline_name=name,
            environment_name=environment,
            scalar_variables=dict(scalars),
            grid_variables=dict(grids),
            started=time.monotonic(),
            duration=max(0.0, duration),
            final_status=final,
            running_status=UNKNOWN if "unknown" in lowered else RUNNING,
        )
        self.executions[execution.id] = execution
        return execution

    def get(self, project_id: str, execution_id: str) -> MaiaExecution:
        self.require_project(project_id)
        try:
            uuid.UUID(execution_id)
        except ValueError:
            raise MaiaProblem(400, f"pipelineExecutionId {execution_id!r} is not a UUID") from None
        execution = self.executions.get(execution_id)
        if execution is None or execution.project_id != project_id:
            raise MaiaProblem(404, "Pipeline Execution not Found")
        return execution

    def status_of(self, execution: MaiaExecution) -> str:
        return execution.status(time.monotonic(), self.cancel_seconds)

    def cancel(self, project_id: str, execution_id: str, body: dict[str, Any]) -> MaiaExecution:
        execution = self.get(project_id, execution_id)
        violations = []
        if body.get("status") != CANCELLED:
            violations.append("status: must be CANCELLED")
        if not isinstance(body.get("forceUpdate"), bool):
            violations.append("forceUpdate: must be true or false")
        if violations:
            raise MaiaProblem(400, "Invalid pipeline termination request", tuple(violations))
        current = self.status_of(execution)
        if current in TERMINAL:
            raise MaiaProblem(409, f"Pipeline execution {execution_id} has already finished ({current})")
        if execution.cancel_requested is None:
            execution.cancel_requested = time.monotonic()
        execution.forced = execution.forced or body["forceUpdate"]
        return execution


MAIA_KEY = web.AppKey("maia_emulator_state", MaiaService)

"""``DuneEmulator``: the emulator as an object a test or a script starts and stops.

The aiohttp server runs on its own event loop in a background thread, so synchronous code
(``requests``, an Airflow task, a pytest test) can talk to it over real HTTP.

It runs SQL for whoever holds its key, on a machine that often holds real secrets, so it is a
sandbox: a random key and Maia secret unless given, loopback only unless ``allow_remote``,
locked-down DuckDB (``sql_engine``), foreign Host headers and cross-origin browser requests
refused (``host_check``), and bounded memory: finished executions, pipelines and results past
``max_executions`` / ``max_result_bytes`` are dropped, oldest first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from airflow_provider_dune.emulator.app import build_app
from airflow_provider_dune.emulator.catalog import Catalog
from airflow_provider_dune.emulator.executions import ExecutionService
from airflow_provider_dune.emulator.faults import FaultConfig, FaultInjector
from airflow_provider_dune.emulator.host_check import AllowedHosts
from airflow_provider_dune.emulator.maia_state import (
    DEFAULT_CLIENT_ID,
    DEFAULT_PROJECT_ID,
    MaiaService,
)
from airflow_provider_dune.emulator.pipelines import DEFAULT_NODE_VOCABULARY, PipelineService, vocabulary
from airflow_provider_dune.emulator.rate_limits import RateBudget, RatePlan, resolve_plan
from airflow_provider_dune.emulator.request_log import RequestLog
from airflow_provider_dune.emulator.routes_maia import MAIA_TOKEN_PATH
from airflow_provider_dune.emulator.sql_engine import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_STATEMENT_SECONDS,
    SqlEngine,
)
from airflow_provider_dune.emulator.state import EmulatorState
from airflow_provider_dune.validation import is_loopback

log = logging.getLogger(__name__)
# Enough for any test run or demo; a long-running emulator under load forgets the oldest.
DEFAULT_MAX_EXECUTIONS = 10_000
DEFAULT_MAX_RESULT_BYTES = 256 * 1024 * 1024
_T = TypeVar("_T")
FaultRules = FaultConfig | list[FaultConfig] | tuple[FaultConfig, ...] | None


class DuneEmulator:
    """A local Dune API on ``http://127.0.0.1:<port>/api``; see the package docstring."""

    def __init__(
        self,
        api_key: str | None = None,
        catalog: str | Path | Mapping[str, Any] | None = None,
        execution_seconds: float = 0.5,
        faults: FaultRules = None,
        port: int = 0,
        host: str = "127.0.0.1",
        team: str | None = None,
        max_result_rows: int | None = None,
        request_log_size: int = 100_000,
        maia_client_id: str = DEFAULT_CLIENT_ID,
        maia_client_secret: str | None = None,
        maia_execution_seconds: float | None = None,
        maia_token_seconds: int = 1800,
        plan: str | RatePlan | None = None,
        credit_limit: float | None = None,
        node_vocabulary: str = DEFAULT_NODE_VOCABULARY,
        *,
        allow_remote: bool = False,
        allowed_hosts: Iterable[str] = (),
        sql_memory_limit: str = DEFAULT_MEMORY_LIMIT,
        sql_timeout_seconds: float = DEFAULT_STATEMENT_SECONDS,
        max_executions: int = DEFAULT_MAX_EXECUTIONS,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    ) -> None:
        if execution_seconds < 0:
            raise ValueError("execution_seconds must be >= 0")
        if not sql_timeout_seconds > 0 or max_executions < 1 or max_result_bytes < 1:
            raise ValueError("sql_timeout_seconds, max_executions and max_result_bytes must be positive")
        # Checked here, so a typo fails at construction rather than in the server thread.
        self._plan = resolve_plan(plan)
        self._node_vocabulary = vocabulary(node_vocabulary)
        self._credit_limit = credit_limit
        if not is_loopback(host):
            if not allow_remote:
                raise ValueError(
                    f"host {host!r} is not a loopback address: anyone who can reach it and learns the key "
                    "could run SQL on this machine. Bind 127.0.0.1, or pass allow_remote=True "
                    "(--allow-remote) if you mean it."
                )
            log.warning(
                "The Dune emulator will listen on %s, reachable from other machines: keep its key secret.",
                host,
            )
        # The Maia side of the emulator (see maia_state); its runs last as long as Dune's by default.
        self._maia = MaiaService(
            client_id=maia_client_id,
            client_secret=maia_client_secret or _random_secret("maia-emulator-secret-"),
            execution_seconds=execution_seconds if maia_execution_seconds is None else maia_execution_seconds,
            token_seconds=maia_token_seconds,
            max_executions=max_executions,
        )
        # A well-known default would let any page or process that guesses it use the emulator.
        self._api_key = api_key or _random_secret("dune-emulator-key-")
        self._hosts = AllowedHosts(host, allowed_hosts)
        self._sql_memory_limit = sql_memory_limit
        self._sql_timeout_seconds = sql_timeout_seconds
        self._max_executions = max_executions
        self._max_result_bytes = max_result_bytes
        self._catalog_source = catalog
        self._team = team
        self._execution_seconds = execution_seconds
        self._max_result_rows = max_result_rows
        self._host = host
        self._requested_port = port
        self._port: int | None = None
        self._faults = FaultInjector(faults)
        self._request_log = RequestLog(request_log_size)
        self._state: EmulatorState | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> DuneEmulator:
        """Start serving; returns once the port accepts connections."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="dune-emulator", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"Dune emulator failed to start: {failure[0]}") from failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = self._loop = self._runner = None
        self._port = None

    def __enter__(self) -> DuneEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        catalog = Catalog.load(self._catalog_source, self._team)
        engine = SqlEngine(
            catalog.team, memory_limit=self._sql_memory_limit, statement_seconds=self._sql_timeout_seconds
        )
        executions = ExecutionService(
            engine,
            self._execution_seconds,
            self._max_result_rows,
            self._credit_limit,
            max_executions=self._max_executions,
            max_result_bytes=self._max_result_bytes,
        )
        state = EmulatorState(
            api_key=self._api_key,
            catalog=catalog,
            engine=engine,
            executions=executions,
            pipelines=PipelineService(
                executions, catalog, self._node_vocabulary, max_pipelines=self._max_executions
            ),
            faults=self._faults,
            request_log=self._request_log,
            hosts=self._hosts,
            rate_budget=RateBudget(self._plan) if self._plan is not None else None,
        )
        try:
            state.materialize_catalog_views()
            # No access log: it would cost more than the status handler itself under polling load.
            runner = web.AppRunner(build_app(state, self._maia), access_log=None, shutdown_timeout=1.0)
            await runner.setup()
            site = web.TCPSite(runner, self._host, self._requested_port, reuse_address=True)
            await site.start()
        except BaseException:
            engine.close()
            raise
        self._port = int(runner.addresses[0][1])
        self._state, self._runner = state, runner
        state.origin = self.url

    async def _shutdown(self) -> None:
        state, runner = self._state, self._runner
        if state is not None:
            await state.pipelines.shutdown()
            await state.executions.shutdown()
        if runner is not None:
            await runner.cleanup()
        if state is not None:
            state.engine.close()
        self._state = None

    # -- addresses and connection ------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator is not running; call start() first")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the provider's connection ``host`` takes: Dune's base URL ends in ``/api``."""
        return f"{self.url}/api"

    @property
    def api_key(self) -> str:
        return self._api_key

    def airflow_conn_json(self) -> str:
        """The value for ``AIRFLOW_CONN_DUNE_DEFAULT`` (Airflow accepts JSON connections)."""
        return json.dumps({"conn_type": "dune", "password": self._api_key, "host": self.base_url})

    def connection_uri(self) -> str:
        # JSON rather than an Airflow URI: a URI cannot carry a host that has a scheme and a path.
        return self.airflow_conn_json()

    def connection_env(self, conn_id: str = "dune_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.airflow_conn_json()}

    # -- Maia ----------------------------------------------------------------------------------

    @property
    def maia_base_url(self) -> str:
        """Stands for ``https://{region}.api.matillion.com/dpc``: a Maia connection's ``base_url`` extra."""
        return f"{self.url}/dpc"

    @property
    def maia_token_url(self) -> str:
        """Stands for Matillion's token endpoint: the ``token_url`` extra of a Maia connection."""
        return self.url + MAIA_TOKEN_PATH

    @property
    def maia_client_id(self) -> str:
        return self._maia.client_id

    @property
    def maia_client_secret(self) -> str:
        return self._maia.client_secret

    @property
    def maia_project_id(self) -> str:
        """The one emulated project (environments ``Dev`` and ``Prod``)."""
        return DEFAULT_PROJECT_ID

    @property
    def maia_execution_seconds(self) -> float:
        return self._maia.execution_seconds

    @maia_execution_seconds.setter
    def maia_execution_seconds(self, value: float) -> None:
        """Applies to Maia runs started afterwards."""
        self._maia.execution_seconds = value

    def maia_airflow_conn_json(self) -> str:
        """The value for ``AIRFLOW_CONN_MAIA_DEFAULT``."""
        return json.dumps(
            {
                "conn_type": "maia",
                "login": self.maia_client_id,
                "password": self.maia_client_secret,
                "extra": {"base_url": self.maia_base_url, "token_url": self.maia_token_url},
            }
        )

    def maia_connection_env(self, conn_id: str = "maia_default") -> dict[str, str]:
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.maia_airflow_conn_json()}

    def maia_execution_status(self, pipeline_execution_id: str) -> str:
        """Status of a Maia execution, read in-process (not logged, no faults)."""

        async def read() -> str:
            execution = self._maia.executions.get(pipeline_execution_id)
            if execution is None:
                raise KeyError(pipeline_execution_id)
            return self._maia.status_of(execution)

        result: str = self._call(read)
        return result

    def maia_revoke_tokens(self) -> None:
        """Every Maia token issued so far answers 401 from now on."""

        async def revoke() -> None:
            self._maia.revoke_tokens()

        self._call(revoke)

    @property
    def maia_tokens_issued(self) -> int:
        return self._maia.tokens_issued

    # -- test controls -----------------------------------------------------------------------

    @property
    def request_log(self) -> RequestLog:
        return self._request_log

    @property
    def faults(self) -> FaultConfig:
        """The first fault rule (no faults if there is none); assign to replace all rules."""
        rules = self._faults.rules
        return rules[0] if rules else FaultConfig()

    @faults.setter
    def faults(self, value: FaultRules) -> None:
        self._faults.set_rules(value)

    @property
    def fault_rules(self) -> tuple[FaultConfig, ...]:
        return self._faults.rules

    @fault_rules.setter
    def fault_rules(self, value: FaultRules) -> None:
        self._faults.set_rules(value)

    def clear_faults(self) -> None:
        self._faults.set_rules(None)

    @property
    def plan(self) -> RatePlan | None:
        """The rate plan whose per-minute budgets the API enforces (``None``: no limits)."""
        return self._plan

    @property
    def credits_used(self) -> float:
        """Credits charged so far: every execution started (query, SQL, refresh, pipeline node)."""
        return float(self._require_state().executions.credits_used)

    @property
    def execution_seconds(self) -> float:
        return self._execution_seconds

    @execution_seconds.setter
    def execution_seconds(self, value: float) -> None:
        """Applies to executions submitted afterwards."""
        self._execution_seconds = value
        if self._state is not None:
            self._state.executions.execution_seconds = value

    def _call(self, coroutine_factory: Any, timeout: float = 30.0) -> Any:
        if self._loop is None:
            raise RuntimeError("emulator is not running; call start() first")
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine_factory(), self._loop)
        return future.result(timeout)

    def _require_state(self) -> EmulatorState:
        if self._state is None:
            raise RuntimeError("emulator is not running; call start() first")
        return self._state

    def execution_status(self, execution_id: str) -> dict[str, Any]:
        """Status body of an execution, read in-process (not logged, no faults)."""

        async def read() -> dict[str, Any]:
            execution = self._require_state().executions.get(execution_id)
            if execution is None:
                raise KeyError(execution_id)
            return execution.to_status()

        result: dict[str, Any] = self._call(read)
        return result

    def pipeline_status(self, pipeline_execution_id: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            run = self._require_state().pipelines.get(pipeline_execution_id)
            if run is None:
                raise KeyError(pipeline_execution_id)
            return run.to_status()

        result: dict[str, Any] = self._call(read)
        return result

    def wait_for_execution(self, execution_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Block until the execution reaches a terminal state; returns its status body."""
        return self._wait(lambda: self.execution_status(execution_id), "is_execution_finished", timeout)

    def wait_for_pipeline(self, pipeline_execution_id: str, timeout: float = 30.0) -> dict[str, Any]:
        return self._wait(
            lambda: self.pipeline_status(pipeline_execution_id),
            "status",
            timeout,
            finished=lambda status: status == "completed",
        )

    @staticmethod
    def _wait(read: Any, key: str, timeout: float, finished: Any = bool) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status: dict[str, Any] = read()
            if finished(status[key]):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"not finished after {timeout}s: {status}")
            time.sleep(0.01)

    def execution_ids(self) -> list[str]:
        """Every execution started so far (query, SQL, refresh and pipeline nodes), oldest first:
        lets a test prove that a rejected or retried POST started nothing twice."""

        async def read() -> list[str]:
            return list(self._require_state().executions.executions)

        result: list[str] = self._call(read)
        return result

    def pipeline_execution_ids(self) -> list[str]:
        async def read() -> list[str]:
            return list(self._require_state().pipelines.pipelines)

        result: list[str] = self._call(read)
        return result

    def cancel_execution(self, execution_id: str) -> bool:
        async def cancel() -> bool:
            return self._require_state().executions.cancel(execution_id)

        return bool(self._call(cancel))

    def expire_execution(self, execution_id: str) -> bool:
        """Make a finished result ``QUERY_STATE_EXPIRED``, as if its 90 days had passed."""

        async def expire() -> bool:
            return self._require_state().executions.expire(execution_id)

        return bool(self._call(expire))

    def __repr__(self) -> str:
        where = self.url if self._port is not None else "not running"
        return f"DuneEmulator({where})"


def _random_secret(prefix: str) -> str:
    return prefix + secrets.token_hex(16)

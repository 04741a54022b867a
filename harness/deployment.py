"""How a real Airflow deployment starts, for the end-to-end tests and the benchmarks.

:func:`airflow_deployment` gives a throwaway ``AIRFLOW_HOME`` with a DAG folder, the
environment every process shares, and an :class:`AirflowDeployment` whose :meth:`boot`
migrates the metadata database and starts each long-running component as a subprocess in
its own process group, output to ``process-logs/<name>.log``. Two shapes:

* :data:`LOCAL`: SQLite and the LocalExecutor (Airflow 2: the SequentialExecutor), one
  triggerer; on Airflow 3 the DAG processor and the API server. Airflow's own default.
* :data:`DISTRIBUTED` (Airflow 3): PostgreSQL, the CeleryExecutor with a Redis broker and two
  Celery workers, two triggerers that split the deferred tasks (triggerer high availability),
  the scheduler, the DAG processor and the API server. PostgreSQL and Redis come from pip
  packages (:mod:`harness.servers`).

``ui=True`` serves the whole Airflow 3 UI and REST API from the API server (else only the
execution API that task processes report to), with connection testing enabled.

The Dune emulator is not part of a deployment: the caller passes the connections
(``AIRFLOW_CONN_*`` variables) that point at it. Everything is stopped on exit; on a failure
inside :func:`reported`, every log's tail is printed and the home is kept.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness.processes import kill_tree, stop_all
from harness.servers import free_port, package_binary, postgres_server, redis_server

AIRFLOW_VERSION = version("apache-airflow")
AIRFLOW_3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3
AIRFLOW = ("-m", "airflow")


@dataclass(frozen=True)
class Shape:
    """Which components a deployment runs."""

    name: str
    database: str  # "sqlite" or "postgres"
    executor: str
    triggerers: int = 1
    celery_workers: int = 0
    celery_concurrency: int = 4


LOCAL = Shape("local", database="sqlite", executor="LocalExecutor")
DISTRIBUTED = Shape(
    "distributed", database="postgres", executor="CeleryExecutor", triggerers=2, celery_workers=2
)


class DeploymentUnavailable(RuntimeError):
    """This machine cannot run the shape asked for; the message says why and what to install."""


@dataclass
class AirflowDeployment:
    """A throwaway Airflow home, the environment its processes share, and those processes."""

    home: Path
    env: dict[str, str]
    shape: Shape = LOCAL
    ui: bool = False
    api_port: int | None = None
    passed: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Processes the test killed on purpose: no longer expected to run, still reaped in stop().
    killed: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # Each triggerer's job id (the ``triggerer_id`` of the triggers it holds), by component name.
    triggerer_jobs: dict[str, int] = field(default_factory=dict)
    _engine: Any = None

    @property
    def log_dir(self) -> Path:
        return self.home / "process-logs"

    @property
    def database_url(self) -> str:
        return self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def triggerers(self) -> list[str]:
        """The triggerers' component names: ``triggerer``, or ``triggerer-1``, ``triggerer-2``..."""
        count = self.shape.triggerers
        return ["triggerer"] if count == 1 else [f"triggerer-{n}" for n in range(1, count + 1)]

    @property
    def workers(self) -> list[str]:
        return [f"worker-{n}" for n in range(1, self.shape.celery_workers + 1)]

    # -- processes -------------------------------------------------------------------------

    def airflow(self, *args: str, timeout: float = 120) -> None:
        """Run one CLI command to completion; its output goes to a log file (scanned for the key)."""
        name = "cli-" + "-".join(arg for arg in args if not arg.startswith("-"))[:60]
        with open(self.log_dir / f"{name}.log", "ab") as log:
            returncode = subprocess.run(
                [sys.executable, *AIRFLOW, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            ).returncode
        if returncode != 0:
            raise AssertionError(f"`airflow {' '.join(args)}` exited with {returncode}")

    def start(self, name: str, *args: str, launcher: tuple[str, ...] = AIRFLOW) -> None:
        """Start a long-running component in its own process group, output to ``<name>.log``.

        ``launcher``: what runs ``airflow`` (the benchmarks wrap it in a profiler).
        """
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, *launcher, *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_triggerer(self, name: str, *, launcher: tuple[str, ...] = AIRFLOW) -> int:
        """Start a triggerer; returns its job id once its job row runs (recorded in ``triggerer_jobs``)."""
        before = set(self.running_triggerer_jobs())
        # Triggerers on one machine would all serve their logs on one port: the API server
        # reads trigger logs from the shared home instead.
        extra = ("--skip-serve-logs",) if self.shape.triggerers > 1 else ()
        self.start(name, "triggerer", *extra, launcher=launcher)

        def new_job() -> int | None:
            fresh = set(self.running_triggerer_jobs()) - before
            return max(fresh) if fresh else None

        wait_for(self, f"{name}'s job row", lambda: new_job() is not None, timeout=120)
        job = new_job()
        assert job is not None
        self.triggerer_jobs[name] = job
        return job

    def start_worker(self, name: str) -> None:
        """A Celery worker; each has its own node name and pid file, as on separate hosts."""
        self.start(
            name,
            *("celery", "worker", "--celery-hostname", f"{name}@%h"),
            *("--concurrency", str(self.shape.celery_concurrency), "--skip-serve-logs"),
            *("--pid", str(self.home / f"{name}.pid"), "--without-mingle", "--without-gossip"),
        )

    def boot(
        self, *dag_ids: str, unpause: bool = True, triggerer_launcher: tuple[str, ...] = AIRFLOW
    ) -> None:
        """Migrate the database, start every component, wait for the DAGs, unpause them (``unpause``)."""
        self.airflow("db", "migrate", timeout=300)
        if AIRFLOW_3:
            apps = () if self.ui else ("--apps", "execution")
            self.start(
                "api-server",
                *("api-server", *apps, "--workers", "1"),
                *("--host", "127.0.0.1", "--port", str(self.api_port)),
            )
            self.start("dag-processor", "dag-processor")
        self.start("scheduler", "scheduler")
        for name in self.workers:
            self.start_worker(name)
        # One at a time, so that each job id is known to belong to its process.
        for name in self.triggerers:
            self.start_triggerer(name, launcher=triggerer_launcher)
        for dag_id in dag_ids:
            parsed = functools.partial(self.query, "SELECT 1 FROM serialized_dag WHERE dag_id = :d", d=dag_id)
            wait_for(self, f"DAG {dag_id} to be parsed into the database", parsed, timeout=120)
            if unpause:
                self.airflow("dags", "unpause", dag_id)
        if AIRFLOW_3:
            port = self.api_port
            assert port is not None
            wait_for(self, "the API server", lambda: api_server_ready(port), timeout=90)

    def kill(self, name: str, *, grace: float = 0.0) -> int:
        """SIGKILL a component's process group (and any child that left it); returns its exit code.

        With ``grace``, the component alone first gets SIGTERM and that many seconds to shut
        down cleanly (a triggerer then ends its job, so a new one takes its triggers at once).
        """
        process = self.processes.pop(name)
        returncode = kill_tree(process, grace=grace)
        self.killed.append(process)
        return returncode

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"airflow {name} exited early with {process.returncode}")

    def stop(self) -> None:
        stop_all([*self.processes.values(), *self.killed])
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- what the deployment wrote ---------------------------------------------------------

    def log_files(self) -> list[Path]:
        """Component output and everything Airflow logged under its home (task and trigger logs)."""
        return sorted(
            path
            for folder in (self.log_dir, self.home / "logs")
            if folder.exists()
            for path in folder.rglob("*")
            if path.is_file()
        )

    def logs_text(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in self.log_files())

    def diagnostics(self, lines: int = 40, components_only: bool = False) -> str:
        """The last lines of every log (``components_only``: not the task and trigger logs)."""
        paths = sorted(self.log_dir.glob("*.log")) if components_only else self.log_files()
        parts = []
        for path in paths:
            content = path.read_text(errors="replace").splitlines()
            parts.append(f"----- {path.relative_to(self.home)} (last {lines} of {len(content)} lines) -----")
            parts.extend(line[:600] for line in content[-lines:])
        return "\n".join(parts)

    def query(self, sql: str, **params: object) -> list[tuple[Any, ...]]:
        """Read the metadata database directly (``:name`` parameters): faster than a CLI per poll.

        Returns ``[]`` while the tables do not exist yet or SQLite is locked by a writer.
        """
        from sqlalchemy import create_engine, exc, text

        if self.shape.database == "sqlite" and not (self.home / "airflow.db").exists():
            return []
        if self._engine is None:
            url = self.database_url
            if self.shape.database == "sqlite":
                # Read-only: the test must never take a write lock from the scheduler.
                url = f"sqlite:///file:{self.home / 'airflow.db'}?mode=ro&uri=true"
            self._engine = create_engine(url, pool_pre_ping=True)
        try:
            with self._engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql), params)]
        except exc.OperationalError as error:
            if "no such table" in str(error) or "locked" in str(error):
                return []
            raise
        except exc.ProgrammingError as error:  # PostgreSQL: the table is not there yet
            if "does not exist" in str(error):
                return []
            raise

    def database_dump(self) -> bytes:
        """Every row of the metadata database as bytes, for a scan (SQLite: the file itself)."""
        if self.shape.database == "sqlite":
            return (self.home / "airflow.db").read_bytes()
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url)
        pg_dump = package_binary("pgserver", "pginstall/bin/pg_dump")
        return subprocess.run(
            [
                str(pg_dump),
                "--data-only",
                *("-h", str(url.host), "-p", str(url.port), "-U", "postgres"),
                str(url.database),
            ],
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout

    def task_states(self, dag_id: str) -> dict[str, str | None]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = :dag_id", dag_id=dag_id)
        return {str(task_id): state for task_id, state in rows}

    def run_state(self, dag_id: str) -> str | None:
        runs = self.query("SELECT state FROM dag_run WHERE dag_id = :dag_id", dag_id=dag_id)
        return str(runs[0][0]) if runs else None

    def wait_for_run(self, dag_id: str, timeout: float) -> str | None:
        """Poll the (single) DAG run until it ends; returns its final state, or None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.assert_running()
            state = self.run_state(dag_id)
            if state in ("success", "failed"):
                return state
            time.sleep(0.5)
        return self.run_state(dag_id)

    def xcom(self, dag_id: str, task_id: str, key: str = "return_value") -> str | None:
        rows = self.query(
            "SELECT value FROM xcom WHERE dag_id = :dag_id AND task_id = :task_id AND key = :key",
            dag_id=dag_id,
            task_id=task_id,
            key=key,
        )
        return text(rows[0][0]) if rows else None

    def deferred_map_indexes(self, dag_id: str) -> set[int]:
        """Map indexes of the mapped task instances that went through the triggerer.

        Each leaves a trigger log file (``.../map_index=<n>/attempt=<k>.log.trigger.<id>.log``).
        """
        folder = self.home / "logs" / f"dag_id={dag_id}"
        if not folder.exists():
            return set()
        return {
            int(path.parent.name.removeprefix("map_index="))
            for path in folder.rglob("*.log.trigger.*")
            if path.parent.name.startswith("map_index=")
        }

    def running_triggerer_jobs(self) -> list[int]:
        """Ids of the triggerer jobs that have not ended, oldest first."""
        rows = self.query(
            "SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running' ORDER BY id"
        )
        return [int(job_id) for (job_id,) in rows]


@contextlib.contextmanager
def airflow_deployment(
    dag_files: Mapping[str, str],
    *,
    connections: Mapping[str, str],
    shape: Shape = LOCAL,
    ui: bool = False,
    extra_env: Mapping[str, str] | None = None,
) -> Iterator[AirflowDeployment]:
    """A deployment whose DAG folder holds ``dag_files`` (file stem -> source), stopped on exit.

    ``connections``: ``AIRFLOW_CONN_*`` variables (e.g. ``DuneEmulator.connection_env()``).
    The home is removed only if the caller set ``passed``; otherwise it is kept for inspection.
    Raises :class:`DeploymentUnavailable` when this machine cannot run ``shape``.
    """
    from cryptography.fernet import Fernet

    if shape.executor == "CeleryExecutor" and not AIRFLOW_3:
        raise DeploymentUnavailable(f"the {shape.name} deployment needs Airflow 3, not {AIRFLOW_VERSION}")
    home = Path(tempfile.mkdtemp(prefix=f"airflow-dune-{shape.name}-"))
    dags = home / "dags"
    dags.mkdir()
    for stem, source in dag_files.items():
        (dags / f"{stem}.py").write_text(textwrap.dedent(source))
    # Nothing of the calling process's own Airflow setup (the test session's home) leaks in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__CORE__EXECUTOR=shape.executor,
        # A known key, so that a test can decrypt the trigger row and look inside.
        AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        # The scheduler and triggerer serve logs over HTTP: free ports rather than the fixed
        # defaults that another Airflow on this machine (or a parallel CI job) may hold.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        PYTHONUNBUFFERED="1",
        # Airflow 2's executors start task processes as `airflow tasks run ...` from PATH.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
        **connections,
    )
    deployment = AirflowDeployment(home=home, env=env, shape=shape, ui=ui)
    if AIRFLOW_3:
        # Task processes report to the API server's execution API, which must accept the
        # tokens the scheduler signs.
        deployment.api_port = free_port()
        env.update(
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{deployment.api_url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
        )
    elif shape.database == "sqlite":
        # Airflow 2 refuses the LocalExecutor on SQLite.
        env.update(AIRFLOW__CORE__EXECUTOR="SequentialExecutor")
    if ui:
        env.update(
            # Anyone who opens the UI is an admin: a throwaway deployment on 127.0.0.1.
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            AIRFLOW__API__BASE_URL=deployment.api_url,
        )
    deployment.log_dir.mkdir()
    try:
        with contextlib.ExitStack() as servers:
            if shape.database == "sqlite":
                env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home / 'airflow.db'}"
            else:
                database = servers.enter_context(postgres_server(home / "postgres"))
                broker = servers.enter_context(redis_server(home / "redis"))
                env.update(
                    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=database,
                    AIRFLOW__CELERY__BROKER_URL=broker,
                    AIRFLOW__CELERY__RESULT_BACKEND=f"db+{database}",
                    AIRFLOW__CORE__PARALLELISM=str(shape.celery_workers * shape.celery_concurrency),
                )
            env.update(extra_env or {})
            try:
                yield deployment
            finally:
                deployment.stop()
    finally:
        if deployment.passed:  # kept otherwise, for a look at the whole logs and database
            shutil.rmtree(home, ignore_errors=True)


@contextlib.contextmanager
def reported(dune: Any, deployment: AirflowDeployment) -> Iterator[None]:
    """On any failure, print the emulator's traffic and every log's tail; mark success otherwise."""
    try:
        yield
    except BaseException:
        requests = Counter(f"{entry.method} {entry.path} -> {entry.status}" for entry in dune.request_log)
        print(f"Dune emulator requests: {dict(requests)}")
        # With hundreds of tasks, their logs would bury the components' own.
        print(deployment.diagnostics(components_only=len(deployment.log_files()) > 60))
        print(f"Everything is kept in {deployment.home}")
        raise
    deployment.passed = True


def wait_for(deployment: AirflowDeployment, what: str, check: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        deployment.assert_running()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def api_server_ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/execution/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

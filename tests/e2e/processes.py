"""Real Airflow processes on a throwaway SQLite home, for the end-to-end tests.

An :class:`AirflowDeployment` is an Airflow home, the environment its processes share, and
the long-running components (scheduler, triggerer, and on Airflow 3 the DAG processor and
the API server's execution app) started as subprocesses, each in its own process group, with
output to ``process-logs/<name>.log``. The Dune emulator runs in the test process.

Processes are always stopped (process groups, and children that left their group), and on a
failure every log's tail is printed and the home is kept for a closer look.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import sqlite3
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

AIRFLOW_VERSION = version("apache-airflow")
AIRFLOW_3 = int(AIRFLOW_VERSION.split(".")[0]) >= 3
EXECUTE_PATH = "/api/v1/pipelines/execute"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def status_path(pipeline_id: str) -> str:
    return f"/api/v1/pipelines/executions/{pipeline_id}/status"


@dataclass
class AirflowDeployment:
    """A throwaway Airflow home, the environment its processes share, and those processes."""

    home: Path
    env: dict[str, str]
    api_port: int | None = None
    passed: bool = False
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Processes the test killed on purpose: no longer expected to run, still reaped in stop().
    killed: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log_dir(self) -> Path:
        return self.home / "process-logs"

    @property
    def db_path(self) -> Path:
        return self.home / "airflow.db"

    def airflow(self, *args: str, timeout: float = 120) -> None:
        """Run one CLI command to completion; its output goes to a log file (scanned for the key)."""
        name = "cli-" + "-".join(arg for arg in args if not arg.startswith("-"))[:60]
        with open(self.log_dir / f"{name}.log", "ab") as log:
            returncode = subprocess.run(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                start_new_session=True,
            ).returncode
        if returncode != 0:
            raise AssertionError(f"`airflow {' '.join(args)}` exited with {returncode}")

    def start(self, name: str, *args: str, launcher: tuple[str, ...] = ("-m", "airflow")) -> None:
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

    def boot(
        self, *dag_ids: str, unpause: bool = True, triggerer_launcher: tuple[str, ...] = ("-m", "airflow")
    ) -> None:
        """Migrate the database, start every component, wait for the DAGs, unpause them (``unpause``)."""
        self.airflow("db", "migrate", timeout=120)
        if AIRFLOW_3:
            self.start(
                "api-server",
                *("api-server", "--apps", "execution", "--workers", "1"),
                *("--host", "127.0.0.1", "--port", str(self.api_port)),
            )
            self.start("dag-processor", "dag-processor")
        self.start("scheduler", "scheduler")
        self.start("triggerer", "triggerer", launcher=triggerer_launcher)
        for dag_id in dag_ids:
            wait_for(
                self,
                f"DAG {dag_id} to be parsed into the database",
                lambda dag_id=dag_id: self.query("SELECT 1 FROM serialized_dag WHERE dag_id = ?", dag_id),
                timeout=90,
            )
            if unpause:
                self.airflow("dags", "unpause", dag_id)
        if AIRFLOW_3:
            port = self.api_port
            assert port is not None
            wait_for(self, "the API server", lambda: api_server_ready(port), timeout=60)

    def kill(self, name: str, *, grace: float = 0.0) -> int:
        """SIGKILL a component's process group (and any child that left it); returns its exit code.

        With ``grace``, the component alone first gets SIGTERM and that many seconds to shut
        down cleanly (a triggerer then ends its job, so a new one takes its triggers at once).
        """
        import psutil

        process = self.processes.pop(name)
        children: list[psutil.Process] = []
        with contextlib.suppress(psutil.NoSuchProcess):
            children = psutil.Process(process.pid).children(recursive=True)
        if grace:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        _signal_group(process.pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        returncode = process.wait(timeout=10)
        psutil.wait_procs(children, timeout=10)
        self.killed.append(process)
        return returncode

    def assert_running(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"airflow {name} exited early with {process.returncode}")

    def stop(self) -> None:
        """Terminate every process group and any child that left its group, then kill stragglers."""
        import psutil

        processes = [*self.processes.values(), *self.killed]
        # Task processes may start their own process group (Airflow 2's task runner does).
        strays: list[psutil.Process] = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                strays.extend(psutil.Process(process.pid).children(recursive=True))
        for process in processes:
            _signal_group(process.pid, signal.SIGTERM)
        for stray in strays:
            with contextlib.suppress(psutil.NoSuchProcess):
                stray.terminate()
        deadline = time.monotonic() + 10
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            _signal_group(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        for stray in strays:
            with contextlib.suppress(psutil.NoSuchProcess):
                stray.kill()
        psutil.wait_procs(strays, timeout=10)

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

    def diagnostics(self, lines: int = 40) -> str:
        parts = []
        for path in self.log_files():
            content = path.read_text(errors="replace").splitlines()
            parts.append(f"----- {path.relative_to(self.home)} (last {lines} of {len(content)} lines) -----")
            parts.extend(line[:600] for line in content[-lines:])
        return "\n".join(parts)

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the metadata database directly: faster than a CLI process per poll."""
        if not self.db_path.exists():
            return []
        connection = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        try:
            return connection.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc) or "locked" in str(exc):
                return []
            raise
        finally:
            connection.close()

    def task_states(self, dag_id: str) -> dict[str, str | None]:
        rows = self.query("SELECT task_id, state FROM task_instance WHERE dag_id = ?", dag_id)
        return {str(task_id): state for task_id, state in rows}

    def run_state(self, dag_id: str) -> str | None:
        runs = self.query("SELECT state FROM dag_run WHERE dag_id = ?", dag_id)
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
            "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = ?", dag_id, task_id, key
        )
        return text(rows[0][0]) if rows else None


@contextlib.contextmanager
def airflow_deployment(
    dune: Any, dag_files: Mapping[str, str], extra_env: Mapping[str, str] | None = None
) -> Iterator[AirflowDeployment]:
    """A deployment whose DAG folder holds ``dag_files`` (file stem -> source), stopped on exit.

    The home is removed only if the test set ``passed``; otherwise it is kept for inspection.
    """
    from cryptography.fernet import Fernet

    home = Path(tempfile.mkdtemp(prefix="airflow-dune-e2e-"))
    dags = home / "dags"
    dags.mkdir()
    for stem, source in dag_files.items():
        (dags / f"{stem}.py").write_text(textwrap.dedent(source))
    # Nothing of the test session's own Airflow setup (conftest's home) leaks in.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        # A known key, so that a test can decrypt the trigger row and look inside.
        AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        # The scheduler and triggerer serve logs over HTTP: free ports rather than the fixed
        # defaults that another Airflow on this machine (or a parallel CI job) may hold.
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        AIRFLOW_CONN_DUNE_DEFAULT=dune.airflow_conn_json(),
        PYTHONUNBUFFERED="1",
        # Airflow 2's executors start task processes as `airflow tasks run ...` from PATH.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
    )
    deployment = AirflowDeployment(home=home, env=env)
    if AIRFLOW_3:
        # Airflow 3 runs the LocalExecutor on SQLite; its task processes report to the API
        # server's execution API, which must accept the tokens the scheduler signs.
        deployment.api_port = free_port()
        env.update(
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{deployment.api_port}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(64),
        )
    else:
        # Airflow 2 refuses the LocalExecutor on SQLite.
        env.update(AIRFLOW__CORE__EXECUTOR="SequentialExecutor")
    env.update(extra_env or {})
    deployment.log_dir.mkdir()
    try:
        yield deployment
    finally:
        deployment.stop()
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
        print(deployment.diagnostics())
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

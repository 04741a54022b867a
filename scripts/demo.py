"""``make demo``: run the example pipeline DAG end to end and show what ran.

Without ``DUNE_API_KEY`` it starts the local Dune emulator; with it, the same DAG runs
against the real Dune API (set ``DUNE_DEMO_QUERY_ID`` to one of your queries). Airflow
gets a throwaway home on SQLite under ``.demo/``; ``airflow dags test`` runs the DAG,
including its deferred task (the trigger runs inline). Exits non-zero if the DAG fails.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / ".demo"
DAG_ID = "example_dune_pipeline_refresh"


def _airflow(args: list[str], env: dict[str, str], log: Path) -> int:
    with log.open("w") as out:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        ).returncode


def _xcoms(db: Path) -> dict[tuple[str, str], object]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, key, value FROM xcom WHERE dag_id = ?", (DAG_ID,)).fetchall()
    return {(task, key): json.loads(value) for task, key, value in rows}


def main() -> int:
    started = time.monotonic()
    home = DEMO_DIR / "airflow"
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    home.mkdir(parents=True)
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(REPO / "example_dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        # `dags test` runs the trigger inline, with no scheduler to race against: no event hold.
        AIRFLOW__DUNE__DEFERRAL_EVENT_HOLD="0",
    )
    emulator = None
    api_key = os.environ.get("DUNE_API_KEY", "").strip()
    if api_key:
        print("DUNE_API_KEY is set: running against the real Dune API.")
        env["AIRFLOW_CONN_DUNE_DEFAULT"] = json.dumps({"conn_type": "dune", "password": api_key})
    else:
        from airflow_provider_dune.emulator import DuneEmulator

        # 4 s a node: the 2-node pipeline outlasts defer_after (5 s), so the task really defers.
        emulator = DuneEmulator(execution_seconds=4.0).start()
        print(f"No DUNE_API_KEY: started the local Dune emulator at {emulator.base_url}")
        env["AIRFLOW_CONN_DUNE_DEFAULT"] = emulator.airflow_conn_json()
    os.environ["AIRFLOW_CONN_DUNE_DEFAULT"] = env["AIRFLOW_CONN_DUNE_DEFAULT"]
    try:
        print(f"Airflow home: {home} (SQLite)")
        if _airflow(["db", "migrate"], env, DEMO_DIR / "db-migrate.log") != 0:
            print(f"airflow db migrate failed; see {DEMO_DIR / 'db-migrate.log'}")
            return 1
        log = DEMO_DIR / "dags-test.log"
        print(f"Running: airflow dags test {DAG_ID}  (log: {log})")
        code = _airflow(["dags", "test", DAG_ID], env, log)
        xcoms = _xcoms(home / "airflow.db")
        pipeline_id = xcoms.get(("refresh_top_dex_projects", "pipeline_execution_id"))
        nodes = xcoms.get(("refresh_top_dex_projects", "node_executions")) or []
        if code != 0 or not nodes:
            print("\nThe DAG failed. Last lines of the log:")
            print("\n".join(log.read_text().splitlines()[-25:]))
            return code or 1
        print(f"\nDAG {DAG_ID} succeeded in {time.monotonic() - started:.0f}s.")
        print(f"Pipeline execution: {pipeline_id}")
        assert isinstance(nodes, list)
        for node in nodes:
            what = (
                f"query {node['query_id']}"
                if node["type"] == "query"
                else f"materialized view {node['name']}"
            )
            print(f"  node {node['node_id']}: {what:<52} execution {node['execution_id']}  {node['status']}")
        _print_rows(nodes[-1]["execution_id"])
        if emulator is not None:
            submits = emulator.request_log.count(method="POST")
            polls = emulator.request_log.count(method="GET", path_prefix="/api/v1/pipelines/executions/")
            print(f"\nRequests the provider made: {submits} submission(s), {polls} pipeline status poll(s).")
        return 0
    finally:
        if emulator is not None:
            emulator.stop()


def _print_rows(execution_id: str) -> None:
    from airflow_provider_dune.hooks.dune import DuneHook

    page = DuneHook().get_result_page(execution_id, limit=5)
    print(f"\nFirst rows of execution {execution_id}:")
    columns = page.column_names or (list(page.rows[0]) if page.rows else [])
    print("  " + " | ".join(f"{c:>14}" for c in columns))
    for row in page.rows:
        print("  " + " | ".join(f"{row.get(c)!s:>14}" for c in columns))


if __name__ == "__main__":
    sys.exit(main())

"""OpenLineage on a real DAG run: Airflow's OpenLineage listener, OpenLineage's own file
transport writing the events, and each task's COMPLETE event checked field by field.

The run happens in a child process: OpenLineage reads its transport once per process, and the
rest of the suite must not emit events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from airflow_provider_dune.emulator.executions import CREDITS_PER_TIER
from tests.airflow_runs import dags_folder
from tests.conftest import REPO_ROOT

VIEW = "dune.emulator.result_dex_daily_volume"
DAG_ID = "dune_openlineage"
DAG = f"""
import datetime
from airflow_provider_dune.operators.dune import (
    DuneRefreshMaterializedViewOperator,
    DuneRunPipelineOperator,
    DuneRunQueryOperator,
    DuneRunSQLOperator,
)
try:
    from airflow.sdk import DAG
except ImportError:
    from airflow import DAG

with DAG("{DAG_ID}", schedule=None, start_date=datetime.datetime(2024, 1, 1)) as dag:
    DuneRunPipelineOperator(task_id="pipeline", query_id=1001, poll_interval=0.05)
    DuneRunQueryOperator(task_id="query", query_id=1001, poll_interval=0.05)
    DuneRunSQLOperator(task_id="sql", sql="SELECT 1 AS one", poll_interval=0.05)
    DuneRefreshMaterializedViewOperator(task_id="refresh", name="{VIEW}", poll_interval=0.05)
"""
RUN = """
import json, os, pathlib
from tests.airflow_runs import run_dag_file
result = run_dag_file(pathlib.Path(os.environ["DAG_FILE"]), os.environ["DAG_ID"])
xcoms = {task + "." + key: value for (task, key), value in result.xcoms.items()}
# A file, not stdout: OpenLineage's listener logs to stdout from other threads, mid-line.
pathlib.Path(os.environ["RESULT_FILE"]).write_text(
    json.dumps({"states": result.task_states, "xcoms": xcoms}, default=str)
)
"""


def read_events(text: str) -> list[dict]:
    """The file transport appends one JSON document per event (not always one per line)."""
    decoder, events, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        event, at = decoder.raw_decode(text, at)
        events.append(event)
    return events


@pytest.mark.usefixtures("airflow_db")
def test_each_task_completes_with_its_views_sql_ids_and_credits(dune_emulator, tmp_path):
    path = dags_folder() / f"{DAG_ID}.py"
    path.write_text(textwrap.dedent(DAG))
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "dune-tests",
        "DAG_FILE": str(path),
        "DAG_ID": DAG_ID,
        "RESULT_FILE": str(tmp_path / "result.json"),
    }
    done = subprocess.run(
        [sys.executable, "-c", RUN],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "result.json").read_text())
    assert set(run["states"].values()) == {"success"}, run["states"]
    xcoms = run["xcoms"]

    events = read_events(events_file.read_text())
    complete = {
        e["job"]["name"].rsplit(".", 1)[-1]: e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"].startswith(f"{DAG_ID}.")
    }
    assert set(complete) == {"pipeline", "query", "sql", "refresh"}
    view = {"namespace": "dune://materialized-views", "name": VIEW}

    def names(datasets):
        return [{"namespace": d["namespace"], "name": d["name"]} for d in datasets]

    pipeline = complete["pipeline"]
    assert names(pipeline["outputs"]) == [view]  # the view the pipeline refreshed
    assert pipeline["inputs"] == []
    facet = pipeline["run"]["facets"]
    assert facet["externalQuery"]["externalQueryId"] == xcoms["pipeline.pipeline_execution_id"]
    assert facet["externalQuery"]["source"] == "dune"
    assert facet["dune"]["ids"] == {"pipeline_execution_id": xcoms["pipeline.pipeline_execution_id"]}
    assert facet["dune"]["credits_used"] == 2 * CREDITS_PER_TIER["medium"]
    assert [(e["node_id"], e["execution_id"], e["credits"]) for e in facet["dune"]["executions"]] == [
        (n["node_id"], n["execution_id"], CREDITS_PER_TIER["medium"])
        for n in xcoms["pipeline.node_executions"]
    ]
    assert facet["dune"]["_schemaURL"].startswith("urn:airflow-provider-dune:facets:RemoteRunFacet")

    query = complete["query"]
    assert names(query["inputs"]) == [view]  # what query 1001 reads, from Dune's lineage
    assert query["outputs"] == []
    assert query["run"]["facets"]["externalQuery"]["externalQueryId"] == xcoms["query.execution_id"]
    assert query["run"]["facets"]["dune"]["credits_used"] == CREDITS_PER_TIER["medium"]
    assert "sql" not in query["job"]["facets"]

    sql = complete["sql"]
    assert sql["job"]["facets"]["sql"]["query"] == "SELECT 1 AS one"
    assert sql["job"]["facets"]["sql"]["dialect"] == "trino"
    assert sql["run"]["facets"]["externalQuery"]["externalQueryId"] == xcoms["sql.execution_id"]
    assert sql["inputs"] == [] and sql["outputs"] == []

    refresh = complete["refresh"]
    assert names(refresh["outputs"]) == [view]
    assert refresh["run"]["facets"]["externalQuery"]["externalQueryId"] == xcoms["refresh.execution_id"]


def test_without_a_lineage_request_nothing_of_openlineage_is_imported():
    code = (
        "import sys\n"
        "import airflow_provider_dune.operators.dune, airflow_provider_dune.operators.maia\n"
        # Airflow's provider manager reads every installed provider's get_provider_info itself.
        "print(sorted(m for m in sys.modules if m.startswith(('openlineage', "
        "'airflow_provider_dune.lineage', 'airflow.providers.openlineage.extractors', "
        "'airflow.providers.openlineage.plugins'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"

"""Run a DAG file through real Airflow (``dag.test()``) and read back what it left behind.

Airflow 3 only runs DAGs that live in a bundle, so the file is written to the dags folder
first. Works on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import os
import runpy
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DagRunResult:
    state: str
    task_states: dict[str, str]
    xcoms: dict[tuple[str, str], Any]

    def xcom(self, task_id: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_id, key))


def dags_folder() -> Path:
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def run_dag_source(source: str, dag_id: str) -> DagRunResult:
    path = dags_folder() / f"{dag_id}.py"
    path.write_text(textwrap.dedent(source))
    return run_dag_file(path, dag_id)


def run_dag_file(path: Path, dag_id: str) -> DagRunResult:
    namespace = runpy.run_path(str(path))
    dag = next(v for v in namespace.values() if getattr(v, "dag_id", None) == dag_id and hasattr(v, "test"))
    dag_run = dag.test()
    return DagRunResult(
        state=str(getattr(dag_run.state, "value", dag_run.state)),
        task_states=_task_states(dag_id, dag_run.run_id),
        xcoms=_xcoms(dag_id, dag_run.run_id),
    )


def _task_states(dag_id: str, run_id: str) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=run_id).all()
        return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in rows}


def _xcoms(dag_id: str, run_id: str) -> dict[tuple[str, str], Any]:
    from airflow.utils.session import create_session

    try:
        from airflow.models.xcom import XComModel as model  # Airflow 3
    except ImportError:
        from airflow.models.xcom import XCom as model  # type: ignore[no-redef]
    with create_session() as session:
        rows = session.query(model).filter_by(dag_id=dag_id, run_id=run_id).all()
        # Both Airflow lines hand back the decoded value on the ORM row.
        return {(row.task_id, row.key): row.value for row in rows}

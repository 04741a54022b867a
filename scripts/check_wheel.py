"""``make dist``: run an example DAG with the provider installed from its wheel, alone.

Usage: ``python scripts/check_wheel.py <venv>``, run by the project's .venv, where ``<venv>``
holds Airflow and the wheel without extras. That venv gets only what a user's Airflow gets;
the emulator, which needs the ``emulator`` extra, runs here instead, in another process, as
Dune does for a user. So a module the provider imports but does not declare fails this check
instead of hiding behind the emulator's or the tests' dependencies.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAG_ID = "example_dune_pipeline_refresh"
# Present only through extras (emulator, parquet) or the test tools: none may be in the wheel's venv.
NOT_INSTALLED = ("duckdb", "pyarrow", "pytest", "requests_mock")

PROBE = f"""
import importlib.util, airflow_provider_dune
print(airflow_provider_dune.__file__)
print(",".join(m for m in {NOT_INSTALLED!r} if importlib.util.find_spec(m)))
"""


def main(venv: Path) -> int:
    from airflow_provider_dune.emulator import DuneEmulator

    python, airflow = venv / "bin" / "python", venv / "bin" / "airflow"
    with tempfile.TemporaryDirectory(prefix="dune-wheel-") as tmp:
        home = Path(tmp)
        # Run from outside the repository, so that nothing can import the source tree.
        probe = subprocess.run([python, "-c", PROBE], cwd=home, capture_output=True, text=True, check=True)
        module_file, extras = probe.stdout.splitlines()
        if not Path(module_file).resolve().is_relative_to(venv.resolve()):
            print(f"airflow_provider_dune comes from {module_file}, not from the wheel in {venv}.")
            return 1
        if extras:
            print(f"The wheel's venv has {extras}: it should hold the wheel without extras.")
            return 1
        dags = home / "dags"
        dags.mkdir()
        shutil.copy(REPO / "example_dags" / f"{DAG_ID}.py", dags)
        with DuneEmulator(execution_seconds=1.0) as emulator:
            env = {
                **os.environ,
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW_CONN_DUNE_DEFAULT": emulator.airflow_conn_json(),
            }
            for args in (["db", "migrate"], ["dags", "test", DAG_ID]):
                run = subprocess.run([airflow, *args], cwd=home, env=env, capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"airflow {' '.join(args)} failed:\n{(run.stdout + run.stderr)[-4000:]}")
                    return 1
        with sqlite3.connect(home / "airflow.db") as db:
            states = dict(db.execute("SELECT task_id, state FROM task_instance WHERE dag_id = ?", (DAG_ID,)))
    if not states or set(states.values()) != {"success"}:
        print(f"{DAG_ID} did not succeed from the wheel: {states}")
        return 1
    print(f"Wheel alone: {module_file}; {DAG_ID} ran against the emulator, tasks {states}.")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).absolute()))

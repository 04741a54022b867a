from __future__ import annotations

import json
import signal
import subprocess
import sys

import requests


def test_cli_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_dune.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--execution-seconds",
            "0",
            "--fault-429",
            "0.0",
            "--fault-seed",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        serving = process.stdout.readline()
        base_url = serving.rsplit(" ", 1)[-1].strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api")
        env_line = process.stdout.readline()
        assert env_line.startswith("export AIRFLOW_CONN_DUNE_DEFAULT=")
        conn = json.loads(env_line.split("=", 1)[1].strip().strip("'"))
        assert conn == {"conn_type": "dune", "password": "cli-key", "host": base_url}
        response = requests.get(base_url + "/v1/query/1000", headers={"X-Dune-Api-Key": "cli-key"}, timeout=5)
        assert response.json()["query_id"] == 1000
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0

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


def test_cli_without_a_key_prints_a_random_one_and_both_connections() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_provider_dune.emulator", "--port", "0", "--execution-seconds", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        dune = json.loads(process.stdout.readline().split("=", 1)[1].strip().strip("'"))
        maia = json.loads(process.stdout.readline().split("=", 1)[1].strip().strip("'"))
        key_line = process.stdout.readline()
        key = key_line.rsplit(" ", 1)[-1].strip()
        assert key_line.startswith("API key (random") and key == dune["password"]
        assert key != "dune-emulator-key" and maia["password"] != "maia-emulator-secret"
        answer = requests.get(base_url + "/v1/query/1000", headers={"X-Dune-Api-Key": key}, timeout=5)
        assert answer.status_code == 200
        token = requests.post(
            maia["extra"]["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": maia["login"],
                "client_secret": maia["password"],
            },
            timeout=5,
        )
        assert token.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0


def test_cli_allowed_host_is_answered() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airflow_provider_dune.emulator",
            "--port",
            "0",
            "--api-key",
            "cli-key",
            "--allowed-host",
            "dune-emulator",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().rsplit(" ", 1)[-1].strip()
        headers = {"X-Dune-Api-Key": "cli-key"}
        named = requests.get(
            base_url + "/v1/query/1000", headers={**headers, "Host": "dune-emulator"}, timeout=5
        )
        other = requests.get(base_url + "/v1/query/1000", headers={**headers, "Host": "elsewhere"}, timeout=5)
        assert (named.status_code, other.status_code) == (200, 403)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0

"""The emulator's Maia endpoints, over plain HTTP: token, bearer auth, problem+json, faults, log."""

from __future__ import annotations

import requests

from airflow_provider_dune.emulator import FaultConfig


def token(emulator, secret=None) -> requests.Response:
    return requests.post(
        emulator.maia_token_url,
        data={
            "grant_type": "client_credentials",
            "client_id": emulator.maia_client_id,
            "client_secret": secret or emulator.maia_client_secret,
            "audience": "https://api.matillion.com",
        },
        timeout=10,
    )


def bearer(emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(emulator).json()['access_token']}"}


def executions_url(emulator) -> str:
    return f"{emulator.maia_base_url}/v1/projects/{emulator.maia_project_id}/pipeline-executions"


def test_token_endpoint_checks_client_credentials(maia_emulator):
    good = token(maia_emulator)
    assert good.status_code == 200
    assert good.json()["expires_in"] == 1800 and good.json()["access_token"]
    bad = token(maia_emulator, secret="wrong")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_api_needs_a_valid_bearer_and_answers_problem_json(maia_emulator):
    url = executions_url(maia_emulator)
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answer = requests.post(
            url, json={"pipelineName": "p", "environmentName": "Dev"}, headers=headers, timeout=10
        )
        assert answer.status_code == 401
        assert answer.headers["Content-Type"].startswith("application/problem+json")
        assert answer.json()["title"] == "Unauthorized"
    assert maia_emulator.request_log.count(method="POST", path_prefix="/dpc/", status=401) == 2


def test_start_status_cancel_round_trip(maia_emulator):
    auth = bearer(maia_emulator)
    url = executions_url(maia_emulator)
    body = {"pipelineName": "p", "environmentName": "Dev", "scalarVariables": {"emulator_seconds": "30"}}
    pid = requests.post(url, json=body, headers=auth, timeout=10).json()["pipelineExecutionId"]
    assert requests.get(f"{url}/{pid}/status", headers=auth, timeout=10).json() == {"status": "RUNNING"}
    cancel = requests.patch(
        f"{url}/{pid}", json={"status": "CANCELLED", "forceUpdate": True}, headers=auth, timeout=10
    )
    assert cancel.json() == {"pipelineExecutionId": pid}
    assert requests.get(f"{url}/{pid}/status", headers=auth, timeout=10).json() == {"status": "CANCELLED"}
    again = requests.patch(
        f"{url}/{pid}", json={"status": "CANCELLED", "forceUpdate": False}, headers=auth, timeout=10
    )
    assert again.status_code == 409


def test_bad_requests_list_violations(maia_emulator):
    auth = bearer(maia_emulator)
    answer = requests.post(
        executions_url(maia_emulator), json={"environmentName": "Nope"}, headers=auth, timeout=10
    )
    assert answer.status_code == 400
    assert answer.json()["violations"] == [
        "pipelineName: must not be blank",
        "environmentName: no environment 'Nope' in this project",
    ]
    missing = requests.get(
        f"{executions_url(maia_emulator)}/00000000-0000-0000-0000-000000000000/status",
        headers=auth,
        timeout=10,
    )
    assert (missing.status_code, missing.json()["detail"]) == (404, "Pipeline Execution not Found")


def test_faults_apply_to_maia_paths_in_maia_error_format(maia_emulator):
    auth = bearer(maia_emulator)
    maia_emulator.faults = FaultConfig(sequence=("503", "429_retry_after", "504"), path_prefixes=("/dpc/",))
    url = f"{maia_emulator.maia_base_url}/v1/projects"
    first = requests.get(url, headers=auth, timeout=10)
    assert first.status_code == 503 and first.json()["detail"] == "Service temporarily unavailable"
    second = requests.get(url, headers=auth, timeout=10)
    assert second.status_code == 429 and second.headers["Retry-After"] == "1"
    third = requests.get(url, headers=auth, timeout=10)
    assert third.status_code == 504 and "html" in third.headers["Content-Type"]
    assert requests.get(url, headers=auth, timeout=10).status_code == 200
    assert [e.fault for e in maia_emulator.request_log.filter(path_prefix="/dpc/v1/projects")] == [
        "503",
        "429_retry_after",
        "504",
        None,
    ]


def test_hook_rides_out_faults_on_reads(maia_emulator):
    from airflow_provider_dune.hooks.maia import MaiaHook

    hook = MaiaHook(retry_delay=0.01)
    pid = hook.start_pipeline(maia_emulator.maia_project_id, "p", "Dev")
    maia_emulator.faults = FaultConfig(sequence=("504", "500", "429"), methods=("GET",))
    assert hook.get_pipeline_status(maia_emulator.maia_project_id, pid).status in ("RUNNING", "SUCCESS")
    assert maia_emulator.request_log.count(method="GET", path_prefix="/dpc/") == 4

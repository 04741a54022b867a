"""What a finished pipeline task and a view refresh show in Airflow 3's UI.

* The pipeline task's Details tab lists its extra link, "Dune query", to the query's page
  on dune.com; its XCom tab shows the pipeline execution id and every node's execution id
  and status.
* The materialized view refresh is an Asset event of ``dune://materialized-views/<view>``
  on the Assets page.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import DAG_ID, PIPELINE_TASK, VIEW

pytestmark = pytest.mark.browser

ASSET_URI = f"dune://materialized-views/{VIEW}"


def _task_url(deployment: Any, run_id: str, task_id: str) -> str:
    return f"{deployment.api_url}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}/tasks/{task_id}"


def test_pipeline_task_extra_link(page: Any, deployment: Any, run_id: str, screenshots: Path) -> None:
    page.goto(_task_url(deployment, run_id, PIPELINE_TASK) + "/details")
    link = page.get_by_role("link", name="Dune query")
    link.wait_for()
    assert link.get_attribute("href") == "https://dune.com/queries/1001"
    assert link.get_attribute("target") == "_blank"
    page.screenshot(path=str(screenshots / "task-extra-link.png"))


def test_pipeline_task_xcom(page: Any, deployment: Any, dune: Any, run_id: str, screenshots: Path) -> None:
    [pipeline_id] = dune.pipeline_execution_ids()
    nodes = dune.pipeline_status(pipeline_id)["node_executions"]
    execution_ids = [
        (node.get("query_execution_status") or node.get("materialized_view_refresh_status"))["execution_id"]
        for node in nodes
    ]
    page.goto(_task_url(deployment, run_id, PIPELINE_TASK) + "/xcom")
    table = page.locator("table")
    # Each value is fetched on its own once the table is there.
    table.get_by_text(pipeline_id).first.wait_for()
    page.get_by_role("button", name="Expand all extra JSON").click()
    for execution_id in execution_ids:
        table.get_by_text(execution_id).first.wait_for()
    page.screenshot(path=str(screenshots / "task-xcom.png"), full_page=True)
    text = table.inner_text()
    for key in ("return_value", "pipeline_execution_id", "node_executions", "dune_query_url"):
        assert key in text, (key, text)
    # The UI clips a long value (each node now carries its credits too): every node's execution
    # id is on the page (waited for above), and the node statuses are shown.
    assert all(execution_id in text for execution_id in execution_ids), text
    assert "completed" in text, text


def test_view_refresh_is_an_asset_event(page: Any, deployment: Any, screenshots: Path) -> None:
    page.goto(f"{deployment.api_url}/assets")
    page.get_by_role("link", name=ASSET_URI).first.click()
    events = page.get_by_text("1 Asset Event", exact=True)
    events.wait_for()
    panel = page.locator("body").inner_text()
    assert ASSET_URI in panel
    assert f"Source:\n{DAG_ID}" in panel or f"Source: {DAG_ID}" in panel, panel
    page.screenshot(path=str(screenshots / "asset-event.png"))

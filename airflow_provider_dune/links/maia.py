"""Operator extra links to Maia (Matillion Data Productivity Cloud)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

# A pipeline execution in Maia's observability dashboard (the UI's "Pipeline runs").
MAIA_EXECUTION_URL = "https://app.matillion.com/observability-dashboard/pipeline/{pipeline_execution_id}"


def maia_execution_url(pipeline_execution_id: str) -> str:
    return MAIA_EXECUTION_URL.format(pipeline_execution_id=pipeline_execution_id)


class MaiaPipelineRunLink(BaseOperatorLink):
    """Opens the task's pipeline execution in Maia; the URL is stored in XCom when the task runs."""

    name = "Maia pipeline run"
    key = "maia_pipeline_run_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=self.key, ti_key=ti_key) or ""

"""Operator extra links to dune.com."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, TaskInstanceKey

DUNE_QUERY_URL = "https://dune.com/queries/{query_id}"


class DuneQueryLink(BaseOperatorLink):
    """Opens the task's query on dune.com.

    The URL is stored in XCom when the task runs, because on Airflow 3 the webserver only
    sees the serialized operator, not its attributes.
    """

    name = "Dune query"
    key = "dune_query_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=self.key, ti_key=ti_key) or ""

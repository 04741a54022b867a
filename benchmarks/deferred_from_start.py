"""A task that defers straight from the scheduler onto the provider's real pipeline trigger.

:class:`WaitInTriggerer` sets ``start_from_trigger``: the scheduler writes its
``DunePipelineTrigger`` row itself instead of sending the task to a worker to defer, so
thousands of deferred tasks exist within a minute and only the triggerers are measured
(:mod:`benchmarks.distributed_triggerers`). The trigger's arguments are exactly what
``DunePipelineSensor(deferrable=True)`` would hand it. The triggerer and the DAG processor
import this module by its classpath (``benchmarks`` must be on the deployment's ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import StartTriggerArgs

from airflow_provider_dune.triggers.dune import DunePipelineTrigger

try:
    from airflow.sdk import BaseOperator
except ImportError:  # Airflow 2
    from airflow.models.baseoperator import BaseOperator  # type: ignore[no-redef]


class WaitInTriggerer(BaseOperator):
    """Waits for one Dune pipeline in the triggerer, from the task's first moment."""

    def __init__(self, *, pipeline_execution_id: str, poll_interval: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        classpath, trigger_kwargs = DunePipelineTrigger(
            pipeline_execution_id=pipeline_execution_id, poll_interval=poll_interval
        ).serialize()
        self.start_from_trigger = True
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=classpath,
            trigger_kwargs=trigger_kwargs,
            next_method="execute_complete",
            next_kwargs=None,
            timeout=None,
        )

    def execute_complete(self, context: Any, event: Any = None) -> Any:
        return event

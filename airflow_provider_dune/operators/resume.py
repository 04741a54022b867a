"""Where an operator records the run it started, so a retry reconnects instead of resubmitting.

The ids are written the moment the remote service returns them, and forgotten once the
wait ends (success, failure or timeout): only a try that died mid-wait (worker killed,
pod evicted, task retried by Airflow after a crash) leaves them behind for the next try.

* Airflow 3.3+: the task state store (``context["task_state_store"]``), which Airflow keeps
  per task instance across tries; the same store ``ResumableJobMixin`` uses.
* Older versions (2.11 to 3.2) have no such store; an Airflow Variable named after the task
  instance is the one place both a task and its retry can read and write there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

STORE_KEY = "airflow_provider_dune.remote_run"


class ResumeStore(Protocol):
    def get(self) -> dict[str, Any] | None: ...

    def put(self, ids: Mapping[str, Any]) -> None: ...

    def forget(self) -> None: ...


class _TaskStateStore:
    def __init__(self, store: Any) -> None:
        self.store = store

    def get(self) -> dict[str, Any] | None:
        value = self.store.get(STORE_KEY)
        return dict(value) if isinstance(value, Mapping) else None

    def put(self, ids: Mapping[str, Any]) -> None:
        self.store.set(STORE_KEY, dict(ids))

    def forget(self) -> None:
        self.store.delete(STORE_KEY)


class _VariableStore:
    def __init__(self, name: str) -> None:
        self.name = name

    def get(self) -> dict[str, Any] | None:
        from airflow.providers.common.compat.sdk import Variable

        # Positional: the keyword is default_var on 2.11 and default on 3.x.
        value = Variable.get(self.name, None, deserialize_json=True)
        return dict(value) if isinstance(value, Mapping) else None

    def put(self, ids: Mapping[str, Any]) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self.name,
            dict(ids),
            description="In-flight Dune/Maia run of this task instance; removed when its wait ends.",
            serialize_json=True,
        )

    def forget(self) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self.name)


class _NoStore:
    """Outside a real task run (unit tests calling execute directly): nothing to resume from."""

    def get(self) -> dict[str, Any] | None:
        return None

    def put(self, ids: Mapping[str, Any]) -> None:
        return None

    def forget(self) -> None:
        return None


def resume_store_for(context: Mapping[str, Any]) -> ResumeStore:
    store = context.get("task_state_store")
    if store is not None:
        return _TaskStateStore(store)
    ti = context.get("ti")
    parts = [getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id")]
    if not all(isinstance(p, str) for p in parts):
        return _NoStore()
    map_index = getattr(ti, "map_index", -1)
    return _VariableStore(f"{STORE_KEY}.{'.'.join(parts)}.{map_index}")  # type: ignore[arg-type]

"""Where an operator records the run it started, so a retry reconnects instead of resubmitting.

The record goes through three steps, each written before the step it guards:

1. *submitting*: written just before the request that starts work. A try that dies (or whose
   answer is lost) after this point leaves a record without ids: the run may exist on the
   remote service, and nobody knows its id. The next try refuses to submit blindly.
2. *ids*: written the moment the service returns them. A try that dies mid-wait leaves them
   behind; the next try reads them and reconnects.
3. forgotten: only once the run's end is known *and* every side effect of the task is done
   (XCom rows, Asset events), so a retry never starts billed work again because a step after
   the run failed.

Where the record lives:

* Airflow 3.3+: the task state store (``context["task_state_store"]``), which Airflow keeps
  per task instance across tries; the same store ``ResumableJobMixin`` uses.
* Older versions (2.11 to 3.2) have no such store; an Airflow Variable named after the task
  instance is the one place both a task and its retry can read and write there. Its key is
  bounded to Airflow's 250 characters (a digest replaces what does not fit).

``durable=False`` on an operator turns all of this off: every try submits anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

STORE_KEY = "airflow_provider_dune.remote_run"
# Airflow's Variable.key column is 250 characters.
MAX_VARIABLE_KEY = 250


@dataclass(frozen=True)
class RunRecord:
    """What an earlier try left behind.

    :param ids: the run's ids, or ``None`` when the submission was sent but its answer never
        arrived (the run may exist, under an id nobody knows).
    :param since: when the submission was recorded (ISO 8601, UTC), for the error message.
    """

    ids: dict[str, Any] | None
    since: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"ids": self.ids, "since": self.since}

    @classmethod
    def from_json(cls, value: Any) -> RunRecord | None:
        if not isinstance(value, Mapping):
            return None
        if "ids" not in value:
            # Written by 0.1.0, before the intent step: the value was the ids themselves.
            return cls(ids=dict(value)) if value else None
        ids = value.get("ids")
        return cls(ids=dict(ids) if isinstance(ids, Mapping) else None, since=str(value.get("since") or ""))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ResumeStore(Protocol):
    """Where the record lives; :meth:`where` tells a person how to find and remove it."""

    def read(self) -> Any: ...

    def write(self, value: dict[str, Any]) -> None: ...

    def forget(self) -> None: ...

    def where(self) -> str: ...


class RunJournal:
    """The record of one task instance's remote run, in its :class:`ResumeStore`."""

    def __init__(self, store: ResumeStore) -> None:
        self.store = store

    @property
    def durable(self) -> bool:
        return not isinstance(self.store, _NoStore)

    def get(self) -> RunRecord | None:
        return RunRecord.from_json(self.store.read())

    def submitting(self) -> None:
        """Recorded just before the request that starts work."""
        self.store.write(RunRecord(ids=None, since=_now()).to_json())

    def started(self, ids: Mapping[str, Any]) -> None:
        """Recorded the moment the service returned the run's ids."""
        self.store.write(RunRecord(ids=dict(ids), since=_now()).to_json())

    def forget(self) -> None:
        self.store.forget()

    def where(self) -> str:
        return self.store.where()


class _TaskStateStore:
    def __init__(self, store: Any, ti: Any) -> None:
        self.store = store
        self.ti = ti

    def read(self) -> Any:
        return self.store.get(STORE_KEY)

    def write(self, value: dict[str, Any]) -> None:
        self.store.set(STORE_KEY, value)

    def forget(self) -> None:
        self.store.delete(STORE_KEY)

    def where(self) -> str:
        parts = [getattr(self.ti, name, "?") for name in ("dag_id", "run_id", "task_id")]
        return (
            f"the task state store key {STORE_KEY!r} of this task instance (REST API: DELETE "
            f"/api/v2/dags/{parts[0]}/dagRuns/{parts[1]}/taskInstances/{parts[2]}/state-store/{STORE_KEY}"
            f"{_map_index_query(self.ti)})"
        )


def _map_index_query(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    return f"?map_index={map_index}" if isinstance(map_index, int) and map_index >= 0 else ""


class _VariableStore:
    def __init__(self, name: str) -> None:
        self.name = name

    def read(self) -> Any:
        from airflow.providers.common.compat.sdk import Variable

        # Positional: the keyword is default_var on 2.11 and default on 3.x.
        return Variable.get(self.name, None, deserialize_json=True)

    def write(self, value: dict[str, Any]) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.set(
            self.name,
            value,
            description="In-flight Dune/Maia run of this task instance; removed when the task is done.",
            serialize_json=True,
        )

    def forget(self) -> None:
        from airflow.providers.common.compat.sdk import Variable

        Variable.delete(self.name)

    def where(self) -> str:
        return f"the Airflow Variable {self.name!r} (Admin > Variables, or `airflow variables delete`)"


class _NoStore:
    """``durable=False``, or outside a real task run (unit tests calling execute directly)."""

    def read(self) -> Any:
        return None

    def write(self, value: dict[str, Any]) -> None:
        return None

    def forget(self) -> None:
        return None

    def where(self) -> str:
        return "nowhere (durable=False)"


def variable_name(dag_id: str, task_id: str, run_id: str, map_index: int) -> str:
    """The Variable that holds one task instance's record, never longer than Airflow allows."""
    name = f"{STORE_KEY}.{dag_id}.{task_id}.{run_id}.{map_index}"
    if len(name) <= MAX_VARIABLE_KEY:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:32]
    # Keep a readable head so a person can still tell the DAG in Admin > Variables.
    head = f"{STORE_KEY}.{dag_id}"[: MAX_VARIABLE_KEY - len(digest) - 1]
    return f"{head}.{digest}"


def journal_for(context: Mapping[str, Any], *, durable: bool = True) -> RunJournal:
    if not durable:
        return RunJournal(_NoStore())
    ti = context.get("ti")
    store = context.get("task_state_store")
    if store is not None:
        return RunJournal(_TaskStateStore(store, ti))
    parts = [getattr(ti, name, None) for name in ("dag_id", "task_id", "run_id")]
    if not all(isinstance(p, str) for p in parts):
        return RunJournal(_NoStore())
    dag_id, task_id, run_id = parts
    map_index = getattr(ti, "map_index", -1)
    name = variable_name(
        str(dag_id), str(task_id), str(run_id), map_index if isinstance(map_index, int) else -1
    )
    return RunJournal(_VariableStore(name))

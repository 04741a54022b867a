"""Small fakes shared by the tests."""

from __future__ import annotations

from typing import Any


class FakeTI:
    """The part of a task instance the operators use: XCom push (recorded) and pull (scripted).

    :param xcoms: what ``xcom_pull`` answers, keyed by ``(task_ids, key)``.
    """

    def __init__(self, xcoms: dict[tuple[Any, str], Any] | None = None) -> None:
        self.pushed: dict[str, Any] = {}
        self.xcoms = xcoms or {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))

"""Exceptions raised by the Dune provider.

Each message is written for the person reading the task log: it names what failed and,
where there is one, what to do about it. None of them ever contains the API key.
"""

from __future__ import annotations


class DuneError(Exception):
    """Base class of every error this provider raises on its own account."""


class DuneConfigurationError(DuneError, ValueError):
    """Bad input caught before any request was sent (pipeline nodes, performance tier, connection)."""


class DuneApiError(DuneError):
    """An HTTP call to the Dune API failed.

    :param status_code: HTTP status, or ``None`` when no response arrived (timeout, refused connection).
    :param message: Dune's ``{"error": ...}`` text, or a short description of the response.
    :param method: HTTP method of the failed request.
    :param path: API path of the failed request (never carries the key).
    :param may_have_started: for requests that start work, whether Dune may have started it anyway.
    """

    def __init__(
        self,
        status_code: int | None,
        message: str,
        *,
        method: str = "",
        path: str = "",
        may_have_started: bool = False,
    ) -> None:
        self.status_code = status_code
        self.message = message
        self.method = method
        self.path = path
        self.may_have_started = may_have_started
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no response"
        text = f"Dune API {where} failed ({status}): {self.message}"
        if self.status_code == 401:
            text += (
                " Check the API key: it is the password of the Dune connection "
                "(create one at dune.com > Settings > API)."
            )
        if self.may_have_started:
            text += (
                " The request may have started work on Dune; it was not retried so that nothing "
                "runs twice. Check the Dune UI before re-running."
            )
        return text


class DuneResponseError(DuneError):
    """Dune answered, but the body is not what the API documents (not JSON, missing fields)."""


class MaiaError(DuneError):
    """Base class of the errors raised for Maia (Matillion Data Productivity Cloud) calls.

    A :class:`DuneError` too, so the shared waiting loop and the operators treat both
    services' API failures the same way.
    """


class MaiaApiError(MaiaError):
    """An HTTP call to the Maia API (or its token endpoint) failed.

    Maia answers errors as ``application/problem+json``; its ``title``, ``detail`` and
    ``violations`` are kept as given so that the task log shows what Maia said.

    :param status_code: HTTP status, or ``None`` when no response arrived.
    :param title: the problem's ``title`` (or the OAuth ``error``), or a short description.
    :param detail: the problem's ``detail`` (or the OAuth ``error_description``).
    :param violations: the problem's ``violations``: one line per rejected field.
    :param method: HTTP method of the failed request.
    :param path: path of the failed request (never carries a token or secret).
    :param may_have_started: for a request that starts a pipeline, whether it may have started anyway.
    """

    def __init__(
        self,
        status_code: int | None,
        title: str,
        detail: str = "",
        violations: tuple[str, ...] = (),
        *,
        method: str = "",
        path: str = "",
        may_have_started: bool = False,
    ) -> None:
        self.status_code = status_code
        self.title = title
        self.detail = detail
        self.violations = tuple(violations)
        self.method = method
        self.path = path
        self.may_have_started = may_have_started
        super().__init__(str(self))

    @property
    def message(self) -> str:
        """Maia's own words: title, detail and violations on one line."""
        text = self.title
        if self.detail and self.detail != self.title:
            text = f"{text}: {self.detail}" if text else self.detail
        if self.violations:
            text = text.rstrip(".") + ". Violations: " + "; ".join(self.violations) + "."
        return text

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f"HTTP {self.status_code}" if self.status_code is not None else "no response"
        text = f"Maia API {where} failed ({status}): {self.message}"
        if self.status_code == 401:
            text += (
                " Check the client id (the connection's login) and secret (its password): create them "
                "in Maia under Profile & Account > API credentials."
            )
        elif self.status_code == 403:
            text += " The API credentials lack a role that allows this on the project."
        if self.may_have_started:
            text += (
                " The pipeline may have started anyway; it was not retried so that it does not run "
                "twice. Check the pipeline runs in Maia before re-running."
            )
        return text


class MaiaResponseError(MaiaError):
    """Maia answered, but the body is not what the API documents (not JSON, missing fields)."""

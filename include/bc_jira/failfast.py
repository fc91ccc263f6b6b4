"""Fail a task at once when no retry can help: bad configuration, a missing or incomplete connection, refused
credentials.

Without this, a ``bc_jira_config`` typo goes ``up_for_retry`` three times with back-off (the DAGs retry every
failure, for Jira's and BC's transient errors), each try ending in a long traceback with the one useful
message at its bottom. Here a known configuration or connection error becomes ``AirflowFailException`` (the
task fails, no retry spent) whose message is the problem list, logged first; anything else (HTTP 5xx, 429,
timeouts, a database that did not answer) propagates unchanged and keeps the DAG's retries.
"""

from __future__ import annotations

import functools
import logging
import textwrap
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

# Airflow's log view does not wrap lines by default: a fix at the end of a 200-character line is off screen.
WRAP_WIDTH = 100
P = ParamSpec("P")
R = TypeVar("R")


class ConnectionConfigError(ValueError):
    """An Airflow connection lacks a field or holds a value the connector cannot use; fix the connection."""


def _named(exc: BaseException, *names: str) -> bool:
    return any(c.__name__ in names for c in type(exc).__mro__)


def fatal_message(exc: BaseException) -> str | None:
    """The message to fail with when a retry cannot fix ``exc``; None when it may be transient."""
    from bc_jira.config import ConfigError
    from bc_jira.http import AuthError
    from bc_jira.setup.connect import ConnectError
    from bc_jira.token_cipher import TokenCryptoError

    if isinstance(exc, (ConfigError, ConnectError, ConnectionConfigError)):
        return str(exc)
    if _named(exc, "AirflowNotFoundException"):  # a connection (or Variable) that is not defined
        return f"{exc}; define it (Admin > Connections, or an AIRFLOW_CONN_* variable) and run the task again"
    if isinstance(exc, AuthError):
        return (
            f"{exc}. The credentials were refused even after a fresh token: check the connection's client id "
            "and secret (or API token) and the app's permissions, then run the task again"
        )
    if isinstance(exc, TokenCryptoError):
        return str(exc)
    return None


def wrapped(message: str, width: int = WRAP_WIDTH) -> str:
    """Each line of ``message`` wrapped at ``width``; a ``  - problem`` bullet continues under its text."""
    out: list[str] = []
    for line in message.splitlines() or [""]:
        bullet = len(line) - len(line.lstrip(" -")) if line.lstrip().startswith("- ") else 0
        out.extend(
            textwrap.wrap(
                line,
                width=width,
                subsequent_indent=" " * bullet,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [""]
        )
    return "\n".join(out)


def fail_fast(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a task entry point: known configuration and connection errors fail the task at once."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            message = fatal_message(exc)
            if message is None:
                raise
            message = wrapped(message)
            from airflow.sdk.exceptions import AirflowFailException

            log.error("%s\n(not retried: a retry cannot fix this)", message)
            raise AirflowFailException(message) from None

    return run

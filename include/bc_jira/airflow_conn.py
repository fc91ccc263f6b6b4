"""One way to read an Airflow connection for the whole package, failing closed.

Why not just ``BaseHook.get_connection``: Airflow walks its secrets backends and, when one of them raises
(a secrets manager unreachable, the metadata database down), logs that at debug level and moves on; when no
backend had the connection it reports ``AirflowNotFoundException`` -- the same answer as "not defined". The
connector must not treat "could not read it" as "not defined": the intake would accept BC notifications
without checking ``clientState``, a worker would silently switch to a local SQLite state store. So "not
found" is confirmed here by asking each backend of this process's chain directly; if any of them fails,
:class:`ConnectionUnavailable` is raised instead of returning None.

The hooks keep ``BaseHook.get_connection`` (the standard path): for them a missing connection is an error
anyway, so there is nothing to fail open.

Limit: inside a task, Airflow's Execution-API backend itself answers None for "not found" and for a transient
error alike (it does not raise), so there this check can only catch the other backends (a custom secrets
backend, which is where it matters most). The api-server (the webhook intake) has no such blind spot.
"""

from __future__ import annotations

import logging
import sys
from typing import Protocol, cast

log = logging.getLogger(__name__)


class AirflowConnection(Protocol):
    """The fields the connector reads (both ``airflow.models`` and ``airflow.sdk`` connections have them)."""

    conn_id: str
    conn_type: str
    host: str | None
    login: str | None
    password: str | None
    schema: str | None
    port: int | None

    @property
    def extra_dejson(self) -> dict: ...


class SecretsBackend(Protocol):
    def get_connection(self, conn_id: str) -> AirflowConnection | None: ...


class ConnectionUnavailable(RuntimeError):
    """The connection may exist but could not be read (secrets backend or metadata database failing)."""


def _not_found(exc: BaseException) -> bool:
    return any(c.__name__ == "AirflowNotFoundException" for c in type(exc).__mro__)


def _access_denied(exc: BaseException) -> bool:
    return any(c.__name__ == "AirflowSecretsBackendAccessDenied" for c in type(exc).__mro__)


def _in_task() -> bool:
    runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    return getattr(runner, "SUPERVISOR_COMMS", None) is not None


def _backends() -> list[SecretsBackend]:
    """The chain Airflow itself walks in this process: the task SDK's in a task, the server's elsewhere."""
    if _in_task():
        from airflow.sdk.execution_time.supervisor import ensure_secrets_backend_loaded

        return list(ensure_secrets_backend_loaded())
    from airflow.configuration import ensure_secrets_loaded

    return list(ensure_secrets_loaded())


def probe_backends(
    conn_id: str, backends: list[SecretsBackend]
) -> tuple[AirflowConnection | None, list[str]]:
    """Ask each backend directly: ``(connection, [])`` when one has it, else ``(None, failed backends)``.

    An empty failure list means "not defined" is the truth; any entry means "could not tell".
    """
    failed = []
    for backend in backends:
        try:
            conn = backend.get_connection(conn_id=conn_id)
        except Exception as exc:  # noqa: BLE001 - any failure means "could not tell"
            failed.append(f"{type(backend).__name__} ({type(exc).__name__})")
            continue
        if conn is not None:
            return conn, []  # defined after all (a backend recovered between the two looks)
    return None, failed


def _standard_lookup(conn_id: str) -> tuple[AirflowConnection | None, BaseException | None]:
    """Airflow's own lookup: the task SDK's, then (outside a task it may have no supervisor) the models'."""
    error: BaseException | None = None
    try:
        from airflow.sdk import BaseHook

        # the SDK's Connection has these fields; its declared types are looser than the Protocol's
        return cast("AirflowConnection", BaseHook.get_connection(conn_id)), None
    except Exception as exc:  # noqa: BLE001 - sorted below: not found, denied, or could not tell
        if _access_denied(exc):
            raise ConnectionUnavailable(
                f"connection {conn_id!r}: access denied by the secrets backend"
            ) from None
        if not _not_found(exc):
            error = exc
            log.debug(
                "connection %s via airflow.sdk: %s; trying the secrets backends", conn_id, type(exc).__name__
            )
    if _in_task() and error is None:
        return None, None
    try:
        from airflow.models.connection import Connection

        return Connection.get_connection_from_secrets(conn_id), None
    except Exception as exc:  # noqa: BLE001 - sorted below: not found, denied, or could not tell
        if _access_denied(exc):
            raise ConnectionUnavailable(
                f"connection {conn_id!r}: access denied by the secrets backend"
            ) from None
        return None, (None if _not_found(exc) else exc)


def get_connection(conn_id: str) -> AirflowConnection | None:
    """The connection when defined, None when no backend has it; :class:`ConnectionUnavailable` otherwise.

    The message names the failing backends and exception types only, never a connection's content.
    """
    conn, error = _standard_lookup(conn_id)
    if conn is not None:
        return conn
    if error is not None:
        raise ConnectionUnavailable(
            f"connection {conn_id!r} could not be read ({type(error).__name__}); failing closed"
        ) from None
    conn, failed = probe_backends(conn_id, _backends())
    if conn is not None:
        return conn
    if failed:
        raise ConnectionUnavailable(
            f"connection {conn_id!r} could not be read: {', '.join(failed)} failed; failing closed"
        )
    return None

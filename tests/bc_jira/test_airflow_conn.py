"""airflow_conn: "not defined" told apart from "could not be read" (fail closed), and the intake's answer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bc_jira import airflow_conn
from bc_jira.edges import intake, shared_secrets
from bc_jira.store import StateStore

CS = "client-state-secret-123"


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    st = StateStore.from_url(sqlite_url)
    st.ensure_schema()
    return st


def bc_item() -> dict[str, Any]:
    return {
        "subscriptionId": "sub-1",
        "clientState": CS,
        "resource": "api/v2.0/companies(6f1c7b9a-0000-4000-8000-000000000001)/vendors(v1)",
        "changeType": "updated",
        "lastModifiedDateTime": "2026-03-01T10:00:00Z",
    }


class _Backend:
    def __init__(self, conn: Any = None, fail: bool = False) -> None:
        self.conn, self.fail = conn, fail

    def get_connection(self, conn_id: str) -> Any:
        if self.fail:
            raise ConnectionError("vault unreachable")
        return self.conn


def test_probe_tells_not_defined_from_unreadable() -> None:
    assert airflow_conn.probe_backends("x", [_Backend(), _Backend()]) == (None, [])
    conn, failed = airflow_conn.probe_backends("x", [_Backend(fail=True), _Backend()])
    assert conn is None
    assert failed == ["_Backend (ConnectionError)"]
    assert airflow_conn.probe_backends("x", [_Backend(fail=True), _Backend("c")]) == ("c", [])


def test_secrets_backend_down_fails_closed(
    monkeypatch: pytest.MonkeyPatch, store: StateStore, airflow_db: Any
) -> None:
    """Airflow reports a failing backend as "not defined"; the intake answers 503 and stages nothing."""
    real = airflow_conn._backends
    monkeypatch.setattr(airflow_conn, "_backends", lambda: [_Backend(fail=True), *real()])
    shared_secrets.clear_secrets_cache()
    with pytest.raises(airflow_conn.ConnectionUnavailable, match="_Backend \\(ConnectionError\\)"):
        airflow_conn.get_connection("bc_jira_never_defined")
    res = intake.safely(
        lambda: intake.handle_bc_notification(
            {},
            json.dumps({"value": [bc_item()]}).encode(),
            client_state=shared_secrets.secrets_from_airflow().client_state,
            store=store,
        ),
        "test",
    )
    assert res.status == 503
    assert res.reason == "connection unavailable"
    assert store.count_pending() == 0
    monkeypatch.setattr(airflow_conn, "_backends", real)
    assert airflow_conn.get_connection("bc_jira_never_defined") is None  # all answered: truly undefined
    shared_secrets.clear_secrets_cache()


def test_access_denied_is_unavailable_not_undefined(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import BaseHook

    class AirflowSecretsBackendAccessDenied(PermissionError):
        pass

    def denied(conn_id: str) -> Any:
        raise AirflowSecretsBackendAccessDenied(conn_id)

    monkeypatch.setattr(BaseHook, "get_connection", staticmethod(denied))
    with pytest.raises(airflow_conn.ConnectionUnavailable, match="access denied"):
        airflow_conn.get_connection("bc_default")


def test_defined_connection_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_BC_T2", json.dumps({"conn_type": "business_central", "login": "app"}))
    conn = airflow_conn.get_connection("bc_t2")
    assert conn is not None
    assert conn.login == "app"

"""shared_secrets: read from the Airflow connections, cached briefly, never shown in a repr."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from bc_jira.edges import shared_secrets

if TYPE_CHECKING:
    import pytest


def test_secrets_repr_hides_values() -> None:
    s = shared_secrets.Secrets(
        client_state="a-secret", webhook_secret="b-secret", jira_client_secret="c-secret"
    )
    assert "secret'" not in repr(s)
    assert "a-secret" not in repr(s)


def test_secrets_from_airflow_env_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_BC_T", json.dumps({"conn_type": "business_central", "extra": {"client_state": "cs1"}})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_JIRA_T",
        json.dumps({"conn_type": "jira_cloud", "password": "cls", "extra": {"webhook_secret": "whs"}}),
    )
    shared_secrets.clear_secrets_cache()
    s = shared_secrets.secrets_from_airflow("bc_t", "jira_t")
    assert (s.client_state, s.webhook_secret, s.jira_client_secret) == ("cs1", "whs", "cls")
    shared_secrets.clear_secrets_cache()

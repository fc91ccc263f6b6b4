"""Every secret extra of our two connection types is redacted by Airflow's own masker and API model."""

from __future__ import annotations

import json

from airflow._shared.secrets_masker import redact, should_hide_value_for_key
from airflow.api_fastapi.core_api.datamodels.connections import ConnectionResponse

from bc_jira import secret_fields
from bc_jira.provider import get_provider_info


def test_the_secret_extras_are_the_forms_password_fields() -> None:
    declared = {
        ct["connection-type"]: {
            n for n, spec in ct["conn-fields"].items() if spec["schema"].get("format") == "password"
        }
        for ct in get_provider_info()["connection-types"]
    }
    assert {k: set(v) for k, v in secret_fields.SECRET_EXTRAS.items()} == declared
    assert declared["business_central"] == {"client_state"}
    assert declared["jira_cloud"] == {"webhook_secret", "refresh_token", "api_token"}


def test_registering_makes_airflows_masker_hide_client_state_and_is_idempotent() -> None:
    secret_fields.register_with_airflow()
    assert secret_fields.register_with_airflow() == []
    for name in secret_fields.ALL_SECRET_EXTRAS:
        assert should_hide_value_for_key(name), name
    from airflow.sdk._shared.secrets_masker import should_hide_value_for_key as sdk_hides

    assert sdk_hides("client_state")  # the task SDK's masker (tasks' logs) too


def test_the_api_answers_stars_for_every_secret_extra() -> None:
    """What GET /api/v2/connections/{id} returns (Airflow's own response model), after registration."""
    secret_fields.register_with_airflow()
    extra = {
        "tenant_id": "t-1",
        "client_state": "state-value-123",
        "webhook_secret": "hook-secret-1",
        "refresh_token": "rt-12345",
        "api_token": "tok-12345",
    }
    body = ConnectionResponse.model_validate(
        {
            "connection_id": "bc_default",
            "conn_type": "business_central",
            "description": None,
            "host": None,
            "login": "client-id",
            "schema": None,
            "port": None,
            "password": "client-secret",
            "extra": json.dumps(extra),
            "team_name": None,
        }
    )
    shown = json.loads(body.extra or "{}")
    assert shown == {**dict.fromkeys(extra, "***"), "tenant_id": "t-1"}
    assert body.password == "***"
    assert redact("state-value-123", "client_state") == "***"

"""The DAGs' task entry points: the public URL the remotes call, the refresh task's delivery watch."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira import tasks
from bc_jira.edges import webhooks
from bc_jira.store import StateStore

if TYPE_CHECKING:
    import pytest


def test_public_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BC_JIRA_PUBLIC_URL", "https://af.example.com/")
    assert tasks.notification_url() == "https://af.example.com/bc-jira/bc/notifications"
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_PUBLIC_URL", "https://hooks.example.com")
    assert tasks.jira_webhook_url() == "https://hooks.example.com/bc-jira/jira/webhook"


def test_refresh_task_logs_when_no_delivery_arrived_for_a_day(
    sandbox: Any,
    airflow_conns: dict[str, str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import json

    path = tmp_path / "state.db"
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    store = StateStore.from_url(f"sqlite:///{path}")
    url = "https://af.example.com/bc-jira/jira/webhook"

    def run() -> str:
        caplog.clear()
        with caplog.at_level("INFO", logger="bc_jira.tasks"):
            tasks.jira_webhook_task(url)
        return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    assert run() == ""  # just registered: watching starts now
    assert store.get_webhook(webhooks.APP_DELIVERIES)["watch_since"]
    day_ago = (datetime.now().astimezone() - timedelta(hours=25)).isoformat()
    store.put_webhook(webhooks.APP_DELIVERIES, watch_since=day_ago)
    text = run()
    assert "exists but no delivery arrived for 25 h" in text
    assert "the user who registered them" in text
    assert "app's owner" in text
    assert "Sharing" in text
    webhooks.note_delivery(store, "jwt")
    assert run() == ""
    store.put_webhook(webhooks.APP_DELIVERIES, last_delivery_at=day_ago)
    assert "the last one arrived" in run()

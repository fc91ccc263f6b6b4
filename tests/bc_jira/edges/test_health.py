"""The health report over real HTTP: edges after ensuring them, a revoked Jira grant turns it red."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bc_jira import tasks
from bc_jira.edges import health, subscriptions
from bc_jira.store import StateStore


def test_health_after_ensure(lc: dict[str, Any]) -> None:
    import requests

    subscriptions.ensure_bc_subscriptions(lc["bc"], lc["store"], tasks.notification_url(lc["base"]))
    body = requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is True
    assert len(body["bc_subscriptions"]) == 2
    assert all(s["left_s"] > 2 * 86400 for s in body["bc_subscriptions"])


def test_revoked_grant_turns_health_red(lc: dict[str, Any], tmp_path: Any) -> None:
    """The reported case: the grant was revoked (a rotated refresh token was reused), write-back failed three
    times, and /bc-jira/health still said ok. Now the refused refresh is recorded and health names it."""
    import requests

    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.http import AuthError
    from bc_jira.tokens import JiraTokenProvider

    sb, store = lc["sandbox"], lc["store"]
    assert lc["jira"].myself()["accountId"]  # a task exchanged the bootstrap token into the store
    assert requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()["ok"] is True
    sb.control("POST", "/_sandbox/clock", {"advance_s": 3600})
    # An old deployment (its own store) still holds the rotated-away bootstrap token and uses it.
    with pytest.raises(AuthError):
        JiraCloudHook(store=StateStore.from_url(f"sqlite:///{tmp_path}/other.db")).myself()
    assert sb.stats()["events"]["atlassian.grant.revoked"] == 1
    for _ in range(3):  # the write-back task's three tries
        JiraTokenProvider._process_cache.clear()
        with pytest.raises(AuthError, match="consent again"):
            JiraCloudHook(store=store).myself()
    body = requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is False
    assert body["jira_token"]["last_refresh_error"]["code"] == "invalid_grant"
    assert any("refused" in p and "/bc-jira/jira/oauth/start" in p for p in body["problems"])


# -- the sections (pure) ------------------------------------------------------------------------------------

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_subscriptions_section_flags_under_a_day_and_unknown_expiry() -> None:
    rows = [
        {"entity": "vendors", "expiration": "2026-03-03T12:00:00Z", "subscription_id": "a"},
        {"entity": "purchase_invoices", "expiration": "2026-03-02T06:00:00Z"},
        {"entity": "broken", "expiration": "not a time"},
    ]
    subs, problems = health.subscriptions_health(rows, T)
    assert [s["left_s"] for s in subs] == [2 * 86400, 18 * 3600, None]
    assert problems == [
        "BC subscription for purchase_invoices expires 2026-03-02T06:00:00Z",
        "BC subscription for broken expires unknown",
    ]


def test_webhooks_section_separates_delivery_rows_and_flags_under_a_week() -> None:
    rows = [
        {"name": "admin_deliveries", "last_delivery_at": "2026-03-01T11:00:00Z"},
        {"name": "app_deliveries", "last_delivery_at": None},
        {"name": "jira_transitions", "ids": [5], "expiration": "2026-03-07T12:00:00Z"},
    ]
    report, problems = health.webhooks_health(rows, T)
    assert report["jira_admin_webhook"] == {"last_delivery_at": "2026-03-01T11:00:00Z"}
    assert report["jira_app_webhook"] == {"last_delivery_at": None}
    assert [(h["name"], h["left_s"]) for h in report["jira_webhooks"]] == [("jira_transitions", 6 * 86400)]
    assert problems == ["Jira webhook jira_transitions expires 2026-03-07T12:00:00Z"]

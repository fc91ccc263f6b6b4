"""The health report over real HTTP: edges after ensuring them, a revoked Jira grant turns it red."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
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


def test_health_per_company(two_companies: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Two companies: each its watermarks' age, its subscriptions, its last error; ``status`` the worst."""
    import requests

    from bc_jira.store import AuditRow

    two = two_companies
    ids, key2, store = two["ids"], two["key2"], two["store"]
    tasks.bc_subscriptions_task(two["url"])
    t = datetime.fromisoformat(two["sandbox"].control("POST", "/_sandbox/clock", {"advance_s": 0})["now"])
    mark = (t.replace(microsecond=0) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    monkeypatch.setenv(f"AIRFLOW_VAR_BC_JIRA_WATERMARK_VENDORS__{key2.upper()}", mark)
    store.for_company(key2).audit(
        [AuditRow("vendors", "v-2", "create_failed", "V20000", None, error="Jira 400: field unknown")]
    )
    body = requests.get(f"{two['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is True  # the edges are fine ...
    assert body["status"] == "warn"  # ... but company 2 has a failing record
    assert len(body["bc_subscriptions"]) == 4
    first, second = body["companies"]
    assert (first["company_id"], first["key"], first["status"]) == (ids[0], "", "ok")
    assert (second["company_id"], second["key"], second["status"]) == (ids[1], key2, "warn")
    assert second["name"].startswith("CRONUS US")
    assert second["last_error"]["document_number"] == "V20000"
    assert "field unknown" in second["last_error"]["error"]
    assert first["last_error"] is None
    assert 7000 < second["watermarks"]["vendors"]["age_s"] < 7400
    assert first["watermarks"]["vendors"]["age_s"] is None  # never synced
    assert [len(c["bc_subscriptions"]) for c in body["companies"]] == [2, 2]
    assert all(s["left_s"] > 2 * 86400 for c in body["companies"] for s in c["bc_subscriptions"])
    # BC refuses company 2 and its subscriptions are gone: that company is red, the other still green
    two["sandbox"].control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": True})
    for s in two["bc"].list_subscriptions():
        if ids[1] in s["resource"]:
            assert two["bc"].delete_subscription(s["subscriptionId"])
    two["sandbox"].control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": False})
    with pytest.raises(RuntimeError, match="CRONUS US"):
        tasks.bc_subscriptions_task(two["url"])
    body = requests.get(f"{two['base']}/bc-jira/health", timeout=10).json()
    assert [c["status"] for c in body["companies"]] == ["ok", "error"]
    assert body["status"] == "error"
    assert any("failed" in p and "403" in p for p in body["companies"][1]["problems"])


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

"""Lifecycle against the sandbox, with the plugin app served over real HTTP (BC handshakes, deliveries).

A simulated 10 days (sandbox clock moved in 6-hour steps, the DAG logic run at each step): BC subscriptions
and the Jira webhook never lapse, a subscription BC deleted is recreated, duplicates are removed and renewals
never create one.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from bc_jira.edges import subscriptions
from bc_jira.store import StateStore
from tests.support.plugin_server import PluginServer, sandbox_secrets


@pytest.fixture
def lc(sandbox: Any, airflow_conns: dict[str, str], sqlite_url: str) -> Iterator[dict[str, Any]]:
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook

    sandbox.reset(vendors=6, invoices=6, orders=0)
    store = StateStore.from_url(sqlite_url)
    server = PluginServer(store, sandbox_secrets(sandbox))
    yield {
        "sandbox": sandbox,
        "store": store,
        "server": server,
        "bc": BusinessCentralHook(),
        "jira": JiraCloudHook(store=store),
        "base": server.url,
    }
    server.stop()


def sandbox_now(sandbox: Any) -> datetime:
    return datetime.fromisoformat(sandbox.control("POST", "/_sandbox/clock", {"advance_s": 0})["now"])


def per_resource(bc: Any) -> Counter:
    return Counter(subscriptions._norm_resource(s["resource"]) for s in bc.list_subscriptions())


def wait_for(pred: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("handshake", ["POST", "GET"])
def test_bc_subscriptions_ten_days(lc: dict[str, Any], handshake: str) -> None:
    """10 days in 6-hour steps; BC handshakes on create and on every renewal, with either method (Microsoft
    does not document it), and accepts a renewal only with the documented body."""
    sb, bc, store = lc["sandbox"], lc["bc"], lc["store"]
    sb.control("POST", "/_sandbox/bc/options", {"handshake_method": handshake})
    url = subscriptions.notification_url(lc["base"])
    now = lambda: sandbox_now(sb)  # noqa: E731
    first = subscriptions.ensure_bc_subscriptions(bc, store, url, now=now)
    assert sorted(o.action for o in first) == ["created", "created"]
    assert set(per_resource(bc).values()) == {1} and len(per_resource(bc)) == 2
    assert [o.action for o in subscriptions.ensure_bc_subscriptions(bc, store, url, now=now)] == ["ok", "ok"]
    actions: Counter = Counter()
    for step in range(1, 41):  # 40 x 6 h = 10 days
        sb.control("POST", "/_sandbox/clock", {"advance_s": 6 * 3600})
        if step == 13:  # BC deleted one (e.g. after failed deliveries)
            victim = next(s for s in bc.list_subscriptions() if s["resource"].endswith("/vendors"))
            assert bc.delete_subscription(victim["subscriptionId"])
        if step == 25:  # someone (a second scheduler, a retried create) made a duplicate
            bc.create_subscription(url, "purchaseInvoices")
            assert per_resource(bc)[max(per_resource(bc), key=per_resource(bc).get)] == 2
        outcomes = subscriptions.ensure_bc_subscriptions(bc, store, url, now=now)
        actions.update(o.action for o in outcomes)
        t = sandbox_now(sb)
        subs = bc.list_subscriptions()
        assert len(subs) == 2 and set(per_resource(bc).values()) == {1}, (step, subs)
        for s in subs:  # never lapses: always more than a day left after the run
            left = datetime.fromisoformat(s["expirationDateTime"].replace("Z", "+00:00")) - t
            assert left > timedelta(hours=24), (step, s)
        if step == 13:
            assert "recreated" in [o.action for o in outcomes]
        if step == 25:
            assert "deleted-duplicate" in [o.action for o in outcomes]
    assert actions["renewed"] >= 16 and actions["failed"] == 0
    assert actions["recreated"] == 1 and actions["deleted-duplicate"] == 1
    assert all(s["last_error"] is None for s in store.list_subscriptions())
    events = sb.stats()["events"]
    other = {"POST": "GET", "GET": "POST"}[handshake]
    # creates (2 + 1 recreated + 1 duplicate) and every renewal handshook the plugin with that method
    assert events[f"bc.handshake.{handshake.lower()}"] == 4 + actions["renewed"]
    assert events.get(f"bc.handshake.{other.lower()}", 0) == 0
    # and notifications still flow through the plugin into the store
    vendor = next(iter(bc.iter_records("vendors", top=1, page_size=1)))
    sb.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "vendors", "id": vendor["id"], "set": {"phoneNumber": "+1 555 0199"}},
    )
    wait_for(lambda: store.count_pending("bc.vendors"))


def test_client_state_rotation_pushed_on_renewal(lc: dict[str, Any]) -> None:
    sb, bc, store = lc["sandbox"], lc["bc"], lc["store"]
    url = subscriptions.notification_url(lc["base"])
    subscriptions.ensure_bc_subscriptions(bc, store, url, client_state="old-state")
    out = subscriptions.ensure_bc_subscriptions(bc, store, url)  # connection's client_state differs
    assert [o.action for o in out] == ["renewed", "renewed"]
    assert {s["clientState"] for s in bc.list_subscriptions()} == {sb.creds["bc_client_state"]}


def test_unreachable_url_fails_clearly(lc: dict[str, Any]) -> None:
    out = subscriptions.ensure_bc_subscriptions(
        lc["bc"], lc["store"], "http://127.0.0.1:9/bc-jira/bc/notifications"
    )
    assert [o.action for o in out] == ["failed", "failed"] and "validated" in out[0].detail
    assert lc["store"].list_subscriptions()[0]["last_error"]


@pytest.mark.parametrize("form", ["epoch_ms", "iso"])
def test_jira_webhook_never_lapses_never_duplicates(lc: dict[str, Any], form: str) -> None:
    """40 days, one run a day, with ``expirationDate`` in either documented form (int64 schema, or the
    spec examples' "2019-06-01T12:42:30.000+0000")."""
    from bc_jira.hooks.jira import expiration_ms

    sb, jira, store = lc["sandbox"], lc["jira"], lc["store"]
    sb.control("POST", "/_sandbox/jira/options", {"expiration_date_format": form})
    url = subscriptions.jira_webhook_url(lc["base"])
    jql = subscriptions.transitions_jql("FIN", ["Invoice", "Vendor"])
    now = lambda: sandbox_now(sb)  # noqa: E731
    assert subscriptions.ensure_jira_webhook(jira, store, url, jql, now=now).action == "registered"
    actions: Counter = Counter()
    for day in range(1, 41):
        sb.control("POST", "/_sandbox/clock", {"advance_s": 86400})
        if day == 5:  # a duplicate registration (the bug other tools have) is cleaned up
            jira.register_webhooks(url, [{"events": ["jira:issue_updated"], "jqlFilter": jql}])
        out = subscriptions.ensure_jira_webhook(jira, store, url, jql, now=now)
        actions[out.action] += 1
        hooks = jira.list_webhooks()
        t_ms = sandbox_now(sb).timestamp() * 1000
        assert len(hooks) == 1, (day, hooks)
        assert isinstance(hooks[0]["expirationDate"], str if form == "iso" else int)
        assert expiration_ms(hooks[0]["expirationDate"]) - t_ms > 7 * 86400 * 1000, day
        recorded = subscriptions._ts(store.get_webhook(subscriptions.JIRA_WEBHOOK_NAME)["expiration"])
        assert abs(recorded.timestamp() * 1000 - expiration_ms(hooks[0]["expirationDate"])) < 1000
    assert actions["refreshed"] >= 2 and actions.get("registered", 0) == 0
    # a status change is delivered with the app's bearer JWT (a REST webhook is never HMAC-signed),
    # verified by the plugin with the client secret and staged once
    issue = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "x"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    wait_for(lambda: store.count_pending("jira.transition"))
    ev = store.pending_events("jira.transition")[0]
    assert ev.payload["issue_key"] == issue["key"] and ev.payload["verified_by"] == "jwt"
    assert store.get_webhook(subscriptions.APP_DELIVERIES)["last_delivery_at"]
    assert [d["auth"] for d in sb.control("GET", "/_sandbox/jira/deliveries")] == ["jwt"]


def test_health_after_ensure(lc: dict[str, Any]) -> None:
    import requests

    subscriptions.ensure_bc_subscriptions(lc["bc"], lc["store"], subscriptions.notification_url(lc["base"]))
    body = requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is True and len(body["bc_subscriptions"]) == 2
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
    assert body["ok"] is False and body["jira_token"]["last_refresh_error"]["code"] == "invalid_grant"
    assert any("refused" in p and "/bc-jira/jira/oauth/start" in p for p in body["problems"])


def test_basic_auth_delivery_check_explains_admin_webhook(sqlite_url: str) -> None:
    store = StateStore.from_url(sqlite_url)
    out = subscriptions.check_basic_deliveries(store)
    text = out.detail.format(url="https://af.example.com/bc-jira/jira/webhook", jql="project = FIN")
    assert out.action == "no-deliveries"
    assert "System > WebHooks" in text and "webhook_secret" in text and "X-Hub-Signature" in text
    assert "https://af.example.com/bc-jira/jira/webhook" in text and "project = FIN" in text
    subscriptions.note_delivery(store, "hmac")
    assert subscriptions.check_basic_deliveries(store).action == "ok"
    later = lambda: datetime.now().astimezone() + timedelta(days=4)  # noqa: E731
    assert subscriptions.check_basic_deliveries(store, now=later).action == "quiet"
    subscriptions.note_delivery(store, "jwt")  # app JWT deliveries are not admin webhooks: no change
    assert store.get_webhook("admin_deliveries")["last_delivery_at"]


def test_jira_refusal_is_reported_with_the_jql(lc: dict[str, Any]) -> None:
    out = subscriptions.ensure_jira_webhook(
        lc["jira"],
        lc["store"],
        subscriptions.jira_webhook_url(lc["base"]),
        "project = FIN AND watchCount > 1",
    )
    assert out.action == "failed" and "watchCount" in out.detail
    assert lc["store"].get_webhook(subscriptions.JIRA_WEBHOOK_NAME)["last_error"]


def test_public_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BC_JIRA_PUBLIC_URL", "https://af.example.com/")
    assert subscriptions.notification_url() == "https://af.example.com/bc-jira/bc/notifications"
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_PUBLIC_URL", "https://hooks.example.com")
    assert subscriptions.jira_webhook_url() == "https://hooks.example.com/bc-jira/jira/webhook"


def test_app_delivery_notice_decides_from_rows() -> None:
    now = datetime.fromisoformat("2026-12-01T12:00:00+00:00")
    hook = {"ids": [1000]}
    assert subscriptions.app_delivery_notice(None, None, now) is None  # no webhook: nothing to expect
    assert (
        subscriptions.app_delivery_notice({"ids": []}, {"watch_since": "2026-11-01T00:00:00Z"}, now) is None
    )
    assert subscriptions.app_delivery_notice(hook, {}, now) is None  # not watched yet
    assert subscriptions.app_delivery_notice(hook, {"watch_since": "2026-12-01T00:00:00Z"}, now) is None
    quiet = subscriptions.app_delivery_notice(hook, {"watch_since": "2026-11-30T11:00:00Z"}, now)
    assert quiet and "25 h" in quiet and "none since 2026-11-30T11:00:00" in quiet
    assert "app's owner" in quiet and "Sharing" in quiet
    recent = {"watch_since": "2026-11-01T00:00:00Z", "last_delivery_at": "2026-12-01T08:00:00Z"}
    assert subscriptions.app_delivery_notice(hook, recent, now) is None
    old = {"last_delivery_at": "2026-11-29T12:00:00Z"}
    assert "the last one arrived 2026-11-29T12:00:00" in (
        subscriptions.app_delivery_notice(hook, old, now) or ""
    )


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
        with caplog.at_level("INFO", logger="bc_jira.edges.subscriptions"):
            subscriptions.jira_webhook_task(url)
        return "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")

    assert run() == ""  # just registered: watching starts now
    assert store.get_webhook(subscriptions.APP_DELIVERIES)["watch_since"]
    day_ago = (datetime.now().astimezone() - timedelta(hours=25)).isoformat()
    store.put_webhook(subscriptions.APP_DELIVERIES, watch_since=day_ago)
    text = run()
    assert "exists but no delivery arrived for 25 h" in text
    assert "the user who registered them" in text and "app's owner" in text and "Sharing" in text
    subscriptions.note_delivery(store, "jwt")
    assert run() == ""
    store.put_webhook(subscriptions.APP_DELIVERIES, last_delivery_at=day_ago)
    assert "the last one arrived" in run()


def test_admin_webhook_deliveries_verified_by_hmac(lc: dict[str, Any]) -> None:
    """An admin webhook (created as a Jira admin would, with the connection's webhook_secret) is accepted
    through X-Hub-Signature; one created with another secret is refused (401) and stages nothing."""
    sb, jira, store = lc["sandbox"], lc["jira"], lc["store"]
    url = subscriptions.jira_webhook_url(lc["base"])
    sb.control(
        "POST",
        "/_sandbox/jira/admin-webhooks",
        {"url": url, "jqlFilter": "project = FIN", "secret": sb.creds["webhook_secret"]},
    )
    issue = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "a"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    wait_for(lambda: store.count_pending("jira.transition"))
    (ev,) = store.pending_events("jira.transition")
    assert ev.payload["issue_key"] == issue["key"] and ev.payload["verified_by"] == "hmac"
    assert store.get_webhook("admin_deliveries")["last_delivery_at"]
    wrong = sb.control(
        "POST",
        "/_sandbox/jira/admin-webhooks",
        {"url": url, "jqlFilter": "project = FIN", "secret": "not-ours"},
    )
    sb.control("DELETE", f"/_sandbox/jira/admin-webhooks/{wrong['id'] - 1}")
    other = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "b"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": other["key"], "to": "Done"})
    refused = wait_for(
        lambda: [d for d in sb.control("GET", "/_sandbox/jira/deliveries") if d["status"] == 401]
    )
    assert refused[0]["auth"] == "hmac" and refused[0]["attempt"] == 0
    assert store.count_pending("jira.transition") == 1  # Jira does not retry a 401; nothing staged

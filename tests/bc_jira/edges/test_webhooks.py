"""The Jira webhook against the sandbox: never lapses, never duplicates; deliveries watched per kind."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bc_jira import tasks
from bc_jira.edges import webhooks
from bc_jira.store import StateStore
from bc_jira.timeutil import try_parse_ts
from tests.support.plugin_server import sandbox_now, wait_for


@pytest.mark.parametrize("form", ["epoch_ms", "iso"])
def test_jira_webhook_never_lapses_never_duplicates(lc: dict[str, Any], form: str) -> None:
    """40 days, one run a day, with ``expirationDate`` in either documented form (int64 schema, or the
    spec examples' "2019-06-01T12:42:30.000+0000")."""
    from bc_jira.hooks.jira import expiration_ms

    sb, jira, store = lc["sandbox"], lc["jira"], lc["store"]
    sb.control("POST", "/_sandbox/jira/options", {"expiration_date_format": form})
    url = tasks.jira_webhook_url(lc["base"])
    jql = webhooks.transitions_jql("FIN", ["Invoice", "Vendor"])
    now = lambda: sandbox_now(sb)  # noqa: E731
    assert webhooks.ensure_jira_webhook(jira, store, url, jql, now=now).action == "registered"
    actions: Counter = Counter()
    for day in range(1, 41):
        sb.control("POST", "/_sandbox/clock", {"advance_s": 86400})
        if day == 5:  # a duplicate registration (the bug other tools have) is cleaned up
            jira.register_webhooks(url, [{"events": ["jira:issue_updated"], "jqlFilter": jql}])
        out = webhooks.ensure_jira_webhook(jira, store, url, jql, now=now)
        actions[out.action] += 1
        hooks = jira.list_webhooks()
        t_ms = sandbox_now(sb).timestamp() * 1000
        assert len(hooks) == 1, (day, hooks)
        assert isinstance(hooks[0]["expirationDate"], str if form == "iso" else int)
        assert expiration_ms(hooks[0]["expirationDate"]) - t_ms > 7 * 86400 * 1000, day
        recorded = try_parse_ts(store.get_webhook(webhooks.JIRA_WEBHOOK_NAME)["expiration"])
        assert abs(recorded.timestamp() * 1000 - expiration_ms(hooks[0]["expirationDate"])) < 1000
    assert actions["refreshed"] >= 2
    assert actions.get("registered", 0) == 0
    # a status change is delivered with the app's bearer JWT (a REST webhook is never HMAC-signed),
    # verified by the plugin with the client secret and staged once
    issue = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "x"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    wait_for(lambda: store.count_pending("jira.transition"))
    ev = store.pending_events("jira.transition")[0]
    assert ev.payload["issue_key"] == issue["key"]
    assert ev.payload["verified_by"] == "jwt"
    assert store.get_webhook(webhooks.APP_DELIVERIES)["last_delivery_at"]
    assert [d["auth"] for d in sb.control("GET", "/_sandbox/jira/deliveries")] == ["jwt"]


def test_basic_auth_delivery_check_explains_admin_webhook(sqlite_url: str) -> None:
    store = StateStore.from_url(sqlite_url)
    out = webhooks.check_basic_deliveries(store)
    text = out.detail.format(url="https://af.example.com/bc-jira/jira/webhook", jql="project = FIN")
    assert out.action == "no-deliveries"
    assert "System > WebHooks" in text
    assert "webhook_secret" in text
    assert "X-Hub-Signature" in text
    assert "https://af.example.com/bc-jira/jira/webhook" in text
    assert "project = FIN" in text
    webhooks.note_delivery(store, "hmac")
    assert webhooks.check_basic_deliveries(store).action == "ok"
    later = lambda: datetime.now().astimezone() + timedelta(days=4)  # noqa: E731
    assert webhooks.check_basic_deliveries(store, now=later).action == "quiet"
    webhooks.note_delivery(store, "jwt")  # app JWT deliveries are not admin webhooks: no change
    assert store.get_webhook("admin_deliveries")["last_delivery_at"]


def test_jira_refusal_is_reported_with_the_jql(lc: dict[str, Any]) -> None:
    out = webhooks.ensure_jira_webhook(
        lc["jira"],
        lc["store"],
        tasks.jira_webhook_url(lc["base"]),
        "project = FIN AND watchCount > 1",
    )
    assert out.action == "failed"
    assert "watchCount" in out.detail
    assert lc["store"].get_webhook(webhooks.JIRA_WEBHOOK_NAME)["last_error"]


def test_app_delivery_notice_decides_from_rows() -> None:
    now = datetime.fromisoformat("2026-12-01T12:00:00+00:00")
    hook = {"ids": [1000]}
    assert webhooks.app_delivery_notice(None, None, now) is None  # no webhook: nothing to expect
    assert webhooks.app_delivery_notice({"ids": []}, {"watch_since": "2026-11-01T00:00:00Z"}, now) is None
    assert webhooks.app_delivery_notice(hook, {}, now) is None  # not watched yet
    assert webhooks.app_delivery_notice(hook, {"watch_since": "2026-12-01T00:00:00Z"}, now) is None
    quiet = webhooks.app_delivery_notice(hook, {"watch_since": "2026-11-30T11:00:00Z"}, now)
    assert quiet
    assert "25 h" in quiet
    assert "none since 2026-11-30T11:00:00" in quiet
    assert "app's owner" in quiet
    assert "Sharing" in quiet
    recent = {"watch_since": "2026-11-01T00:00:00Z", "last_delivery_at": "2026-12-01T08:00:00Z"}
    assert webhooks.app_delivery_notice(hook, recent, now) is None
    old = {"last_delivery_at": "2026-11-29T12:00:00Z"}
    assert "the last one arrived 2026-11-29T12:00:00" in (webhooks.app_delivery_notice(hook, old, now) or "")


def test_admin_webhook_deliveries_verified_by_hmac(lc: dict[str, Any]) -> None:
    """An admin webhook (created as a Jira admin would, with the connection's webhook_secret) is accepted
    through X-Hub-Signature; one created with another secret is refused (401) and stages nothing."""
    sb, jira, store = lc["sandbox"], lc["jira"], lc["store"]
    url = tasks.jira_webhook_url(lc["base"])
    sb.control(
        "POST",
        "/_sandbox/jira/admin-webhooks",
        {"url": url, "jqlFilter": "project = FIN", "secret": sb.creds["webhook_secret"]},
    )
    issue = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "a"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    wait_for(lambda: store.count_pending("jira.transition"))
    (ev,) = store.pending_events("jira.transition")
    assert ev.payload["issue_key"] == issue["key"]
    assert ev.payload["verified_by"] == "hmac"
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
    assert refused[0]["auth"] == "hmac"
    assert refused[0]["attempt"] == 0
    assert store.count_pending("jira.transition") == 1  # Jira does not retry a 401; nothing staged


# -- plan_webhook (pure) ------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://airflow.example.com/bc-jira/jira/webhook"
JQL = 'project = FIN AND issuetype IN ("Invoice")'


def hook_row(
    wid: int, *, left: timedelta = timedelta(days=30), jql: str = JQL, form: str = "ms"
) -> dict[str, Any]:
    exp = NOW + left
    expiration: Any = (
        int(exp.timestamp() * 1000) if form == "ms" else exp.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    )
    return {"id": wid, "jqlFilter": jql, "events": ["jira:issue_updated"], "expirationDate": expiration}


def test_plan_webhook_registers_when_none_and_marks_a_recreate() -> None:
    assert webhooks.plan_webhook([], [], URL, JQL, NOW) == webhooks.WebhookPlan("register")
    assert webhooks.plan_webhook([], [7], URL, JQL, NOW).recreate


@pytest.mark.parametrize("form", ["ms", "iso"])
def test_plan_webhook_keeps_or_refreshes_by_what_is_left(form: str) -> None:
    assert webhooks.plan_webhook([hook_row(1, form=form)], [1], URL, JQL, NOW).kind == "keep"
    assert webhooks.plan_webhook(
        [hook_row(1, left=timedelta(days=19), form=form)], [1], URL, JQL, NOW
    ).kind == ("refresh")


def test_plan_webhook_deletes_duplicates_and_our_stale_jql_but_not_others() -> None:
    remote = [
        hook_row(1, left=timedelta(days=10)),
        hook_row(2),
        hook_row(3, jql="project = OLD"),  # ours (id known) with an old JQL
        hook_row(4, jql="project = SOMEONE"),  # not ours
    ]
    p = webhooks.plan_webhook(remote, [1, 3], URL, JQL, NOW)
    assert p.kind == "keep"
    assert p.current is not None
    assert p.current["id"] == 2
    assert sorted(p.delete_ids) == [1, 3]


def test_plan_webhook_other_url_is_not_ours() -> None:
    elsewhere = {**hook_row(1), "url": "https://other.example.com/hook"}
    assert webhooks.plan_webhook([elsewhere], [], URL, JQL, NOW).kind == "register"

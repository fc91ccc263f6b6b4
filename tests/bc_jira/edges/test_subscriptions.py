"""BC subscriptions against the sandbox, with the web app served over real HTTP (BC handshakes, deliveries).

A simulated 10 days (sandbox clock moved in 6-hour steps, the DAG logic run at each step): subscriptions never
lapse, a subscription BC deleted is recreated, duplicates are removed and renewals never create one.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bc_jira import tasks
from bc_jira.edges import subscriptions
from tests.support.plugin_server import per_resource, sandbox_now, wait_for


@pytest.mark.parametrize("handshake", ["POST", "GET"])
def test_bc_subscriptions_ten_days(lc: dict[str, Any], handshake: str) -> None:
    """10 days in 6-hour steps; BC handshakes on create and on every renewal, with either method (Microsoft
    does not document it), and accepts a renewal only with the documented body."""
    sb, bc, store = lc["sandbox"], lc["bc"], lc["store"]
    sb.control("POST", "/_sandbox/bc/options", {"handshake_method": handshake})
    url = tasks.notification_url(lc["base"])
    now = lambda: sandbox_now(sb)  # noqa: E731
    first = subscriptions.ensure_bc_subscriptions(bc, store, url, now=now)
    assert sorted(o.action for o in first) == ["created", "created"]
    assert set(per_resource(bc).values()) == {1}
    assert len(per_resource(bc)) == 2
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
        assert len(subs) == 2, (step, subs)
        assert set(per_resource(bc).values()) == {1}, (step, subs)
        for s in subs:  # never lapses: always more than a day left after the run
            left = datetime.fromisoformat(s["expirationDateTime"].replace("Z", "+00:00")) - t
            assert left > timedelta(hours=24), (step, s)
        if step == 13:
            assert "recreated" in [o.action for o in outcomes]
        if step == 25:
            assert "deleted-duplicate" in [o.action for o in outcomes]
    assert actions["renewed"] >= 16
    assert actions["failed"] == 0
    assert actions["recreated"] == 1
    assert actions["deleted-duplicate"] == 1
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
    url = tasks.notification_url(lc["base"])
    subscriptions.ensure_bc_subscriptions(bc, store, url, client_state="old-state")
    out = subscriptions.ensure_bc_subscriptions(bc, store, url)  # connection's client_state differs
    assert [o.action for o in out] == ["renewed", "renewed"]
    assert {s["clientState"] for s in bc.list_subscriptions()} == {sb.creds["bc_client_state"]}


def test_unreachable_url_fails_clearly(lc: dict[str, Any]) -> None:
    out = subscriptions.ensure_bc_subscriptions(
        lc["bc"], lc["store"], "http://127.0.0.1:9/bc-jira/bc/notifications"
    )
    assert [o.action for o in out] == ["failed", "failed"]
    assert "validated" in out[0].detail
    assert lc["store"].list_subscriptions()[0]["last_error"]


# -- plan_subscriptions (pure) ------------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://airflow.example.com/bc-jira/bc/notifications"
RES = "/api/v2.0/companies(c1)/vendors"


def remote_sub(
    sid: str, *, left: timedelta | None = timedelta(days=3), url: str = URL, state: str | None = "cs"
) -> dict[str, Any]:
    exp = (NOW + left).isoformat().replace("+00:00", "Z") if left is not None else None
    return {
        "subscriptionId": sid,
        "resource": "api/v2.0/companies('c1')/vendors",
        "notificationUrl": url,
        "expirationDateTime": exp,
        "clientState": state,
    }


def plan(remote: list[dict[str, Any]], known_id: str | None = None, **kw: Any) -> list[tuple[str, str]]:
    known = [subscriptions.Known("vendors", RES, known_id)]
    actions = subscriptions.plan_subscriptions(remote, known, URL, NOW, client_state="cs", **kw)
    return [(a.kind, str((a.subscription or {}).get("subscriptionId"))) for a in actions]


def test_plan_creates_when_bc_has_none_and_marks_a_recreate() -> None:
    assert plan([]) == [("create", "None")]
    known = [subscriptions.Known("vendors", RES, "gone")]
    (action,) = subscriptions.plan_subscriptions([], known, URL, NOW)
    assert action.kind == "create"
    assert action.recreate


def test_plan_keeps_a_fresh_one_and_renews_an_expiring_one() -> None:
    assert plan([remote_sub("s1")]) == [("keep", "s1")]
    assert plan([remote_sub("s1", left=timedelta(hours=47))]) == [("renew", "s1")]
    assert plan([remote_sub("s1", left=None)]) == [("renew", "s1")]  # unknown expiry: renew to be sure


def test_plan_keeps_the_longest_living_and_deletes_the_other_duplicates() -> None:
    remote = [
        remote_sub("short", left=timedelta(days=1)),
        remote_sub("long"),
        remote_sub("mid", left=timedelta(days=2)),
    ]
    assert plan(remote) == [("delete-duplicate", "mid"), ("delete-duplicate", "short"), ("keep", "long")]


def test_plan_deletes_only_our_own_subscription_at_an_old_url() -> None:
    remote = [
        remote_sub("ours-old", url="https://old.example.com/x"),
        remote_sub("foreign", url="https://else/x"),
    ]
    assert plan(remote, known_id="ours-old") == [
        ("delete-old-url", "ours-old"),
        ("leave-foreign", "foreign"),
        ("create", "None"),
    ]


def test_plan_pushes_a_rotated_client_state_on_renewal() -> None:
    (action,) = subscriptions.plan_subscriptions(
        [remote_sub("s1", state="old")], [subscriptions.Known("vendors", RES)], URL, NOW, client_state="new"
    )
    assert action.kind == "renew"
    assert action.changes == {"clientState": "new"}
    (kept,) = subscriptions.plan_subscriptions(
        [remote_sub("s1", state=None)], [subscriptions.Known("vendors", RES)], URL, NOW, client_state="new"
    )
    assert kept.kind == "keep"  # no clientState on the row: nothing to compare, nothing to push


def test_plan_ignores_other_resources() -> None:
    other = {**remote_sub("inv"), "resource": "api/v2.0/companies(c1)/purchaseInvoices"}
    assert plan([other]) == [("create", "None")]

"""BC subscriptions, Jira webhooks and OAuth consent states."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bc_jira.store import StateStore


def test_subscriptions_and_webhooks(store: StateStore) -> None:
    assert store.get_subscription("purchaseInvoices") is None
    exp = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    store.put_subscription("purchaseInvoices", subscription_id="s1", expires=exp, etag='W/"1"')
    store.put_subscription("purchaseInvoices", etag='W/"2"')  # merge: other fields kept
    store.put_subscription("vendors", subscription_id="s2")
    sub = store.get_subscription("purchaseInvoices")
    assert (sub["resource"], sub["subscription_id"], sub["etag"]) == ("purchaseInvoices", "s1", 'W/"2"')
    assert datetime.fromisoformat(sub["expires"]) == exp  # JSON: datetimes come back as ISO-8601 text
    assert [s["resource"] for s in store.list_subscriptions()] == ["purchaseInvoices", "vendors"]
    store.delete_subscription("purchaseInvoices")
    assert [s["subscription_id"] for s in store.list_subscriptions()] == ["s2"]

    store.put_webhook("bc-jira", ids=[7], jql="project = FIN")
    assert store.get_webhook("bc-jira")["ids"] == [7]
    assert [w["name"] for w in store.list_webhooks()] == ["bc-jira"]
    store.delete_webhook("bc-jira")
    assert store.get_webhook("bc-jira") is None
    assert store.list_webhooks() == []


def test_oauth_state_pops_once_and_expires(store: StateStore) -> None:
    store.put_oauth_state("st-1", {"return_to": "/home"})
    assert store.pop_oauth_state("st-1") == {"return_to": "/home"}
    assert store.pop_oauth_state("st-1") is None  # replay refused
    assert store.pop_oauth_state("never") is None
    store.put_oauth_state("st-2", {"n": 2})
    time.sleep(0.05)
    assert store.pop_oauth_state("st-2", max_age_s=0.01) is None  # expired
    assert store.pop_oauth_state("st-2") is None  # and consumed

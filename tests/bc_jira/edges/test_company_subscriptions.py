"""BC subscriptions for several companies: the renewal task against the sandbox over real HTTP (BC handshakes
the plugin served by uvicorn, notifications flow back into the store), and the removal plan (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from bc_jira import tasks
from bc_jira.edges import company_subscriptions as cs
from bc_jira.edges import subscriptions
from bc_jira.store import StateStore
from tests.support.plugin_server import per_resource, wait_for

SETS = ("purchaseInvoices", "vendors")


def _resources(ids: list[str]) -> set[str]:
    return {f"companies({i})/{s.lower()}" for i in ids for s in SETS}


@pytest.fixture
def two(two_companies: dict[str, Any]) -> dict[str, Any]:
    return two_companies


def test_two_companies_get_a_set_each_and_a_change_in_company_2_is_staged_for_it(two: dict[str, Any]) -> None:
    sb, bc, store, ids = two["sandbox"], two["bc"], two["store"], two["ids"]
    out = tasks.bc_subscriptions_task(two["url"])
    assert sorted(o["action"] for o in out) == ["created"] * 4
    assert set(per_resource(bc)) == _resources(ids)
    assert set(per_resource(bc).values()) == {1}
    rows = {r["resource"]: r for r in store.list_subscriptions()}
    # the default company's rows are keyed as before companies; company 2's carry its key and name
    assert set(rows) == {f"/api/v2.0/companies({i})/{s}" for i in ids for s in SETS}
    mine = rows[f"/api/v2.0/companies({ids[1]})/vendors"]
    assert (mine["company_id"], mine["company"], mine["connection"]) == (ids[1], two["key2"], "bc_default")
    assert mine["company_name"].startswith("CRONUS US")
    assert rows[f"/api/v2.0/companies({ids[0]})/vendors"]["company"] == ""
    assert [o["action"] for o in tasks.bc_subscriptions_task(two["url"])] == ["ok"] * 4

    made = sb.control(
        "POST", "/_sandbox/bc/change", {"company": "CRONUS US", "entity": "purchaseInvoices", "create": {}}
    )["records"][0]
    wait_for(lambda: store.count_pending("bc.purchase_invoices"))
    (event,) = store.pending_events("bc.purchase_invoices")
    assert event.payload["company_id"] == ids[1]
    assert event.payload["record_id"] == made["id"].lower()
    # the core reads events per company: company 2 sees it, the default company does not
    assert [e.id for e in store.for_company(two["key2"], ids[1]).pending_events("bc.purchase_invoices")] == [
        event.id
    ]
    assert store.for_company("", ids[0]).pending_events("bc.purchase_invoices") == []


def test_a_refused_company_fails_alone_and_is_named(two: dict[str, Any]) -> None:
    sb, bc, ids = two["sandbox"], two["bc"], two["ids"]
    sb.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": False})
    with pytest.raises(RuntimeError) as err:
        tasks.bc_subscriptions_task(two["url"])
    msg = str(err.value)
    assert f"CRONUS US ({two['key2']}) (id {ids[1]} on bc_default)" in msg
    assert "403" in msg
    assert "permissions" in msg
    assert ids[0] not in msg  # the default company is fine ...
    assert set(per_resource(bc)) == _resources(ids[:1])  # ... and subscribed
    failed = [r for r in two["store"].list_subscriptions() if r.get("last_error")]
    assert {r["company_id"] for r in failed} == {ids[1]}
    # access back: the next run creates company 2's and keeps company 1's
    sb.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": True})
    out = tasks.bc_subscriptions_task(two["url"])
    assert sorted(o["action"] for o in out) == ["created", "created", "ok", "ok"]
    assert set(per_resource(bc)) == _resources(ids)


def _notify(two: dict[str, Any], company: str) -> requests.Response:
    item = {
        "subscriptionId": "s",
        "clientState": two["sandbox"].creds["bc_client_state"],
        "expirationDateTime": "2030-01-01T00:00:00Z",
        "resource": f"api/v2.0/companies({company})/vendors(11111111-2222-3333-4444-555555555555)",
        "changeType": "updated",
        "lastModifiedDateTime": "2030-01-01T00:00:00Z",
    }
    return requests.post(f"{two['base']}/bc-jira/bc/notifications", json={"value": [item]}, timeout=10)


def test_a_company_removed_from_config_loses_its_subscriptions_and_notifications(
    two: dict[str, Any],
) -> None:
    bc, store, ids = two["bc"], two["store"], two["ids"]
    tasks.bc_subscriptions_task(two["url"])
    assert _notify(two, ids[1]).status_code == 202  # configured: staged
    assert store.count_pending("bc.vendors") == 1
    two["configure"]({"id": ids[0]})
    out = tasks.bc_subscriptions_task(two["url"])
    assert sorted(o["action"] for o in out) == ["deleted-removed-company"] * 2 + ["ok"] * 2
    assert set(per_resource(bc)) == _resources(ids[:1])
    assert {r["company_id"] for r in store.list_subscriptions()} == {ids[0]}
    # its notifications are refused (BC then deletes a subscription left behind), nothing staged
    late = _notify(two, ids[1])
    assert late.status_code == 410
    assert ids[1] in late.json()["error"]
    assert store.count_pending("bc.vendors") == 1
    assert _notify(two, ids[0]).status_code == 202
    assert store.count_pending("bc.vendors") == 2
    # back to one company without ``companies``: the same two subscriptions, nothing re-created
    two["configure"](None)
    assert [o["action"] for o in tasks.bc_subscriptions_task(two["url"])] == ["ok", "ok"]


def test_an_existing_single_company_deployment_keeps_its_subscriptions_on_upgrade(
    two: dict[str, Any],
) -> None:
    """Rows and subscriptions made before companies (the connection's own company, rows without company
    fields) are the default company's: kept as they are, only company 2's are created."""
    bc, store, url = two["bc"], two["store"], two["url"]
    before = subscriptions.ensure_bc_subscriptions(bc, store, url)  # what the old task did
    assert [o.action for o in before] == ["created", "created"]
    old_rows = {r["resource"]: r["subscription_id"] for r in store.list_subscriptions()}
    assert all("company_id" not in r for r in store.list_subscriptions())
    handshakes = two["sandbox"].stats()["events"]["bc.handshake.post"]
    out = tasks.bc_subscriptions_task(url)
    assert sorted(o["action"] for o in out) == ["created", "created", "ok", "ok"]
    assert sorted(o["detail"] for o in out if o["action"] == "ok") == sorted(old_rows.values())
    rows = {r["resource"]: r for r in store.list_subscriptions()}
    for key, sid in old_rows.items():  # same rows, same subscriptions
        assert rows[key]["subscription_id"] == sid
        assert rows[key]["last_action"] == "ok"
    assert two["sandbox"].stats()["events"]["bc.handshake.post"] == handshakes + 2  # company 2's creates only
    assert len(bc.list_subscriptions()) == 4


# -- the removal plan (pure) ----------------------------------------------------------------------------

URL = "https://airflow.example.com/bc-jira/bc/notifications"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _sub(sid: str, company: str, entity: str = "vendors", url: str = URL) -> dict[str, Any]:
    exp = (NOW + timedelta(days=2)).isoformat()
    return {
        "subscriptionId": sid,
        "resource": f"api/v2.0/companies({company})/{entity}",
        "notificationUrl": url,
        "expirationDateTime": exp,
    }


def test_plan_removals_deletes_ours_of_other_companies_only() -> None:
    known = [subscriptions.Known("vendors", "/api/v2.0/companies(c1)/vendors")]
    remote = [
        _sub("keep", "c1"),
        _sub("gone-company", "c2"),
        _sub("foreign", "c3", url="https://else.example.com/x"),
        _sub("not-an-entity", "c2", entity="customers"),
    ]
    stored = [
        {"resource": "/api/v2.0/companies(c1)/vendors", "subscription_id": "keep"},
        {"resource": "/api/v2.0/companies(c2)/vendors", "subscription_id": "gone-company"},
        {"resource": "/api/v2.0/companies(c2)/purchaseInvoices", "subscription_id": "expired", "entity": "x"},
        {"resource": "bc_ca|/api/v2.0/companies(c9)/vendors", "connection": "bc_ca", "subscription_id": "o"},
    ]
    plan = cs.plan_removals(remote, stored, known, "bc_default", URL)
    assert [(r.key, (r.subscription or {}).get("subscriptionId")) for r in plan] == [
        ("/api/v2.0/companies(c2)/vendors", "gone-company"),
        ("/api/v2.0/companies(c2)/purchaseInvoices", None),  # BC forgot it already: the row goes
    ]
    # our own subscription at an old URL (its id is stored) goes too; someone else's never
    moved = [_sub("old-url", "c2", url="https://old.example.com/x"), _sub("other", "c2", url="https://o/x")]
    rows = [{"resource": "/api/v2.0/companies(c2)/vendors", "subscription_id": "old-url"}]
    plan = cs.plan_removals(moved, rows, known, "bc_default", URL)
    assert [(r.key, (r.subscription or {}).get("subscriptionId")) for r in plan] == [
        ("/api/v2.0/companies(c2)/vendors", "old-url")
    ]


def test_row_key_and_resource() -> None:
    assert cs.company_resource("C1", "vendors") == "/api/v2.0/companies(C1)/vendors"
    assert cs.row_key("bc_default", "/r") == "/r"
    assert cs.row_key("bc_ca", "/r") == "bc_ca|/r"


def test_store_rows_name_the_company(sqlite_url: str) -> None:
    """``subscribed_companies`` (the intake's list) reads rows from before companies by their resource."""
    from bc_jira.edges.intake import subscribed_companies

    st = StateStore.from_url(sqlite_url)
    assert subscribed_companies(st.list_subscriptions()) is None
    st.put_subscription("/api/v2.0/companies(AB-1)/vendors", entity="vendors")
    st.put_subscription("bc_ca|/api/v2.0/companies(c9)/vendors", company_id="C9", connection="bc_ca")
    assert subscribed_companies(st.list_subscriptions()) == {"ab-1", "c9"}

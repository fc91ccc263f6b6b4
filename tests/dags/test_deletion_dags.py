"""Records deleted in BC, end to end: real ``dag.test()`` runs against the sandbox over real HTTP, BC's
``deleted`` notifications delivered to the plugin app, the daily reconcile for polled purchase orders."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest

from bc_jira.store import StateStore
from tests.support.airflow_runs import clear_tasks, run_cleared
from tests.support.outbound import prepare_outbound, repo_dag, run_dag
from tests.support.plugin_server import PluginServer, sandbox_secrets

DELETED = "deleted in Business Central"
BC = "/v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})"


def _ok(dr: Any) -> None:
    from airflow.utils.state import DagRunState

    assert dr.state == DagRunState.SUCCESS, [(ti.task_id, ti.state) for ti in dr.get_task_instances()]


@pytest.fixture
def deletions(
    sandbox: Any, airflow_conns: dict[str, str], airflow_db: Any, monkeypatch: Any, tmp_path: Any
) -> Any:
    from airflow.models.variable import Variable

    from bc_jira.sync import dag

    env = prepare_outbound(
        sandbox,
        airflow_conns,
        monkeypatch,
        tmp_path,
        batch_size=10,
        search_settle_seconds=2,
        config={"deleted_transition": "Rejected"},
        vendors=6,
        invoices=8,
        orders=6,
    )
    monkeypatch.setitem(dag.DEFAULT_ARGS, "retries", 1)
    db = env["state_db"]["host"]
    store = StateStore.from_url(f"sqlite:///{db}")
    server = PluginServer(store, sandbox_secrets(sandbox))
    Variable.set("bc_jira_public_url", server.url)
    yield {"sb": sandbox, "store": store, "fields": env["fields"]}
    server.stop()
    Variable.delete("bc_jira_public_url")


def _comments(issue_key: str, needle: str) -> int:
    from bc_jira.hooks.jira import JiraCloudHook

    texts = [
        "".join(n.get("text", "") for p in c["body"]["content"] for n in p.get("content", []))
        for c in JiraCloudHook().iter_comments(issue_key, newest_first=False)
    ]
    return sum(needle in t for t in texts)


def _status(issue_key: str) -> str:
    from bc_jira.hooks.jira import JiraCloudHook

    return str(JiraCloudHook().get_issue(issue_key, fields=["status"])["fields"]["status"]["name"])


def _delete_in_bc(sb: Any, entity_set: str, record_id: str) -> None:
    """``DELETE`` with ``If-Match``, as an integration (or BC's own UI) would."""
    from bc_jira.hooks.business_central import BusinessCentralHook

    bc = BusinessCentralHook()
    etag = bc.get_record(entity_set, record_id)["@odata.etag"]
    path = f"companies({sb.creds['company_id']})/{entity_set}({record_id})"
    assert bc.client.request("DELETE", path, headers={"If-Match": etag}).status_code == 204


def _wait_staged(store: StateStore, kind: str, record_id: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for ev in store.pending_events(kind):
            if ev.payload.get("changeType") == "deleted" and ev.payload.get("record_id") == record_id:
                return
        time.sleep(0.2)
    raise AssertionError(f"no deleted notification staged for {record_id}")


def test_deleted_invoice_and_vendor_notified_commented_once_moved_and_never_written_back(
    deletions: Any,
) -> None:
    from bc_jira.edges.intake import KIND_JIRA_TRANSITION

    sb, store = deletions["sb"], deletions["store"]
    vendor = sb.control("POST", "/_sandbox/bc/change", {"entity": "vendors", "create": {"blocked": "All"}})
    vendor_id = vendor["records"][0]["id"]
    _ok(run_dag("bc_subscriptions_renewal"))
    for dag_id in ("bc_purchase_invoices_to_jira", "bc_vendors_to_jira"):
        _ok(run_dag(dag_id))
    draft = next(
        r
        for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    )
    inv_link = store.get_links("purchase_invoices", [draft["id"]])[draft["id"]]
    ven_link = store.get_links("vendors", [vendor_id])[vendor_id]
    assert inv_link.state == ven_link.state == "linked"

    _delete_in_bc(sb, "purchaseInvoices", draft["id"])
    sb.control("POST", "/_sandbox/bc/change", {"entity": "vendors", "id": vendor_id, "delete": True})
    _wait_staged(store, "bc.purchase_invoices", draft["id"])
    _wait_staged(store, "bc.vendors", vendor_id)
    runs = {d: run_dag(d) for d in ("bc_purchase_invoices_to_jira", "bc_vendors_to_jira")}
    for dr in runs.values():
        _ok(dr)
    for entity, link in (("purchase_invoices", inv_link), ("vendors", ven_link)):
        assert store.get_links(entity, [link.bc_id])[link.bc_id].state == "deleted"
        assert _comments(str(link.issue_key), DELETED) == 1
        assert _status(str(link.issue_key)) == "Rejected"  # deleted_transition
        actions = [a.action for a in store.query_audit(bc_id=link.bc_id) if a.action.startswith("deleted")]
        assert sorted(actions) == ["deleted", "deleted_comment"]
    assert not [e for e in store.pending_events() if e.payload.get("changeType") == "deleted"]

    # a clear of the task (and a whole new run) makes no second comment
    dr = runs["bc_purchase_invoices_to_jira"]
    clear_tasks("bc_purchase_invoices_to_jira", "follow_deletions", dr.logical_date)
    _ok(run_cleared(repo_dag("bc_purchase_invoices_to_jira"), dr.run_id))
    _ok(run_dag("bc_vendors_to_jira"))
    assert _comments(str(inv_link.issue_key), DELETED) == 1
    assert _comments(str(ven_link.issue_key), DELETED) == 1

    # moved to Done by a person: no BC call, one no-op comment, audited; a replayed delivery adds nothing
    post = f"POST {BC}/purchaseInvoices({{key}})/Microsoft.NAV.post"
    patch = f"PATCH {BC}/{{entity}}({{key}})"
    before = {k: sb.stats()["calls"].get(k, 0) for k in (post, patch)}
    for link in (inv_link, ven_link):
        sb.control("POST", "/_sandbox/jira/transition", {"issue": link.issue_key, "to": "To Do"})
        sb.control("POST", "/_sandbox/jira/transition", {"issue": link.issue_key, "to": "Done"})
        for n in (1, 2):
            store.stage_event(
                "jira", KIND_JIRA_TRANSITION, f"{link.issue_key}:{n}", {"issue_id": link.issue_id}
            )
    _ok(run_dag("jira_transitions_to_bc"))
    _ok(run_dag("jira_transitions_to_bc"))
    assert {k: sb.stats()["calls"].get(k, 0) for k in (post, patch)} == before
    for link in (inv_link, ven_link):
        assert _comments(str(link.issue_key), "was deleted in Business Central; nothing was changed") == 1
        assert "writeback_deleted_noop" in {a.action for a in store.query_audit(bc_id=link.bc_id)}
        assert store.get_links(link.entity, [link.bc_id])[link.bc_id].state == "deleted"


def test_reconcile_finds_a_deleted_purchase_order_once_a_day_and_deletes_nothing_under_faults(
    deletions: Any, monkeypatch: Any
) -> None:
    from bc_jira import timeutil
    from bc_jira.sync import runs

    sb, store = deletions["sb"], deletions["store"]
    _ok(run_dag("bc_purchase_orders_to_jira"))  # today's reconcile runs here: nothing missing
    linked = store.linked_ids("purchase_orders")
    assert linked
    gone = linked[0]
    _delete_in_bc(sb, "purchaseOrders", gone)  # BC sends no notifications for purchase orders
    tomorrow = timeutil.now() + timedelta(days=1)
    monkeypatch.setattr(runs, "now", lambda: tomorrow)  # the sync tasks' clock (bc_jira.sync.runs)
    # every BC list call fails: the reconcile must take nothing as deleted
    sb.faults(
        rules=[{"kind": "503", "rate": 1.0, "path": "purchaseOrders", "method": "GET", "retry_after": 0}]
    )
    run_dag("bc_purchase_orders_to_jira")
    sb.faults()
    assert store.get_links("purchase_orders", [gone])[gone].state != "deleted"
    assert {lk.state for lk in store.get_links("purchase_orders", linked).values()} != {"deleted"}
    assert "deletion_reconcile_failed" in {a.action for a in store.query_audit(bc_id="*", limit=200)}

    list_key = f"GET {BC}/{{entity}}"
    calls_before = sb.stats()["calls"].get(list_key, 0)
    _ok(run_dag("bc_purchase_orders_to_jira"))
    with_reconcile = sb.stats()["calls"].get(list_key, 0) - calls_before
    link = store.get_links("purchase_orders", [gone])[gone]
    assert link.state == "deleted"
    assert _comments(str(link.issue_key), DELETED) == 1
    assert all(
        lk.state != "deleted" for b, lk in store.get_links("purchase_orders", linked).items() if b != gone
    )
    rec = [a for a in store.query_audit(bc_id="*", limit=200) if a.action == "deletion_reconcile"]
    assert sorted(a.response["day"] for a in rec) == [
        timeutil.now().date().isoformat(),
        tomorrow.date().isoformat(),
    ]
    rec = [a for a in rec if a.response["day"] == tomorrow.date().isoformat()]
    found = rec[0].response
    assert found["checked"] == len(linked)
    assert found["deleted"] == [gone]
    batch_reads = found["calls"] - len(found["deleted"])  # one GET by key confirms each missing record
    assert batch_reads == -(-len(linked) // 40)
    print(f"\n[deletions] reconcile: {rec[0].reason} ({batch_reads} id-list read(s), 1 GET by key)")
    # the same day again: no reconcile read at all, only the extract's own list call(s)
    mid = sb.stats()["calls"].get(list_key, 0)
    _ok(run_dag("bc_purchase_orders_to_jira"))
    assert sb.stats()["calls"].get(list_key, 0) - mid == with_reconcile - batch_reads
    assert _comments(str(link.issue_key), DELETED) == 1

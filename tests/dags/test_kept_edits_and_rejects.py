"""Issue 13, points 4 and 6 under ``dag.test()`` against the sandbox over real HTTP.

4: a person edits an issue's summary in Jira, BC changes the amount: the next sync keeps the summary, updates
the amount field and comments once (also when the comment's answer is lost and the task retries), audited
``kept_edit``. 6: an invoice issue moved to a ``reject_statuses`` status leaves BC untouched (no BC write in
the sandbox's request log) and gets one comment saying why, however often the DAG runs.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.outbound import prepare_outbound, run_dag

DAG = "bc_purchase_invoices_to_jira"


@pytest.fixture
def synced(sandbox, airflow_conns, airflow_db, monkeypatch, tmp_path):
    """Invoices synced once: their issues exist; small batches, fast retries, a state store of this test."""
    from airflow.utils.state import DagRunState

    from bc_jira.store import StateStore

    env = prepare_outbound(
        sandbox,
        airflow_conns,
        monkeypatch,
        tmp_path,
        batch_size=4,
        config={"reject_statuses": ["Rejected"]},
        vendors=6,
        invoices=8,
        orders=0,
    )
    assert run_dag(DAG).state == DagRunState.SUCCESS
    return {"fields": env["fields"], "store": StateStore.from_airflow()}


def _issue(sandbox, key: str) -> dict[str, Any]:
    return next(i for i in sandbox.control("GET", "/_sandbox/jira/issues") if i["key"] == key)


def _comments(key: str) -> list[str]:
    from bc_jira.hooks.jira import JiraCloudHook

    return [
        " ".join("".join(n.get("text", "") for n in p.get("content", [])) for p in c["body"]["content"])
        for c in JiraCloudHook().iter_comments(key, newest_first=False)
    ]


def _draft_invoice(sandbox, store) -> tuple[dict[str, Any], Any]:
    inv = next(
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    )
    return inv, store.get_links("purchase_invoices", [inv["id"]])[inv["id"]]


def test_a_persons_summary_survives_a_bc_change_with_one_comment(sandbox, synced) -> None:
    from airflow.utils.state import DagRunState

    fields, store = synced["fields"], synced["store"]
    inv, link = _draft_invoice(sandbox, store)
    connector_summary = _issue(sandbox, link.issue_key)["fields"]["summary"]
    mine = f"{inv['number']} - Carol checks the VAT first"
    sandbox.control("POST", "/_sandbox/jira/edit", {"issue": link.issue_key, "fields": {"summary": mine}})
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "purchaseInvoices", "id": inv["id"], "set": {"totalAmountIncludingTax": 4321.5}},
    )
    # the comment's answer is lost once: the task fails, retries, finds the comment, posts no second one
    sandbox.faults(rules=[{"kind": "drop_after_commit", "path": "/comment$", "method": "POST", "count": 1}])
    dr = run_dag(DAG)
    assert sandbox.stats()["faults"].get("drop_after_commit") == 1
    sandbox.faults()
    assert dr.state == DagRunState.SUCCESS
    tries = [ti.try_number for ti in dr.get_task_instances() if ti.task_id == "upsert"]
    assert max(tries) >= 2
    issue = _issue(sandbox, link.issue_key)["fields"]
    assert issue["summary"] == mine
    assert issue["summary"] != connector_summary
    assert issue[fields["BC Amount"]] == 4321.5
    texts = [t for t in _comments(link.issue_key) if "Changed in Business Central" in t]
    assert len(texts) == 1
    assert "BC Amount" in texts[0]
    assert "4,321.50" in texts[0]
    assert "summary was edited in Jira" in texts[0]
    audit = [r.action for r in store.query_audit(bc_id=inv["id"], limit=100)]
    assert audit.count("kept_edit") == 1
    assert audit.count("kept_edit_comment") == 1
    assert "kept_edit_comment_unconfirmed" in audit
    # another run, and another BC change: the person's summary still stands, one comment per change
    assert run_dag(DAG).state == DagRunState.SUCCESS
    assert len([t for t in _comments(link.issue_key) if "Changed in Business Central" in t]) == 1
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "purchaseInvoices", "id": inv["id"], "set": {"totalAmountIncludingTax": 99.0}},
    )
    assert run_dag(DAG).state == DagRunState.SUCCESS
    issue = _issue(sandbox, link.issue_key)["fields"]
    assert (issue["summary"], issue[fields["BC Amount"]]) == (mine, 99.0)
    assert len([t for t in _comments(link.issue_key) if "Changed in Business Central" in t]) == 2


def test_an_untouched_summary_follows_bc(sandbox, synced) -> None:
    from airflow.utils.state import DagRunState

    inv, link = _draft_invoice(sandbox, synced["store"])
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "purchaseInvoices", "id": inv["id"], "set": {"totalAmountIncludingTax": 4321.5}},
    )
    assert run_dag(DAG).state == DagRunState.SUCCESS
    assert "4,321.50" in _issue(sandbox, link.issue_key)["fields"]["summary"]
    assert not [t for t in _comments(link.issue_key) if "Changed in Business Central" in t]
    assert [r.action for r in synced["store"].query_audit(bc_id=inv["id"], limit=50)].count("update") == 1


def test_a_rejected_invoice_issue_leaves_bc_untouched_and_says_why_once(sandbox, synced) -> None:
    from airflow.utils.state import DagRunState

    from bc_jira.edges.intake import KIND_JIRA_TRANSITION

    store = synced["store"]
    inv, link = _draft_invoice(sandbox, store)
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": link.issue_key, "to": "Rejected"})

    def bc_writes() -> int:
        calls = sandbox.stats()["calls"]
        return sum(
            n
            for k, n in calls.items()
            if k.split(" ")[0] in ("POST", "PATCH", "PUT", "DELETE") and "/v2.0/" in k
        )

    before = bc_writes()
    for n in (1, 2):  # the transition delivered twice; then the run replayed
        store.stage_event("jira", KIND_JIRA_TRANSITION, f"rej:{n}", {"issue_id": link.issue_id})
        assert run_dag("jira_transitions_to_bc").state == DagRunState.SUCCESS
    assert bc_writes() == before
    rec = next(
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["id"] == inv["id"]
    )
    assert rec["status"] == "Draft"
    texts = [t for t in _comments(link.issue_key) if "left untouched" in t]
    assert len(texts) == 1
    assert "'Rejected', which means no" in texts[0]
    actions = [r.action for r in store.query_audit(bc_id=inv["id"], limit=100)]
    assert actions.count("writeback_rejected") >= 2
    assert actions.count("writeback_comment") == 1

"""Several BC companies in one deployment, end to end: ``dag.test()`` of the real DAGs against the sandbox
serving three companies over real HTTP (BC, Entra, Atlassian, Jira), a per-test SQLite state store.

Company 1 (CRONUS DK) is ``bc_default``'s own company (the default company: today's names); CRONUS US goes to
its own Jira project CA; CRONUS CA shares the default project FIN.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from tests.support.companies import (
    bc_companies,
    company_calls,
    drafts,
    issues_by_record,
    jira_issues,
    key_of,
    metastore_var,
    pre_company_copy,
    record_id_counts,
    set_companies,
)
from tests.support.outbound import prepare_outbound, run_dag

INVOICE_DAG = "bc_purchase_invoices_to_jira"
WM = "bc_jira_watermark_purchase_invoices"


@pytest.fixture
def three(sandbox, airflow_conns, airflow_db, monkeypatch, tmp_path) -> dict[str, Any]:
    """Three companies in BC (a few invoices each), project CA in Jira, no ``companies`` yet."""
    from airflow.models.variable import Variable

    prep = prepare_outbound(
        sandbox,
        airflow_conns,
        monkeypatch,
        tmp_path,
        batch_size=5,
        companies=3,
        vendors=4,
        invoices=8,
        orders=0,
    )
    sandbox.control("POST", "/_sandbox/jira/projects", {"key": "CA", "name": "CRONUS US approvals"})
    companies = bc_companies(sandbox)
    assert list(companies) == ["CRONUS DK", "CRONUS US", "CRONUS CA"]
    assert companies["CRONUS DK"]["id"] == sandbox.creds["company_id"]
    for c in companies.values():
        Variable.delete(f"{WM}__{key_of(sandbox, c['id'])}")
    Variable.delete("bc_jira_bc_companies")
    return {**prep, "companies": companies}


def _entries(three: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"id": three["companies"]["CRONUS DK"]["id"]},
        {"name": "CRONUS US", "project_key": "CA"},
        {"name": "CRONUS CA"},
    ]


def _connect(monkeypatch, three: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, str]:
    """``companies`` set and ``bc_jira_connect`` run (it discovers BC Company and resolves the names)."""
    from airflow.utils.state import DagRunState

    set_companies(monkeypatch, entries)
    dr = run_dag("bc_jira_connect")
    assert dr.state == DagRunState.SUCCESS
    fields = json.loads(metastore_var("bc_jira_jira_fields") or "{}")
    assert "BC Company" in fields
    return fields


def _labels(dr: Any, task_id: str) -> list[str]:
    return sorted(str(t.rendered_map_index) for t in dr.get_task_instances() if t.task_id == task_id)


def test_three_companies_each_record_gets_one_issue_in_its_company(sandbox, three, monkeypatch) -> None:
    from airflow.utils.state import DagRunState

    fields = _connect(monkeypatch, three, _entries(three))
    c = three["companies"]
    resolved = json.loads(metastore_var("bc_jira_bc_companies") or "{}")
    assert resolved["bc_default"] == {"CRONUS US": c["CRONUS US"]["id"], "CRONUS CA": c["CRONUS CA"]["id"]}
    keys = {name: key_of(sandbox, row["id"]) for name, row in c.items()}
    before = company_calls(sandbox)
    t0 = time.monotonic()
    dr = run_dag(INVOICE_DAG)
    took = time.monotonic() - t0
    assert dr.state == DagRunState.SUCCESS
    linked = issues_by_record(sandbox, fields)
    expect = {  # company -> (project, BC Company value)
        "CRONUS DK": ("FIN", keys["CRONUS DK"]),
        "CRONUS US": ("CA", "CRONUS US"),
        "CRONUS CA": ("FIN", "CRONUS CA"),
    }
    per_company = {}
    for name, (project, value) in expect.items():
        mine = drafts(sandbox, name)
        assert mine, name
        for rec in mine:
            got = linked.get((rec["id"], value))
            assert got is not None, (name, rec["number"])
            assert len(got) == 1, (name, rec["number"], got)
            f = got[0]["fields"]
            assert f["project"]["key"] == project
            assert f"bc-company-{keys[name]}" in f["labels"]
            assert f[fields["BC Document No."]] == rec["number"]
        per_company[name] = len(mine)
    assert len(jira_issues(sandbox)) == sum(per_company.values())
    # the same document numbers in every company (each has its own number series): three issues, not one
    numbers = [{r["number"] for r in drafts(sandbox, n)} for n in c]
    assert numbers[0] & numbers[1] & numbers[2]
    # per-company watermarks: the default company keeps today's Variable
    assert metastore_var(WM) is not None
    for name in ("CRONUS US", "CRONUS CA"):
        assert metastore_var(f"{WM}__{keys[name]}") is not None
    # map labels name the company
    extracts = _labels(dr, "extract")
    # (an entry given by id has no name: its key stands for it, on the label and in BC Company)
    assert extracts == sorted([keys["CRONUS DK"], *(f"{n} ({keys[n]})" for n in ("CRONUS US", "CRONUS CA"))])
    upserts = _labels(dr, "upsert")
    assert any(u.startswith("CRONUS US · batch 1/") for u in upserts), upserts
    assert any(u.startswith("CRONUS CA · batch 1/") for u in upserts), upserts
    calls = company_calls(sandbox)
    spent = {n: calls.get(row["id"], 0) - before.get(row["id"], 0) for n, row in c.items()}
    assert all(v > 0 for v in spent.values()), spent
    print(f"\nissues per company {per_company}; BC calls per company {spent}; run {took:.1f}s")

    # a second run: nothing new anywhere
    n0 = len(jira_issues(sandbox))
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
    assert len(jira_issues(sandbox)) == n0
    assert max(record_id_counts(sandbox, fields).values()) == 1


def test_upgrade_adding_companies_to_a_pre_company_store_makes_no_duplicate(
    sandbox, three, monkeypatch, tmp_path
) -> None:
    """Today's deployment (no ``companies``, a store of the schema before companies) adds ``companies``
    listing its current company and CRONUS US: the current company's issues stay the ones it has (none
    created twice, counted by BC Record Id); CRONUS US's records get theirs; the old store is upgraded."""
    import sqlalchemy as sa
    from airflow.utils.state import DagRunState

    from bc_jira.store import StateStore

    c = three["companies"]
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS  # no companies: as before
    fields = dict(three["fields"])
    dk = {r["id"] for r in drafts(sandbox, "CRONUS DK")}
    before = {i["key"]: i for i in jira_issues(sandbox)}
    assert {i["fields"][fields["BC Record Id"]] for i in before.values()} == dk
    assert "BC Company" not in fields  # not needed, not looked up without companies
    wm_before = metastore_var(WM)

    old_path = tmp_path / "pre-company.db"
    copied = pre_company_copy(three["state_db"]["host"], str(old_path))
    assert copied["bc_jira_links"] == len(dk)
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": str(old_path)}))
    monkeypatch.setattr(StateStore, "_from_airflow_cache", {}, raising=False)

    fields = _connect(
        monkeypatch, three, [{"id": c["CRONUS DK"]["id"]}, {"name": "CRONUS US", "project_key": "CA"}]
    )
    t0 = time.monotonic()
    dr = run_dag(INVOICE_DAG)
    took = time.monotonic() - t0
    assert dr.state == DagRunState.SUCCESS
    counts = record_id_counts(sandbox, fields)
    us = {r["id"] for r in drafts(sandbox, "CRONUS US")}
    assert {k: counts[k] for k in dk} == dict.fromkeys(dk, 1)  # no duplicate for the current company
    assert {k: counts[k] for k in us} == dict.fromkeys(us, 1)
    after = {i["key"]: i for i in jira_issues(sandbox)}
    assert set(before) <= set(after)
    new = [i for k, i in after.items() if k not in before]
    assert len(new) == len(us)
    assert {i["fields"]["project"]["key"] for i in new} == {"CA"}
    assert wm_before
    assert (metastore_var(WM) or "") >= wm_before
    us_key = key_of(sandbox, c["CRONUS US"]["id"])
    assert metastore_var(f"{WM}__{us_key}") is not None
    # the upgraded store: the old rows are the default company's, the new ones CRONUS US's
    engine = sa.create_engine(f"sqlite:///{old_path}")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT company, COUNT(*) FROM bc_jira_links GROUP BY company")).all()
    engine.dispose()
    assert dict(rows) == {"": len(dk), us_key: len(us)}

    # the current company's issues get the company at their next edit
    target = sorted(dk)[0]
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "purchaseInvoices", "id": target, "set": {"totalAmountIncludingTax": 777.5}},
    )
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
    issue = next(i for i in jira_issues(sandbox) if i["fields"][fields["BC Record Id"]] == target)
    dk_key = key_of(sandbox, c["CRONUS DK"]["id"])
    assert issue["fields"][fields["BC Company"]] == dk_key
    assert f"bc-company-{dk_key}" in issue["fields"]["labels"]
    assert issue["fields"][fields["BC Amount"]] == 777.5
    assert max(record_id_counts(sandbox, fields).values()) == 1
    print(f"\nupgrade: {len(dk)} DK issues kept, {len(us)} US issues created; run {took:.1f}s")


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = []
    for r in caplog.records:
        text = r.getMessage()
        if r.exc_info and r.exc_info[1] is not None:
            text += f" | {type(r.exc_info[1]).__name__}: {r.exc_info[1]}"
        out.append(" ".join(text.split()))  # bc_jira.failfast wraps its message over lines
    return out


def test_a_company_without_permission_fails_alone_and_catches_up(sandbox, three, monkeypatch, caplog) -> None:
    """CRONUS US revoked: its extract fails naming it, the others' issues are created and their watermarks
    advance, the run ends failed saying which company held its watermark; access back: caught up, once."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    caplog.set_level(logging.ERROR)
    fields = _connect(monkeypatch, three, _entries(three))
    c = three["companies"]
    keys = {name: key_of(sandbox, row["id"]) for name, row in c.items()}
    sandbox.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": False})
    dr = run_dag(INVOICE_DAG)
    assert dr.state == DagRunState.FAILED
    tis = {(t.task_id, t.map_index): t for t in dr.get_task_instances()}
    assert tis[("extract", 1)].state == TaskInstanceState.FAILED
    assert tis[("extract", 1)].try_number == 1  # a configuration error: not retried
    assert tis[("extract", 0)].state == tis[("extract", 2)].state == TaskInstanceState.SUCCESS
    assert tis[("advance_watermark", -1)].state == TaskInstanceState.FAILED
    linked = issues_by_record(sandbox, fields)
    for name, value in (("CRONUS DK", keys["CRONUS DK"]), ("CRONUS CA", "CRONUS CA")):
        assert all(len(linked.get((r["id"], value), [])) == 1 for r in drafts(sandbox, name)), name
    assert not [k for k in linked if k[1] == "CRONUS US"]
    assert metastore_var(WM) is not None
    assert metastore_var(f"{WM}__{keys['CRONUS CA']}") is not None
    assert metastore_var(f"{WM}__{keys['CRONUS US']}") is None
    msgs = _messages(caplog)
    refused = [m for m in msgs if "Business Central refused it" in m]
    assert refused, msgs
    assert f"company CRONUS US ({keys['CRONUS US']}) (id {c['CRONUS US']['id']} on bc_default)" in refused[0]
    assert "permission" in refused[0]
    held = [m for m in msgs if "watermark not advanced" in m]
    assert held, msgs
    assert "company CRONUS US: watermark not advanced: its extract failed" in held[0]
    print(f"\nrevoked: {refused[0][:400]}\nrun failed with: {held[0][:300]}")

    sandbox.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": True})
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
    linked = issues_by_record(sandbox, fields)
    assert all(len(linked.get((r["id"], "CRONUS US"), [])) == 1 for r in drafts(sandbox, "CRONUS US"))
    assert max(record_id_counts(sandbox, fields).values()) == 1
    assert metastore_var(f"{WM}__{keys['CRONUS US']}") is not None


def test_done_in_a_companys_project_posts_in_that_company_only(sandbox, three, monkeypatch) -> None:
    """CRONUS US's issue (project CA) moved to Done: the write-back posts CRONUS US's invoice; CRONUS DK's
    invoice with the same number is untouched and CRONUS DK gets no BC call at all."""
    from airflow.utils.state import DagRunState

    fields = _connect(monkeypatch, three, _entries(three))
    c = three["companies"]
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
    dk = {r["number"]: r for r in drafts(sandbox, "CRONUS DK")}
    us_inv = next(r for r in drafts(sandbox, "CRONUS US") if r["number"] in dk)
    twin = dk[us_inv["number"]]
    assert twin["id"] != us_inv["id"]
    issue = issues_by_record(sandbox, fields)[(us_inv["id"], "CRONUS US")][0]
    assert issue["key"].startswith("CA-")
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    time.sleep(1.5)  # the search lag of the test options: the safety-net poll finds it by JQL
    before = company_calls(sandbox)
    t0 = time.monotonic()
    dr = run_dag("jira_transitions_to_bc")
    took = time.monotonic() - t0
    assert dr.state == DagRunState.SUCCESS
    after = company_calls(sandbox)
    spent = {n: after.get(row["id"], 0) - before.get(row["id"], 0) for n, row in c.items()}
    posted = {
        r["id"]: r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices?company=CRONUS US")["value"]
    }
    assert posted[us_inv["id"]]["status"] == "Open"
    still = {
        r["id"]: r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices?company=CRONUS DK")["value"]
    }
    assert still[twin["id"]]["status"] == "Draft"
    assert spent["CRONUS DK"] == 0, spent
    assert spent["CRONUS CA"] == 0, spent
    assert spent["CRONUS US"] >= 2, spent  # re-read, then post
    post = (
        "POST /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/purchaseInvoices({key})"
        "/Microsoft.NAV.post"
    )
    assert sandbox.stats()["calls"].get(post) == 1
    print(f"\nwrite-back: BC calls per company {spent}; run {took:.1f}s")
    assert run_dag("jira_transitions_to_bc").state == DagRunState.SUCCESS  # again: nothing posted twice
    assert sandbox.stats()["calls"].get(post) == 1


def _notify(store: Any, sandbox: Any, company_id: str, rid: str, when: str) -> None:
    """A BC notification item for a record of ``company_id``, staged through the intake as BC posts it."""
    from bc_jira.edges import intake

    item = {
        "subscriptionId": "sub-1",
        "clientState": sandbox.creds["bc_client_state"],
        "expirationDateTime": "2026-12-31T10:00:00Z",
        "resource": f"api/v2.0/companies({company_id})/purchaseInvoices({rid})",
        "changeType": "updated",
        "lastModifiedDateTime": when,
    }
    res = intake.handle_bc_notification(
        {}, json.dumps({"value": [item]}).encode(), client_state=sandbox.creds["bc_client_state"], store=store
    )
    assert res.status == 202, res


def test_the_backstop_settles_each_companys_events_against_its_own_watermark(
    sandbox, three, monkeypatch
) -> None:
    """bc_subscriptions_renewal's settle task read every staged event against the default company's
    watermark: CRONUS US's notification was deleted (lost) once CRONUS DK's watermark passed its time, though
    CRONUS US had not synced it. Each company's events go by its own watermark now."""
    from airflow.models.variable import Variable
    from airflow.utils.state import TaskInstanceState

    from bc_jira.edges.intake import bc_kind
    from bc_jira.store import StateStore
    from tests.support.plugin_server import PluginServer, sandbox_secrets

    _connect(monkeypatch, three, _entries(three))
    c = three["companies"]
    us_key = key_of(sandbox, c["CRONUS US"]["id"])
    store = StateStore.from_url(f"sqlite:///{three['state_db']['host']}")
    store.ensure_schema()
    server = PluginServer(store, sandbox_secrets(sandbox))
    Variable.set("bc_jira_public_url", server.url)
    try:
        t = "2026-11-20T10:00:00.000Z"
        _notify(store, sandbox, c["CRONUS DK"]["id"], "11111111-0000-4000-8000-000000000001", t)
        _notify(store, sandbox, c["CRONUS US"]["id"], "22222222-0000-4000-8000-000000000002", t)
        Variable.set(WM, "2026-11-21T00:00:00Z")  # CRONUS DK synced past the change
        Variable.set(f"{WM}__{us_key}", "2026-11-19T00:00:00Z")  # CRONUS US not yet

        def settle() -> None:
            dr = run_dag("bc_subscriptions_renewal")
            ti = next(t for t in dr.get_task_instances() if t.task_id == "settle_covered_events")
            assert ti.state == TaskInstanceState.SUCCESS

        settle()
        left = store.pending_events(bc_kind("purchase_invoices"))
        assert [e.payload["company_id"] for e in left] == [c["CRONUS US"]["id"]]
        Variable.set(f"{WM}__{us_key}", "2026-11-21T00:00:00Z")  # now CRONUS US synced it too
        settle()
        assert store.pending_events(bc_kind("purchase_invoices")) == []
        settled = [a for a in store.query_audit(entity="purchase_invoices") if a.action == "event_settled"]
        assert sorted(a.company or "" for a in settled) == sorted(["", us_key])
    finally:
        server.stop()
        Variable.delete("bc_jira_public_url")


def test_a_notification_of_one_company_is_read_by_its_extract_only(sandbox, three, monkeypatch) -> None:
    """A BC subscription on CRONUS US (created here with the hook: the per-company renewal is built apart):
    a change there is delivered, staged naming CRONUS US, seen by CRONUS US's view of the store only, and
    settled by CRONUS US's sync (its own watermark), nobody else's."""
    from airflow.models.variable import Variable
    from airflow.utils.state import DagRunState

    from bc_jira.edges.intake import bc_kind
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore
    from tests.support.plugin_server import PluginServer, sandbox_secrets, wait_for

    fields = _connect(monkeypatch, three, _entries(three))
    c = three["companies"]
    us_id, us_key = c["CRONUS US"]["id"], key_of(sandbox, c["CRONUS US"]["id"])
    assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
    store = StateStore.from_url(f"sqlite:///{three['state_db']['host']}")
    server = PluginServer(store, sandbox_secrets(sandbox))
    try:
        us_bc = BusinessCentralHook("bc_default", company_id=us_id)
        sub = us_bc.create_subscription(f"{server.url}/bc-jira/bc/notifications", "purchaseInvoices")
        assert f"companies({us_id})" in sub["resource"]
        target = drafts(sandbox, "CRONUS US")[0]
        sandbox.control(
            "POST",
            "/_sandbox/bc/change",
            {
                "company": "CRONUS US",
                "entity": "purchaseInvoices",
                "id": target["id"],
                "set": {"totalAmountIncludingTax": 4242.5},
            },
        )
        kind = bc_kind("purchase_invoices")
        staged = wait_for(lambda: store.pending_events(kind))
        assert [e.payload["company_id"] for e in staged] == [us_id]
        assert store.for_company("", c["CRONUS DK"]["id"]).pending_events(kind) == []
        assert (
            store.for_company(key_of(sandbox, c["CRONUS CA"]["id"]), c["CRONUS CA"]["id"]).pending_events(
                kind
            )
            == []
        )
        assert len(store.for_company(us_key, us_id).pending_events(kind)) == 1
        assert run_dag(INVOICE_DAG).state == DagRunState.SUCCESS
        assert store.pending_events(kind) == []
        settled = [a for a in store.query_audit(entity="purchase_invoices") if a.action == "event_settled"]
        assert [a.company for a in settled] == [us_key]
        issue = issues_by_record(sandbox, fields)[(target["id"], "CRONUS US")][0]
        assert issue["fields"][fields["BC Amount"]] == 4242.5
        us_bc.delete_subscription(sub["subscriptionId"] if "subscriptionId" in sub else sub["id"])
    finally:
        server.stop()
        Variable.delete("bc_jira_public_url")

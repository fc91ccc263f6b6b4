"""Write-back against the sandbox over real HTTP: post / unblock once, audited no-ops, stale ETag, lost
answers, rejects, transient failures kept for replay, and the JQL safety net."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bc_jira.intake import KIND_JIRA_TRANSITION
from bc_jira.store import Link, StateStore
from bc_jira.writeback import WRITTEN_BACK, WriteBack

POST = (
    "POST /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/purchaseInvoices({key})"
    "/Microsoft.NAV.post"
)


class Env:
    def __init__(self, sandbox: Any, store: StateStore) -> None:
        from bc_jira.config import parse_config
        from bc_jira.hooks.business_central import BusinessCentralHook
        from bc_jira.hooks.jira import JiraCloudHook

        self.sandbox = sandbox
        self.store = store
        self.bc = BusinessCentralHook()
        self.jira = JiraCloudHook(store=store)
        self.cfg = parse_config({"project_key": sandbox.creds["project_key"]})
        self.fields = self.jira.field_ids_by_name()
        self.rid = self.fields["BC Record Id"]
        self.wb = WriteBack(
            cfg=self.cfg,
            bc=self.bc,
            jira=self.jira,
            store=store,
            record_id_field=self.rid,
            run={"dag_id": "jira_transitions_to_bc", "run_id": "test", "task_id": "t"},
        )
        self._n = 0

    def records(self, entity_set: str) -> list[dict[str, Any]]:
        return self.sandbox.control("GET", f"/_sandbox/bc/records/{entity_set}")["value"]

    def record(self, entity_set: str, bc_id: str) -> dict[str, Any]:
        return next(r for r in self.records(entity_set) if r["id"] == bc_id)

    def issue(self, entity: str, rec: dict[str, Any], link: bool = True) -> dict[str, Any]:
        itype = self.cfg.entity(entity).issue_type
        created = self.jira.create_issue(
            {
                "project": {"key": self.cfg.project_key},
                "issuetype": {"name": itype},
                "summary": f"{itype} {rec['number']}",
                self.rid: rec["id"],
            }
        )
        if link:
            self.store.upsert_link(
                Link(entity, rec["id"], rec["number"], str(created["id"]), created["key"], state="linked")
            )
        return created

    def move(self, issue: dict[str, Any], to: str = "Done") -> None:
        self.sandbox.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": to})

    def stage(self, issue: dict[str, Any]) -> None:
        self._n += 1
        self.store.stage_event(
            "jira",
            KIND_JIRA_TRANSITION,
            f"test:{self._n}",
            {"issue_id": str(issue["id"]), "issue_key": issue["key"], "delivery_id": str(self._n)},
        )

    def comments(self, issue: dict[str, Any]) -> int:
        return next(
            i for i in self.sandbox.control("GET", "/_sandbox/jira/issues") if i["key"] == issue["key"]
        )["comments"]

    def calls(self, key: str) -> int:
        return int(self.sandbox.stats()["calls"].get(key, 0))


@pytest.fixture
def env(sandbox: Any, airflow_conns: dict[str, str], sqlite_url: str) -> Env:
    sandbox.reset(vendors=12, invoices=20, orders=0)
    return Env(sandbox, StateStore.from_url(sqlite_url))


def draft(env: Env) -> dict[str, Any]:
    return next(r for r in env.records("purchaseInvoices") if r["status"] == "Draft")


def blocked_vendor(env: Env) -> dict[str, Any]:
    return next(r for r in env.records("vendors") if r["blocked"] not in ("", "_x0020_"))


def test_done_invoice_posted_once_commented_audited(env: Env) -> None:
    inv = draft(env)
    issue = env.issue("purchase_invoices", inv)
    env.move(issue)
    env.stage(issue)
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["posted"]
    after = env.record("purchaseInvoices", inv["id"])
    assert after["status"] == "Open" and after["number"] != inv["number"]
    assert res[0].new_number == after["number"]
    assert env.store.count_pending() == 0
    assert env.comments(issue) == 1
    assert env.store.get_link_by_issue(issue["key"]).state == WRITTEN_BACK
    posted = env.store.query_audit(bc_id=inv["id"], action="writeback_posted")
    assert posted and posted[0].dag_id == "jira_transitions_to_bc" and posted[0].read["status"] == "Draft"
    comment = env.store.query_audit(bc_id=inv["id"], action="writeback_comment")[0]
    assert after["number"] in json.dumps(comment.sent)
    # the same transition delivered again (and a replay): no second post, no second comment, audited no-op
    env.stage(issue)
    env.stage(issue)
    again = env.wb.process_pending()
    assert [r.action for r in again] == ["noop", "noop"]
    assert env.calls(POST) == 1 and env.comments(issue) == 1
    assert len(env.store.query_audit(bc_id=inv["id"], action="writeback_noop")) == 2
    assert env.store.count_pending() == 0


def test_vendor_unblocked_with_stale_etag_retry(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    ven = blocked_vendor(env)
    issue = env.issue("vendors", ven)
    env.move(issue)
    env.stage(issue)
    real_get = env.bc.get_record
    state = {"n": 0}

    def get_then_someone_edits(entity_set: str, rid: str, **kw: Any) -> dict[str, Any]:
        rec = real_get(entity_set, rid, **kw)
        state["n"] += 1
        if state["n"] == 1:  # a BC user edits the vendor between our read and our PATCH
            env.sandbox.control(
                "POST",
                "/_sandbox/bc/change",
                {"entity": "vendors", "id": rid, "set": {"phoneNumber": "+1 555 0100"}},
            )
        return rec

    monkeypatch.setattr(env.bc, "get_record", get_then_someone_edits)
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["unblocked"] and state["n"] == 2
    after = env.record("vendors", ven["id"])
    assert after["blocked"] in ("", "_x0020_") and after["phoneNumber"] == "+1 555 0100"
    assert env.comments(issue) == 1


def test_lost_post_answer_is_not_reposted(env: Env) -> None:
    inv = draft(env)
    issue = env.issue("purchase_invoices", inv)
    env.move(issue)
    env.stage(issue)
    env.sandbox.faults(
        rules=[{"kind": "drop_after_commit", "path": "Microsoft.NAV.post", "count": 1, "rate": 1.0}]
    )
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["posted"]
    assert env.calls(POST) == 1
    assert env.record("purchaseInvoices", inv["id"])["status"] == "Open"


def test_rejected_and_reopened_leave_bc_untouched(env: Env) -> None:
    a, b = [r for r in env.records("purchaseInvoices") if r["status"] == "Draft"][:2]
    ia, ib = env.issue("purchase_invoices", a), env.issue("purchase_invoices", b)
    env.move(ia, "Rejected")
    env.move(ib, "Done")
    env.move(ib, "In Progress")  # reopened before the run: the payload said done, Jira says otherwise
    env.stage(ia)
    env.stage(ib)
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["rejected", "noop"]
    assert env.record("purchaseInvoices", a["id"])["status"] == "Draft"
    assert env.record("purchaseInvoices", b["id"])["status"] == "Draft"
    assert env.calls(POST) == 0 and env.comments(ia) == 1 and env.comments(ib) == 0


def test_transient_failure_stays_staged_then_replays(env: Env) -> None:
    inv = draft(env)
    issue = env.issue("purchase_invoices", inv)
    env.move(issue)
    env.stage(issue)
    env.sandbox.faults(**{"503": 1.0, "path": "purchaseInvoices", "retry_after": 0})
    env.bc.client.retry = type(env.bc.client.retry)(max_attempts=2, backoff_base=0.01, backoff_cap=0.01)
    res = env.wb.process_pending()
    assert res[0].action == "error" and res[0].transient
    pending = env.store.pending_events(KIND_JIRA_TRANSITION)
    assert len(pending) == 1 and pending[0].status == "failed" and pending[0].error
    env.sandbox.faults()
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["posted"] and env.store.count_pending() == 0


def test_unlinked_issue_found_by_record_id_field_and_foreign_issue_ignored(env: Env) -> None:
    inv = draft(env)
    issue = env.issue("purchase_invoices", inv, link=False)
    foreign = env.jira.create_issue(
        {"project": {"key": env.cfg.project_key}, "issuetype": {"name": "Task"}, "summary": "not ours"}
    )
    for i in (issue, foreign):
        env.move(i)
        env.stage(i)
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["posted", "ignored"]
    assert env.store.count_pending() == 0


def test_safety_net_poll_catches_missed_delivery(env: Env) -> None:
    env.sandbox.options(search_lag_s=0)
    inv, ven = draft(env), blocked_vendor(env)
    i1, i2 = env.issue("purchase_invoices", inv), env.issue("vendors", ven)
    env.move(i1)
    env.move(i2)
    res = env.wb.poll_done_issues()
    assert sorted(r.action for r in res) == ["posted", "unblocked"]
    assert env.wb.poll_done_issues() == []  # written back: skipped without touching BC
    assert env.calls(POST) == 1


def test_issue_naming_another_record_makes_no_bc_call(env: Env) -> None:
    """A link pointing at another record than the issue's BC Record Id (e.g. a bulk answer paired by
    position): nothing is posted, the issue gets a comment, the audit says so, the task fails loudly."""
    from bc_jira.writeback import _summary

    first, second = [r for r in env.records("purchaseInvoices") if r["status"] == "Draft"][:2]
    issue = env.issue("purchase_invoices", first, link=False)  # the issue names `first` ...
    env.store.upsert_link(  # ... but is linked to `second`
        Link(
            "purchase_invoices",
            second["id"],
            second["number"],
            str(issue["id"]),
            issue["key"],
            state="linked",
        )
    )
    env.move(issue)
    env.stage(issue)
    res = env.wb.process_pending()
    assert [r.action for r in res] == ["mismatch"] and res[0].alarm and not res[0].done
    assert first["id"] in res[0].detail and second["id"] in res[0].detail
    assert env.calls(POST) == 0
    assert env.record("purchaseInvoices", first["id"])["status"] == "Draft"
    assert env.record("purchaseInvoices", second["id"])["status"] == "Draft"
    assert env.comments(issue) == 1
    rows = env.store.query_audit(action="writeback_mismatch")
    assert len(rows) == 1 and rows[0].issue_key == issue["key"] and rows[0].error
    assert env.store.count_pending() == 1  # kept staged until a person fixes the field or the link
    with pytest.raises(RuntimeError, match="name another BC record"):
        _summary(res, "staged transitions")
    # the field emptied by a person is a mismatch too
    env.jira.edit_issue(issue["key"], {env.rid: None})
    env.store.upsert_link(
        Link(
            "purchase_invoices", first["id"], first["number"], str(issue["id"]), issue["key"], state="linked"
        )
    )
    again = env.wb.process_issue(issue["key"])
    assert again.action == "mismatch" and "(empty)" in again.detail and env.calls(POST) == 0

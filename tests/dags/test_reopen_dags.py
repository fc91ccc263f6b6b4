"""A vendor blocked again after its issue went to Done and the write-back unblocked it: the vendor DAG reopens
the issue (``reopen_transition``), comments once and updates its fields; the next Done acts again, a replay of
the first Done never does. ``dag.test()`` against the sandbox over real HTTP, real SQLite state store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bc_jira.edges.intake import KIND_JIRA_TRANSITION
from bc_jira.store.schema import LinkState
from tests.support.outbound import prepare_outbound, run_dag


@pytest.fixture
def reopen_env(sandbox, airflow_conns, airflow_db, monkeypatch, tmp_path) -> dict[str, Any]:
    from bc_jira.store import StateStore

    env = prepare_outbound(sandbox, airflow_conns, monkeypatch, tmp_path, vendors=6, invoices=0, orders=0)
    return {**env, "store": StateStore.from_airflow()}


def _success(dr: Any) -> None:
    from airflow.utils.state import DagRunState

    assert dr.state == DagRunState.SUCCESS, [(ti.task_id, ti.state) for ti in dr.get_task_instances()]


def _issue(sandbox: Any, key: str) -> dict[str, Any]:
    return next(i for i in sandbox.control("GET", "/_sandbox/jira/issues") if i["key"] == key)


def _vendor(sandbox: Any, bc_id: str) -> dict[str, Any]:
    return next(
        v for v in sandbox.control("GET", "/_sandbox/bc/records/vendors")["value"] if v["id"] == bc_id
    )


def _unblocks(sandbox: Any) -> int:
    """The BC PATCH calls : only the write-back's unblock makes one here."""
    calls = sandbox.stats()["calls"]
    return sum(int(n) for k, n in calls.items() if k.startswith("PATCH /v2.0/"))


def test_vendor_blocked_again_reopens_its_issue_once_and_the_next_done_acts_again(
    sandbox: Any, reopen_env: dict[str, Any]
) -> None:
    from airflow.models.variable import Variable

    store, fields = reopen_env["store"], reopen_env["fields"]
    ven = next(
        v
        for v in sandbox.control("GET", "/_sandbox/bc/records/vendors")["value"]
        if v["blocked"] == "Payment"
    )
    _success(run_dag("bc_vendors_to_jira"))
    link = store.get_links("vendors", [ven["id"]])[ven["id"]]
    key = str(link.issue_key)
    assert _issue(sandbox, key)["fields"]["status"]["name"] == "To Do"

    # a person moves the issue to Done: the write-back unblocks the vendor
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": key, "to": "Done"})
    first = {"issue_id": str(link.issue_id), "issue_key": key, "delivery_id": "d-1"}
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-1", first)
    _success(run_dag("jira_transitions_to_bc"))
    assert _vendor(sandbox, ven["id"])["blocked"] in ("", "_x0020_")
    assert store.get_links("vendors", [ven["id"]])[ven["id"]].state == LinkState.WRITTEN_BACK
    assert _unblocks(sandbox) == 1
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 2})
    _success(run_dag("bc_vendors_to_jira"))  # the unblocked version: fields updated, no comment of its own
    assert _issue(sandbox, key)["fields"][fields["BC Status"]] == "Not blocked"
    assert _issue(sandbox, key)["comments"] == 1  # "vendor ... was unblocked."

    # a user blocks the vendor again in BC: the vendor sync reopens the issue, comments once, updates it
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sandbox.control(
        "POST", "/_sandbox/bc/change", {"entity": "vendors", "id": ven["id"], "set": {"blocked": "All"}}
    )
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 2})
    reopened_at = datetime.now(UTC).replace(microsecond=0)
    reopen_run = run_dag("bc_vendors_to_jira", logical_date=reopened_at, run_after=reopened_at)
    _success(reopen_run)
    issue = _issue(sandbox, key)
    assert issue["fields"]["status"]["name"] == "To Do"
    assert issue["fields"][fields["BC Status"]] == "Blocked: All"
    assert issue["comments"] == 2
    assert store.get_links("vendors", [ven["id"]])[ven["id"]].state == LinkState.LINKED
    rows = store.query_audit(bc_id=ven["id"], action="reopened")
    assert len(rows) == 1
    assert "moved with 'To Do'" in rows[0].reason
    assert rows[0].dag_id == "bc_vendors_to_jira"
    assert rows[0].issue_key == key
    made = store.query_audit(bc_id=ven["id"], action="reopen_comment")
    assert len(made) == 1
    assert "blocked again in Business Central" in str(made[0].sent)

    # the same run cleared and re-run, and a run that reads everything again: no second comment
    _success(run_dag("bc_vendors_to_jira", logical_date=reopened_at, run_after=reopened_at))
    Variable.delete("bc_jira_watermark_vendors")
    _success(run_dag("bc_vendors_to_jira"))
    assert _issue(sandbox, key)["comments"] == 2
    assert len(store.query_audit(bc_id=ven["id"], action="reopened")) == 1

    # the first Done comes back (a late retry of its delivery) while the issue is open again: nothing
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-1-late", first)
    _success(run_dag("jira_transitions_to_bc"))
    assert _vendor(sandbox, ven["id"])["blocked"] == "All"
    assert _unblocks(sandbox) == 1
    assert _issue(sandbox, key)["comments"] == 2

    # the team decides again: the new episode's Done unblocks the vendor again
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": key, "to": "Done"})
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-2", {**first, "delivery_id": "d-2"})
    _success(run_dag("jira_transitions_to_bc"))
    assert _vendor(sandbox, ven["id"])["blocked"] in ("", "_x0020_")
    assert _unblocks(sandbox) == 2
    assert _issue(sandbox, key)["comments"] == 3  # "unblocked" for the new episode
    assert len(store.query_audit(bc_id=ven["id"], action="writeback_unblocked")) == 2

    # and the first Done replayed once more, now that the issue is in Done again: no BC call, no comment
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-1-later", first)
    _success(run_dag("jira_transitions_to_bc"))
    assert _unblocks(sandbox) == 2
    assert _issue(sandbox, key)["comments"] == 3
    assert store.count_pending(KIND_JIRA_TRANSITION) == 0

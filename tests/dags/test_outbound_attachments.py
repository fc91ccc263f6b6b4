"""The vendor's documents reach their issues once: ``dag.test()`` of the invoice DAG against the sandbox.

A lost upload answer (``drop_after_commit``), a clear of the attach task with downstream, and a changed
invoice never upload a file twice or comment twice; a file too big or of a type not allowed gets one comment.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.outbound import prepare_outbound, repo_dag, run_dag

DAG_ID = "bc_purchase_invoices_to_jira"
UPLOAD = "POST /ex/jira/{cloudId}/rest/api/3/issue/{issueIdOrKey}/attachments"
COMMENT = "POST /ex/jira/{cloudId}/rest/api/3/issue/{issueIdOrKey}/comment"
CONTENT = (
    "GET /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})"
    "/{entity_set:bc_attachment_set}({key})/attachmentContent"
)


@pytest.fixture
def attach_env(sandbox, airflow_conns, airflow_db, monkeypatch, tmp_path) -> dict[str, Any]:
    return prepare_outbound(
        sandbox,
        airflow_conns,
        monkeypatch,
        tmp_path,
        config={"attachments": {"max_bytes": 100_000}},
        vendors=10,
        invoices=30,
        orders=0,
    )


def _calls(sandbox, key: str) -> int:
    return int(sandbox.stats()["calls"].get(key, 0))


def _state(sandbox, fields: dict[str, str]) -> dict[str, dict[str, Any]]:
    """BC record id -> its one issue (asserted one), from the sandbox's issue listing."""
    out: dict[str, dict[str, Any]] = {}
    for issue in sandbox.control("GET", "/_sandbox/jira/issues"):
        rid = issue["fields"][fields["BC Record Id"]]
        assert rid not in out, f"two issues for {rid}"
        out[rid] = issue
    return out


def _bc_files(sandbox) -> dict[str, list[dict[str, Any]]]:
    """Draft invoice id -> its BC document attachments (read through the sandbox's control listing)."""
    drafts = [
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    ]
    out = {}
    for inv in drafts:
        files = sandbox.control("GET", f"/_sandbox/bc/attachments/{inv['id']}")
        out[inv["id"]] = files
    return out


def test_files_attached_once_through_lost_answers_clears_and_changes(sandbox, attach_env) -> None:
    from airflow.utils.state import DagRunState

    from bc_jira.store import StateStore
    from tests.support.airflow_runs import clear_tasks, run_cleared

    fields = attach_env["fields"]
    drafts = [
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    ]
    a, b, c = drafts[0], drafts[1], drafts[2]
    sandbox.control("POST", "/_sandbox/bc/attachments", {"invoice": a["id"], "fileName": "Invoice A.pdf"})
    sandbox.control(
        "POST", "/_sandbox/bc/attachments", {"invoice": a["id"], "fileName": "photo.png", "kind": "png"}
    )
    big = sandbox.control(
        "POST", "/_sandbox/bc/attachments", {"invoice": b["id"], "fileName": "scan.pdf", "size": 150_000}
    )
    sandbox.control(
        "POST", "/_sandbox/bc/attachments", {"invoice": c["id"], "fileName": "tool.exe", "kind": "bin"}
    )
    sandbox.faults(
        rules=[{"kind": "drop_after_commit", "path": "/attachments$", "method": "POST", "count": 1}]
    )

    now = datetime.now(UTC).replace(microsecond=0)
    first_date = now - timedelta(hours=2)
    dr = run_dag(DAG_ID, logical_date=first_date)
    assert dr.state == DagRunState.SUCCESS
    tries = [ti.try_number for ti in dr.get_task_instances() if ti.task_id == "attach"]
    assert max(tries) >= 2, "the dropped upload answer should have failed one attach task once"

    files = _bc_files(sandbox)
    issues = _state(sandbox, fields)
    uploadable = {
        rid: [f for f in fs if f["fileName"].endswith((".pdf", ".png")) and f["byteSize"] <= 100_000]
        for rid, fs in files.items()
    }
    expected = sum(len(v) for v in uploadable.values())
    assert expected >= 2
    for rid, fs in uploadable.items():
        names = sorted(att["filename"] for att in issues[rid]["fields"]["attachment"])
        want = sorted(
            f"{f['fileName'].rsplit('.', 1)[0]} [bc-{f['id']}].{f['fileName'].rsplit('.', 1)[1]}" for f in fs
        )
        assert names == want, rid  # each file exactly once, under its stable name, despite the lost answer
        sizes = {att["filename"]: att["size"] for att in issues[rid]["fields"]["attachment"]}
        assert sorted(sizes.values()) == sorted(f["byteSize"] for f in fs)
    assert _calls(sandbox, UPLOAD) == expected  # the lost one was looked for, not posted again

    def comments_on(rid: str) -> list[str]:
        from bc_jira.hooks.jira import JiraCloudHook

        hook = JiraCloudHook()
        return [json.dumps(c["body"]) for c in hook.iter_comments(issues[rid]["key"])]

    for rid, name in ((b["id"], "scan.pdf"), (c["id"], "tool.exe")):
        texts = [t for t in comments_on(rid) if name in t]
        assert len(texts) == 1, (rid, texts)
        assert "is not attached here" in texts[0]
        assert all(
            att["filename"].find(name.rsplit(".", 1)[0]) < 0 for att in issues[rid]["fields"]["attachment"]
        )

    store = StateStore.from_airflow()
    audited = store.query_audit(entity="purchase_invoices", action="attachment", limit=1000)
    found = store.query_audit(entity="purchase_invoices", action="attachment_found", limit=1000)
    assert len(audited) + len(found) == expected
    assert len(found) == 1  # the dropped answer: found on the issue by its stable name
    row = audited[0]
    assert row.sent["size"] > 0
    assert row.response["jira_attachment_id"]
    assert big["id"] not in json.dumps([r.sent for r in audited])

    sent = (_calls(sandbox, UPLOAD), _calls(sandbox, COMMENT), _calls(sandbox, CONTENT))
    clear_tasks(DAG_ID, "attach", first_date, downstream=True)
    replay = run_cleared(repo_dag(DAG_ID), dr.run_id)
    assert replay.state == DagRunState.SUCCESS
    assert all(t.try_number > 1 for t in replay.get_task_instances() if t.task_id == "attach")
    assert (_calls(sandbox, UPLOAD), _calls(sandbox, COMMENT), _calls(sandbox, CONTENT)) == sent

    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {
            "changes": [
                {"entity": "purchaseInvoices", "id": rid, "set": {"totalAmountIncludingTax": 99.5}}
                for rid in (a["id"], b["id"])
            ]
        },
    )
    assert run_dag(DAG_ID, logical_date=now - timedelta(hours=1)).state == DagRunState.SUCCESS
    assert _state(sandbox, fields)[a["id"]]["fields"][fields["BC Amount"]] == 99.5  # the change did sync
    assert (_calls(sandbox, UPLOAD), _calls(sandbox, COMMENT), _calls(sandbox, CONTENT)) == sent
    after = _state(sandbox, fields)
    for rid, fs in uploadable.items():
        assert len(after[rid]["fields"]["attachment"]) == len(fs)

"""People's edits are kept: the pure decision (``bc_jira.sync.edits``) and the upsert acting on it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bc_jira import adf
from bc_jira.config import parse_config
from bc_jira.mapping import map_record
from bc_jira.sync.base import SyncError
from bc_jira.sync.edits import bc_changes, kept_comment, plan_edit, text_hash, written_hashes
from tests.support.sync_fakes import AMT, IDS, invoice

CFG = parse_config({"project_key": "FIN"})


def _draft(**over: Any):
    return map_record(CFG, "purchase_invoices", invoice(1, **over), IDS)


def _jira_view(draft) -> dict[str, Any]:
    """The issue as Jira hands it back: the description with the attributes Jira adds (a table's localId,
    width and displayMode, a cell's empty attrs: developer.atlassian.com/.../apis/document/nodes/table)."""
    fields = copy.deepcopy(draft.fields)
    for block in fields["description"]["content"]:
        if block["type"] == "table":
            block["attrs"] = {**block["attrs"], "localId": "b5c3", "width": 760, "displayMode": "default"}
            for row in block["content"]:
                for cell in row["content"]:
                    cell["attrs"] = {}
    return fields


def test_text_hash_ignores_what_jira_adds_but_not_what_a_person_writes() -> None:
    d = _draft()
    assert text_hash(_jira_view(d)["description"]) == text_hash(d.fields["description"])
    assert text_hash("Invoice  PI1001 ") == text_hash("Invoice PI1001")
    edited = copy.deepcopy(d.fields["description"])
    edited["content"][0]["content"].append(adf.text("Approved by Carol."))
    assert text_hash(edited) != text_hash(d.fields["description"])
    assert text_hash("Invoice PI1001 (urgent)") != text_hash("Invoice PI1001")
    assert text_hash(None) is None


def test_untouched_texts_are_rewritten() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0)
    plan = plan_edit(new, written_hashes(old), _jira_view(old))
    assert (plan.kept, plan.adopted) == ((), ())
    assert plan.body["fields"]["summary"] == new.fields["summary"]
    assert "description" in plan.body["fields"]
    assert plan.written == written_hashes(new)


def test_a_persons_summary_is_kept_and_only_owned_fields_sent() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0)
    current = _jira_view(old) | {"summary": "PI1001 - waiting for Carol"}
    plan = plan_edit(new, written_hashes(old), current)
    assert plan.kept == ("summary",)
    assert "summary" not in plan.body["fields"]
    assert plan.body["fields"][AMT] == 150.0
    assert plan.body["fields"]["description"] == new.fields["description"]
    # what the connector last wrote stays recorded: the next BC change keeps the person's text too
    assert plan.written == (written_hashes(old)[0], written_hashes(new)[1])
    after = _jira_view(new) | {"summary": current["summary"]}  # the issue once the edit is made
    again = plan_edit(_draft(totalAmountIncludingTax=170.0), plan.written, after)
    assert again.kept == ("summary",)


def test_a_person_who_puts_the_connectors_text_back_gets_it_rewritten_again() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0)
    assert plan_edit(new, written_hashes(old), _jira_view(old)).kept == ()
    same_as_new = _jira_view(new) | {"summary": new.fields["summary"]}
    plan = plan_edit(new, written_hashes(old), same_as_new)
    assert plan.kept == ()
    assert plan.written == written_hashes(new)


def test_both_texts_edited_are_both_kept() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0)
    current = {"summary": "mine", "description": adf.plain("my notes"), AMT: 101.0}
    plan = plan_edit(new, written_hashes(old), current)
    assert plan.kept == ("summary", "description")
    assert {"summary", "description"}.isdisjoint(plan.body["fields"])


def test_links_from_before_this_version_adopt_the_current_text_without_overwriting() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0)
    plan = plan_edit(new, (None, None), _jira_view(old) | {"description": None})
    assert plan.adopted == ("summary",)
    assert plan.kept == ()
    assert "summary" not in plan.body["fields"]
    assert plan.body["fields"]["description"] == new.fields["description"]  # empty: nothing to lose
    assert plan.written == (text_hash(old.fields["summary"]), written_hashes(new)[1])
    # from then on the adopted baseline decides: unchanged -> rewritten on the next change
    nxt = plan_edit(
        _draft(totalAmountIncludingTax=170.0),
        plan.written,
        _jira_view(new) | {"summary": old.fields["summary"]},
    )
    assert nxt.kept == ()
    assert "summary" in nxt.body["fields"]


def test_not_read_means_the_whole_draft_is_sent() -> None:
    new = _draft(totalAmountIncludingTax=150.0)
    plan = plan_edit(new, (None, None), None)
    assert plan.body["fields"]["summary"] == new.fields["summary"]
    assert plan.kept == ()


def test_the_comment_says_what_changed_in_bc() -> None:
    old, new = _draft(), _draft(totalAmountIncludingTax=150.0, number="PI2001")
    current = _jira_view(old) | {"summary": "mine"}
    names = CFG.fields.as_dict()
    changes = bc_changes(new, current, IDS, names)
    assert changes == ["BC Document No. PI1001 → PI2001", "BC Amount 101.00 → 150.00"]
    plan = plan_edit(new, written_hashes(old), current)
    doc = kept_comment(new, plan, changes)
    assert adf.validate(doc) == []
    text = " ".join("".join(t["text"] for t in p["content"]) for p in doc["content"])
    assert "Changed in Business Central: BC Document No. PI1001 → PI2001; BC Amount 101.00 → 150.00." in text
    assert "summary was edited in Jira" in text
    assert new.fields["summary"] in text
    assert text.endswith("(bc-jira)")


# -- the upsert acting on it (in-memory Jira, real SQLite store) -------------------------------------------


def _person_edits_summary(jira, bc_id: str, text: str) -> dict[str, Any]:
    issue = jira.by_record(bc_id)[0]
    issue["fields"]["summary"] = text
    return issue


def test_upsert_keeps_a_persons_summary_comments_once_and_audits_kept_edit(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(3)]
    up().upsert(recs)
    issue = _person_edits_summary(jira, recs[1]["id"], "PI1001 - Carol checks the VAT")
    changed = dict(recs[1], totalAmountIncludingTax=150.0, lastModifiedDateTime="2026-11-20T11:00:00Z")
    fetches = jira.calls.get("fetch", 0)
    counts = up().upsert([recs[0], changed, recs[2]])
    assert (counts.updated, counts.unchanged) == (1, 2)
    assert jira.calls["fetch"] == fetches + 1  # one read of the one issue to edit
    assert issue["fields"]["summary"] == "PI1001 - Carol checks the VAT"
    assert issue["fields"][AMT] == 150.0
    iid = store.get_links("purchase_invoices", [changed["id"]])[changed["id"]].issue_id
    assert len(jira.comments[iid]) == 1
    rows = store.query_audit(bc_id=changed["id"], limit=50)
    assert [r.action for r in rows].count("kept_edit") == 1
    assert [r.action for r in rows].count("kept_edit_comment") == 1
    # the same batch again (a cleared task): nothing sent, no second comment
    edits = jira.calls["edit"]
    assert up().upsert([recs[0], changed, recs[2]]).unchanged == 3
    assert (jira.calls["edit"], len(jira.comments[iid])) == (edits, 1)


def test_kept_edit_comment_exactly_once_when_its_answer_is_lost(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(2)]
    up().upsert(recs)
    _person_edits_summary(jira, recs[0]["id"], "mine")
    changed = dict(recs[0], totalAmountIncludingTax=150.0, lastModifiedDateTime="2026-11-20T11:00:00Z")
    jira.drop_next_comment = True  # Jira stores the comment, the answer is lost
    with pytest.raises(SyncError):
        up().upsert([changed, recs[1]])
    link = store.get_links("purchase_invoices", [changed["id"]])[changed["id"]]
    assert link.content_hash != map_record(_env_cfg(env), "purchase_invoices", changed, IDS).content_hash
    counts = up().upsert([changed, recs[1]])  # the retry finds the comment by its marker
    assert counts.updated == 1
    assert len(jira.comments[link.issue_id]) == 1
    assert up().upsert([changed, recs[1]]).unchanged == 2
    assert len(jira.comments[link.issue_id]) == 1
    actions = [r.action for r in store.query_audit(bc_id=changed["id"], limit=50)]
    assert "kept_edit_comment_unconfirmed" in actions
    assert actions.count("kept_edit_comment") == 1


def test_a_failed_read_edits_nothing(env, store, monkeypatch) -> None:
    clock, jira, up = env
    recs = [invoice(0)]
    up().upsert(recs)
    _person_edits_summary(jira, recs[0]["id"], "mine")
    changed = dict(recs[0], totalAmountIncludingTax=150.0, lastModifiedDateTime="2026-11-20T11:00:00Z")

    def down(*a: Any, **k: Any) -> Any:
        raise RuntimeError("bulkfetch unavailable")

    monkeypatch.setattr(jira, "fetch", down)
    edits = jira.calls.get("edit", 0)
    with pytest.raises(SyncError):
        up().upsert([changed])
    assert jira.calls.get("edit", 0) == edits
    assert jira.by_record(recs[0]["id"])[0]["fields"]["summary"] == "mine"


def _env_cfg(env) -> Any:
    return env[2]().cfg

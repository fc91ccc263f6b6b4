"""A new episode for a record that needs a human step again: the planner, and the upsert acting on it (real
SQLite state store, in-memory Jira with lost answers); the DAG flow against the sandbox is in
tests/dags/test_reopen_dags.py."""

from __future__ import annotations

import dataclasses

import pytest

from bc_jira.store.schema import LinkState
from bc_jira.sync.base import SyncError
from bc_jira.sync.reopen import DONE_AT_FIELD, REOPENED, plan_reopen
from tests.support.sync_fakes import AMT, invoice

DONE_AT = "2026-11-20T11:00:00.000+0000"  # Jira's form of statuscategorychangedate
IN_DONE = {"status": {"name": "Done", "statusCategory": {"key": "done"}}, DONE_AT_FIELD: DONE_AT}
IN_TODO = {"status": {"name": "To Do", "statusCategory": {"key": "new"}}, DONE_AT_FIELD: DONE_AT}


def plan(**over):
    facts = {
        "state": LinkState.WRITTEN_BACK,
        "needs_human": True,
        "modified": "2026-11-20T12:00:00Z",
        "last_synced": "2026-11-20T10:00:00Z",
        "issue": IN_DONE,
        "reopen_transition": "To Do",
    }
    return plan_reopen(**{**facts, **over})


def test_blocked_again_after_the_done_reopens_with_the_transition() -> None:
    p = plan()
    assert p is not None
    assert p.start
    assert p.transition == "To Do"
    assert "'Done'" in p.why


def test_the_version_the_write_back_acted_on_starts_nothing() -> None:
    # a cleared upsert of the blocked version the Done was about: modified before the issue reached done
    p = plan(modified="2026-11-20T10:30:00Z")
    assert p is not None
    assert not p.start
    assert "not newer than the issue reached its done status" in p.why
    assert not plan(modified="2026-11-20T11:00:00Z").start  # the same instant is not after it


@pytest.mark.parametrize("state", [LinkState.WRITTEN_BACK, LinkState.RESOLVED, LinkState.DONE])
def test_every_closed_state_starts_an_episode(state: str) -> None:
    p = plan(state=state)
    assert p is not None
    assert p.start
    assert p.transition == "To Do"


def test_no_episode_question_without_a_need_or_for_a_deleted_or_still_open_one() -> None:
    assert plan(needs_human=False) is None
    assert plan(state=LinkState.DELETED) is None  # a deleted record's issue is never reopened
    assert plan(state=LinkState.PENDING) is None
    assert plan(state=LinkState.RESOLVING) is None
    assert plan(state=LinkState.LINKED, issue=IN_TODO) is None  # the episode and the issue are open


def test_resolved_compares_with_the_version_that_no_longer_needed_a_human() -> None:
    # resolved_transition moved the issue after the version that closed it: its done time is not the reference
    p = plan(state=LinkState.RESOLVED, modified="2026-11-20T10:30:00Z")
    assert p is not None
    assert p.start
    same = plan(state=LinkState.RESOLVED, modified="2026-11-20T10:00:00Z")
    assert same is not None
    assert not same.start


def test_an_open_issue_gets_the_comment_but_no_transition() -> None:
    p = plan(state=LinkState.RESOLVED, issue=IN_TODO)
    assert p is not None
    assert p.start
    assert p.transition is None
    # written back, then a person moved it out of done: the version last synced is the reference
    assert not plan(issue=IN_TODO, modified="2026-11-20T10:00:00Z").start
    assert plan(issue=IN_TODO, modified="2026-11-20T10:00:01Z").start


def test_null_reopen_transition_comments_and_leaves_the_issue_in_done() -> None:
    p = plan(reopen_transition=None)
    assert p is not None
    assert p.start
    assert p.transition is None


def test_a_linked_issue_a_person_moved_to_done_reopens_only_on_a_later_change_with_a_transition() -> None:
    rejected = {"status": {"name": "Rejected", "statusCategory": {"key": "done"}}, DONE_AT_FIELD: DONE_AT}
    p = plan(state=LinkState.LINKED, issue=rejected)
    assert p is not None
    assert p.start
    assert p.transition == "To Do"
    before = plan(state=LinkState.LINKED, issue=rejected, modified="2026-11-20T10:59:00Z")
    assert before is not None
    assert not before.start
    assert plan(state=LinkState.LINKED, issue=rejected, reopen_transition=None) is None
    no_time = {"status": rejected["status"]}
    assert plan(state=LinkState.LINKED, issue=no_time) is None  # cannot tell: the write-back's stale rule


def test_an_episode_already_planned_is_carried_on_whatever_the_order() -> None:
    # the first attempt moved the issue (a new statuscategorychangedate) and lost the comment's answer
    p = plan(issue=IN_TODO, last_synced="2026-11-20T12:00:00Z", planned=True)
    assert p is not None
    assert p.start
    assert p.transition is None


# -- the upsert ----------------------------------------------------------------------------------------


def _close(store, jira, rec, state=LinkState.WRITTEN_BACK, issue_fields=IN_DONE) -> str:
    """The record's link closed (as the write-back leaves it) and its issue in ``issue_fields``' status."""
    link = store.get_links("purchase_invoices", [rec["id"]])[rec["id"]]
    store.upsert_link(dataclasses.replace(link, state=state, updated_at=None))
    jira.issues[link.issue_id]["fields"].update(issue_fields)
    return str(link.issue_id)


def _texts(jira, issue_id: str) -> list[str]:
    return [
        " ".join(n.get("text", "") for p in c["content"] for n in p.get("content", []))
        for c in jira.comments.get(issue_id, [])
    ]


def test_upsert_reopens_once_comments_once_and_updates_the_fields(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)
    up().upsert([rec])
    issue_id = _close(store, jira, rec)
    again = dict(rec, totalAmountIncludingTax=999.0, lastModifiedDateTime="2026-11-20T12:00:00Z")
    counts = up().upsert([again])
    assert counts.reopened == 1
    assert jira.transitions[issue_id] == ["To Do"]
    texts = _texts(jira, issue_id)
    assert len(texts) == 1
    assert "needs review again" in texts[0]
    assert "2026-11-20T12:00:00Z" in texts[0]
    assert jira.issues[issue_id]["fields"][AMT] == 999.0  # the fields too
    link = store.get_links("purchase_invoices", [rec["id"]])[rec["id"]]
    assert link.state == LinkState.LINKED
    row = next(r for r in store.query_audit(bc_id=rec["id"]) if r.action == REOPENED)
    assert "moved with 'To Do'" in row.reason
    assert row.issue_key == link.issue_key
    # a re-run (a cleared task, the next schedule) of the same version: nothing more
    jira.issues[issue_id]["fields"].update(IN_TODO)
    assert up().upsert([again]).reopened == 0
    assert len(jira.comments[issue_id]) == 1
    assert jira.transitions[issue_id] == ["To Do"]


def test_replayed_version_the_episode_closed_on_reopens_nothing(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)  # modified 10:01, before the issue reached done at 11:00
    up().upsert([rec])
    issue_id = _close(store, jira, rec)
    counts = up().upsert([rec])
    assert counts.reopened == 0
    assert counts.unchanged == 1
    assert not jira.comments.get(issue_id)
    assert not jira.transitions.get(issue_id)
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].state == LinkState.WRITTEN_BACK


def test_a_deleted_records_link_is_never_reopened(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)
    up().upsert([rec])
    issue_id = _close(store, jira, rec, state=LinkState.DELETED)
    up().upsert([dict(rec, lastModifiedDateTime="2026-11-20T12:00:00Z", totalAmountIncludingTax=5.0)])
    assert not jira.comments.get(issue_id)
    assert not jira.transitions.get(issue_id)
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].state == LinkState.DELETED


def test_lost_comment_answer_and_failed_transition_never_comment_twice(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)
    up().upsert([rec])
    issue_id = _close(store, jira, rec, state=LinkState.RESOLVED)
    again = dict(rec, lastModifiedDateTime="2026-11-20T12:00:00Z", totalAmountIncludingTax=7.0)
    jira.drop_next_comment = True
    with pytest.raises(SyncError):
        up().upsert([again])
    assert len(jira.comments[issue_id]) == 1  # Jira stored it; the answer was lost
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].state == LinkState.RESOLVED
    jira.fail_next_transition = True  # the retry finds the comment, then the transition fails
    with pytest.raises(SyncError):
        up().upsert([again])
    assert len(jira.comments[issue_id]) == 1
    # the version is now the one last synced (the failing attempts saved it): the planned episode carries on
    assert up().upsert([again]).reopened == 1
    assert jira.transitions[issue_id] == ["To Do"]
    assert len(jira.comments[issue_id]) == 1
    assert jira.calls["comment"] == 1
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].state == LinkState.LINKED
    made = [r for r in store.query_audit(bc_id=rec["id"]) if r.action == "reopen_comment"]
    assert len(made) == 1
    assert "found on the issue" in made[0].reason

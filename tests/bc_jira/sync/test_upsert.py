"""Upsert/extract decisions against the real state store (SQLite) and an in-memory Jira with search lag.

The in-memory Jira commits a bulk create and then loses the answer on demand, like the sandbox's
``drop_after_commit``; the flows against the real sandbox are in tests/dags/test_outbound_dags.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bc_jira.store import Link
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import Counts, RunInfo, SyncError
from bc_jira.sync.claims import CLAIM_TTL_SECONDS
from tests.support.sync_fakes import AMT, RID, STS, invoice


def test_create_then_rerun_changes_nothing(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(120)]
    counts = up().upsert(recs)
    assert (counts.created, counts.updated, counts.unchanged) == (120, 0, 0)
    assert jira.calls["bulk_create"] == 3  # 50 + 50 + 20
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert {lk.state for lk in links.values()} == {LinkState.LINKED}
    before = dict(jira.calls)
    counts = up().upsert(recs)
    assert (counts.created, counts.updated, counts.unchanged) == (0, 0, 120)
    assert jira.calls == before  # link table answered everything: no search, no create, no edit
    assert counts.line() == "read 120, created 0, updated 0, unchanged 120"


def test_change_edits_exactly_that_issue_and_keeps_peoples_edits(env) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(5)]
    up().upsert(recs)
    issue = jira.by_record(recs[2]["id"])[0]
    issue["fields"]["customfield_10099"] = "set by a person"
    issue["fields"]["labels"].append("urgent")
    recs[2] = dict(recs[2], totalAmountIncludingTax=999.5, lastModifiedDateTime="2026-11-20T11:00:00Z")
    counts = up().upsert(recs)
    assert (counts.updated, counts.unchanged, jira.calls["edit"]) == (1, 4, 1)
    assert issue["fields"][AMT] == 999.5
    assert issue["fields"]["customfield_10099"] == "set by a person"
    assert "urgent" in issue["fields"]["labels"]
    assert "bc-jira" in issue["fields"]["labels"]


def test_lost_bulk_answer_after_commit_does_not_duplicate(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(60)]
    jira.drop_next_create = True
    with pytest.raises(SyncError):
        up().upsert(recs)
    assert len(jira.issues) == 60  # the first chunk (50) committed, its answer was lost; 10 went through
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert sum(lk.state == LinkState.PENDING for lk in links.values()) == 50
    # the retry comes right away (before search caught up): it must wait, then find all 50
    counts = up().upsert(recs)
    assert clock.slept >= 29
    assert counts.created == 0
    assert counts.linked == 50
    assert counts.unchanged == 10
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert {lk.state for lk in links.values()} == {LinkState.LINKED}
    # audited per attempt: the failed attempt's error rows and the retry's rows
    rows = store.query_audit(entity="purchase_invoices", bc_id=recs[0]["id"])
    assert {r.action for r in rows} >= {"error"}


def test_lost_request_before_commit_creates_once_on_retry(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(3)]
    jira.fail_next_create = True
    with pytest.raises(SyncError):
        up().upsert(recs)
    assert jira.issues == {}
    clock.now += timedelta(seconds=120)  # Airflow's retry_delay passed: no extra wait
    counts = up().upsert(recs)
    assert getattr(clock, "slept", 0) == 0
    assert counts.created == 3
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)


def test_record_that_stops_needing_a_human_is_commented_and_moved_once(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    counts = up().upsert([posted, recs[1]])
    assert (counts.resolved, counts.unchanged) == (1, 1)
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    assert len(jira.comments[issue_id]) == 1
    assert "PPI108001" in str(jira.comments[issue_id][0])
    assert jira.transitions[issue_id] == ["Done"]
    assert jira.issues[issue_id]["fields"][STS] == "Open"
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    counts = up().upsert([posted])
    assert counts.unchanged == 1
    assert len(jira.comments[issue_id]) == 1


def test_rejected_element_is_audited_and_retried_later(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    jira.reject.add(recs[1]["id"])
    with pytest.raises(SyncError, match="1 of 2"):
        up().upsert(recs)
    assert store.get_links("purchase_invoices", [recs[1]["id"]])[recs[1]["id"]].state == LinkState.FAILED
    err = [r for r in store.query_audit(bc_id=recs[1]["id"]) if r.action == "error"]
    assert err
    assert "not on screen" in (err[0].error or "")
    assert err[0].dag_id == "d"
    assert err[0].map_index == 0
    assert err[0].try_number == 1
    jira.reject.clear()
    counts = up().upsert(recs)
    assert (counts.created, counts.unchanged) == (1, 1)
    assert len(jira.issues) == 2


def test_issue_found_by_jql_when_link_table_lost(env, stores) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    clock.now += timedelta(seconds=60)
    fresh = stores[0]("other")
    u = up()
    u.store = fresh
    counts = u.upsert(recs)
    assert counts.created == 0
    assert counts.updated == 1
    assert len(jira.issues) == 1
    assert fresh.get_links("purchase_invoices", [recs[0]["id"]])[recs[0]["id"]].state == LinkState.LINKED


def test_not_selected_and_unlinked_is_skipped(env) -> None:
    clock, jira, up = env
    counts = up().upsert([invoice(1, status="Open")])
    assert counts.skipped == 1
    assert not jira.issues
    assert "search" not in jira.calls


def test_counts_line() -> None:
    c = Counts(read=500, created=37, updated=12, unchanged=451)
    assert c.line() == "read 500, created 37, updated 12, unchanged 451"


def test_lost_resolve_comment_answer_and_failed_transition_never_comment_twice(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    jira.drop_next_comment = True
    with pytest.raises(SyncError):
        up().upsert([posted])
    assert len(jira.comments[issue_id]) == 1  # Jira stored it; the answer was lost
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.LINKED
    actions = [r.action for r in store.query_audit(bc_id=posted["id"])]
    assert "resolve_comment_unconfirmed" in actions
    assert "resolve_comment_failed" not in actions
    jira.fail_next_transition = True  # the retry finds the comment, then the transition fails
    with pytest.raises(SyncError):
        up().upsert([posted])
    assert len(jira.comments[issue_id]) == 1
    assert jira.calls["list_comments"] == 1
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVING
    counts = up().upsert([posted])  # the next retry only moves it
    assert counts.resolved == 1
    assert jira.transitions[issue_id] == ["Done"]
    assert len(jira.comments[issue_id]) == 1
    assert jira.calls["comment"] == 1
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    made = [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment"]
    assert len(made) == 1
    assert "found on the issue" in made[0].reason
    # blocked/needed again, then resolved again: a new episode gets its own (single) comment
    again = dict(posted, status="Draft", lastModifiedDateTime="2026-11-20T12:00:00Z")
    assert up().upsert([again]).reopened == 1  # "needs review again" (bc_jira.sync.reopen), once
    assert up().upsert([again]).reopened == 0
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.LINKED
    up().upsert([dict(posted, lastModifiedDateTime="2026-11-20T12:30:00Z")])
    up().upsert([dict(posted, lastModifiedDateTime="2026-11-20T12:30:00Z")])
    assert len(jira.comments[issue_id]) == 3  # resolved, needs review again, resolved


def test_resolve_comment_refused_by_jira_is_audited_and_does_not_wedge_the_record(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1)]
    up().upsert(recs)
    posted = dict(recs[0], status="Open", number="PPI108001", lastModifiedDateTime="2026-11-20T11:30:00Z")
    issue_id = store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].issue_id
    jira.refuse_next_comment = True
    counts = up().upsert([posted])
    assert counts.resolved == 1
    assert jira.comments.get(issue_id) == []
    assert store.get_links("purchase_invoices", [posted["id"]])[posted["id"]].state == LinkState.RESOLVED
    failed = [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment_failed"]
    assert len(failed) == 1
    assert "refused" in failed[0].reason
    assert not [r for r in store.query_audit(bc_id=posted["id"]) if r.action == "resolve_comment"]


def test_planted_duplicates_healed_once_and_a_deleted_one_does_not_wedge_the_batch(env, store) -> None:
    from bc_jira.sync import heal

    clock, jira, up = env
    heal._LINK_TYPE.clear()
    rec = invoice(1)
    keep, dup, deleted = (jira.plant(rec["id"]) for _ in range(3))
    jira.gone.add(deleted)  # found by the search, deleted before it is healed
    clock.now += timedelta(seconds=60)  # past the search lag
    counts = up().upsert([rec])
    assert counts.created == 0
    assert counts.updated == 1
    assert store.get_links("purchase_invoices", [rec["id"]])[rec["id"]].issue_id == keep
    assert jira.links == [("Duplicate", dup, keep)]
    assert len(jira.comments[dup]) == 1
    assert "duplicates FIN-" in str(jira.comments[dup][0])
    assert keep not in jira.comments
    assert jira.transitions == {}
    rows = {r.action: r for r in store.query_audit(bc_id=rec["id"])}
    assert "duplicate" in rows
    assert "issue no longer exists" in rows["duplicate_failed"].reason
    assert store.pending_effects("duplicate") == []
    before = dict(jira.calls)
    up().upsert([rec])  # the retry / the next run: the link table knows the record, nothing is owed
    assert jira.calls.get("link") == before.get("link")
    assert len(jira.comments[dup]) == 1


# -- replay never moves data backwards --------------------------------------------------------------------


def test_replayed_older_version_is_stale_and_sends_nothing(env, store) -> None:
    clock, jira, up = env
    old = invoice(1)
    up().upsert([old])
    new = dict(
        old, totalAmountIncludingTax=555.0, status="Draft", lastModifiedDateTime="2026-11-20T11:00:00Z"
    )
    assert up().upsert([new]).updated == 1
    before = dict(jira.calls)
    counts = up().upsert([old])  # the first run's upsert, cleared: its stored batch holds the old version
    assert (counts.stale, counts.updated, counts.unchanged) == (1, 0, 0)
    assert jira.calls == before  # nothing sent
    issue = jira.by_record(old["id"])[0]
    assert issue["fields"][AMT] == 555.0
    link = store.get_links("purchase_invoices", [old["id"]])[old["id"]]
    assert link.bc_last_modified == "2026-11-20T11:00:00Z"  # the link still knows the newest version
    row = store.query_audit(bc_id=old["id"], action="stale")[0]
    assert "older than the one already synced" in row.reason
    assert row.issue_key == issue["key"]
    assert up().upsert([new]).unchanged == 1  # the same version is not stale


def test_record_claimed_by_a_live_run_is_left_to_it(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(i) for i in range(4)]
    taken, _ = store.claim_records(
        "purchase_invoices", [recs[0]["id"]], "d/other_run/upsert[3]", 1, clock(), CLAIM_TTL_SECONDS
    )
    assert taken == {recs[0]["id"]}
    u = up()
    counts = u.upsert(recs)
    assert (counts.claimed, counts.created) == (1, 3)
    assert jira.by_record(recs[0]["id"]) == []  # the owner creates it, not us
    assert u.held == {recs[0]["id"]: recs[0]["lastModifiedDateTime"]}
    row = store.query_audit(bc_id=recs[0]["id"], action="claimed")[0]
    assert row.reason.startswith("claimed by d/other_run/upsert[3] (try 1")
    assert store.get_links("purchase_invoices", [recs[0]["id"]]) == {}
    # our claims are released once our links are written; the other run's claim is untouched
    assert list(store.get_claims("purchase_invoices", [r["id"] for r in recs])) == [recs[0]["id"]]


def test_claim_of_a_crashed_owner_is_taken_over_through_the_pending_intent(env, store) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    # a run crashed after Jira committed its create of recs[0]: intent pending, issue exists, claims left
    crashed_at = clock() - timedelta(seconds=CLAIM_TTL_SECONDS + 1)
    store.claim_records("purchase_invoices", [r["id"] for r in recs], "d/dead/upsert[0]", 1, crashed_at, 60)
    jira.bulk_create([{"fields": {RID: recs[0]["id"]}}])
    jira.issues[max(jira.issues, key=int)]["created"] = crashed_at
    store.upsert_link(
        Link(
            "purchase_invoices",
            recs[0]["id"],
            state=LinkState.PENDING,
            content_hash="h",
            updated_at=crashed_at,
        )
    )
    counts = up().upsert(recs)
    # found by JQL as the crashed owner's create (the intent's hash differs: its owned fields are rewritten)
    assert (counts.claimed, counts.updated, counts.created) == (0, 1, 1)
    assert store.get_links("purchase_invoices", [recs[0]["id"]])[recs[0]["id"]].state == LinkState.LINKED
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)
    assert store.get_claims("purchase_invoices", [r["id"] for r in recs]) == {}


def test_a_later_try_of_the_same_task_takes_its_claim_back_at_once(env, store) -> None:
    clock, jira, up = env
    rec = invoice(1)
    store.claim_records("purchase_invoices", [rec["id"]], "d/r1/upsert[0]", 1, clock(), CLAIM_TTL_SECONDS)
    u = up()
    u.run = RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=2)
    assert u.upsert([rec]).created == 1
    # an older try never takes a newer try's claim
    store.claim_records("purchase_invoices", [rec["id"]], "d/r1/upsert[0]", 3, clock(), CLAIM_TTL_SECONDS)
    u.run = RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=2)
    assert u.upsert([rec]).claimed == 1


# -- write-back acts only on the record the issue names: link created issues by value ------------------------


def test_bulk_answer_in_another_order_is_linked_by_value(env, store) -> None:
    clock, jira, up = env
    jira.misorder = True
    recs = [invoice(i) for i in range(120)]
    counts = up().upsert(recs)
    assert counts.created == 120
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    for r in recs:
        assert jira.issues[links[r["id"]].issue_id]["fields"][RID] == r["id"]
    # one read-back per two bulk creates: 3 creates (50 + 50 + 20) -> 2 fetches
    assert (jira.calls["bulk_create"], jira.calls["fetch"]) == (3, 2)


def test_created_issue_not_confirmed_stays_pending_and_is_found_later(env, store, monkeypatch) -> None:
    clock, jira, up = env
    recs = [invoice(1), invoice(2)]
    real = jira.fetch
    monkeypatch.setattr(
        jira, "fetch", lambda ids, fields: [i for i in real(ids, fields) if i["id"] != ids[0]]
    )
    with pytest.raises(SyncError, match="1 of 2"):
        up().upsert(recs)
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert sorted(lk.state for lk in links.values()) == [LinkState.LINKED, LinkState.PENDING]
    monkeypatch.setattr(jira, "fetch", real)
    counts = up().upsert(recs)
    assert (counts.linked, counts.created) == (1, 0)
    assert all(len(jira.by_record(r["id"])) == 1 for r in recs)

"""The upsert's decisions, without I/O: stale records, lookups, and what happens to each record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bc_jira.store import Link
from bc_jira.store.schema import LinkState
from bc_jira.sync.plan import ReadPlan, plan_batch, plan_reads, stale_reason

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Draft:
    needs_human: bool


def rec(bc_id: str, modified: str = "2026-03-01T10:00:00Z") -> dict[str, str]:
    return {"id": bc_id, "lastModifiedDateTime": modified}


def link(bc_id: str, state: str, issue: str | None = None, **kw: object) -> Link:
    return Link(
        entity="purchase_invoices",
        bc_id=bc_id,
        issue_id=issue,
        issue_key=f"FIN-{issue}" if issue else None,
        state=state,
        **kw,
    )


def issue(n: int) -> dict[str, str]:
    return {"id": str(n), "key": f"FIN-{n}"}


def test_stale_and_unclaimed_records_are_not_current() -> None:
    records = {"a": rec("a", "2026-03-01T09:00:00Z"), "b": rec("b"), "c": rec("c")}
    links = {"a": link("a", LinkState.LINKED, "1", bc_last_modified="2026-03-01T09:30:00Z")}
    drafts = {k: Draft(True) for k in records}
    read = plan_reads(records, drafts, links, {"a", "b"}, NOW, 60)
    assert list(read.current) == ["b"]
    assert "older than the one already synced" in read.stale["a"]
    assert "c" not in read.stale  # held by another run: neither current nor stale
    assert read.unknown == ["b"]
    assert read.pending == []


def test_a_newer_or_equal_version_is_not_stale() -> None:
    lk = link("a", LinkState.LINKED, "1", bc_last_modified="2026-03-01T10:00:00Z")
    assert stale_reason(rec("a"), lk) is None
    assert stale_reason(rec("a", "2026-03-01T11:00:00Z"), lk) is None
    assert stale_reason(rec("a"), None) is None


def test_pending_intents_wait_for_search_to_settle_from_the_youngest() -> None:
    records = {"p": rec("p"), "q": rec("q")}
    links = {
        "p": link("p", LinkState.PENDING, updated_at=NOW - timedelta(seconds=50)),
        "q": link("q", LinkState.PENDING, updated_at=NOW - timedelta(seconds=20)),
    }
    read = plan_reads(records, {k: Draft(True) for k in records}, links, {"p", "q"}, NOW, 60)
    assert read.pending == ["p", "q"]
    assert read.unknown == []  # a pending intent is looked up as such, not as an unknown record
    assert read.settle_wait == 40


def test_failed_or_issueless_links_are_looked_up_again_when_a_human_is_needed() -> None:
    records = {"f": rec("f"), "o": rec("o"), "n": rec("n")}
    links = {"f": link("f", LinkState.FAILED), "o": link("o", "open"), "n": link("n", LinkState.FAILED)}
    drafts = {"f": Draft(True), "o": Draft(True), "n": Draft(False)}
    read = plan_reads(records, drafts, links, set(records), NOW, 60)
    assert read.unknown == ["f", "o"]


def test_batch_plan_links_found_creates_missing_gives_up_unneeded_intents() -> None:
    current = {
        b: Draft(b not in ("gone", "quiet")) for b in ("found", "lost", "gone", "new", "known", "quiet")
    }
    links = {
        "found": link("found", LinkState.PENDING, content_hash="h1"),
        "lost": link("lost", LinkState.PENDING, content_hash="h2"),
        "gone": link("gone", LinkState.PENDING, content_hash="h3"),
        "known": link("known", LinkState.LINKED, "7", content_hash="h4"),
    }
    read = ReadPlan(current, {}, ["found", "lost", "gone"], ["new"], 0.0)
    plan = plan_batch(read, links, {"found": [issue(5)]}, {})
    assert plan.relink == {"found": (issue(5), "h1")}
    assert plan.recovered == ["found"]
    assert plan.give_up == ["gone"]
    assert plan.create == ["lost", "new"]
    assert plan.update == ["found", "known"]
    assert plan.skip == ["quiet"]  # needs no human step and has no issue
    assert plan.assumed_hash("found") == "h1"
    assert plan.assumed_hash("known") is None


def test_batch_plan_keeps_the_oldest_found_issue_and_heals_the_others() -> None:
    current = {"a": Draft(True), "b": Draft(True)}
    read = ReadPlan(current, {}, [], ["a", "b"], 0.0)
    plan = plan_batch(read, {}, {}, {"a": [issue(2), issue(9), issue(11)], "b": [issue(3)]})
    assert plan.relink == {"a": (issue(2), ""), "b": (issue(3), "")}
    assert plan.duplicates == {"a": (issue(2), [issue(9), issue(11)])}
    assert plan.create == []
    assert plan.update == ["a", "b"]

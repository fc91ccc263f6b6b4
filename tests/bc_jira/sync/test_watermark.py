"""The watermark plan: never backwards, held below records another run has not synced."""

from __future__ import annotations

from datetime import UTC, datetime

from bc_jira.store import Link
from bc_jira.store.schema import LinkState
from bc_jira.sync.watermark import hold_below, next_watermark, plan_watermark


def test_watermark_plan_never_decreases_and_says_so() -> None:
    newer, older = "2026-12-01T20:10:59Z", "2026-12-01T18:46:47Z"
    replay = {"high_watermark": older, "watermark": "2026-12-01T18:00:00Z"}
    plan = plan_watermark(replay, newer)
    assert (plan.value, plan.write) == (newer, False)
    assert "advanced" not in plan.message
    assert f"left at {newer}" in plan.message
    assert next_watermark(replay, newer) == newer
    fresh = plan_watermark({"high_watermark": newer, "watermark": older}, older)
    assert (fresh.value, fresh.write) == (newer, True)
    assert "advanced" in fresh.message
    same = plan_watermark({"high_watermark": newer, "watermark": newer}, newer)
    assert not same.write
    assert "unchanged" in same.message
    back = plan_watermark({"backfill": True, "high_watermark": "2027-01-01T00:00:00Z"}, older)
    assert (back.value, back.write) == (older, False)
    assert "backfill" in back.message


def test_watermark_held_below_records_another_run_has_not_synced() -> None:
    start = "2026-12-01T10:00:00Z"
    read = {"high_watermark": "2026-12-01T12:00:00Z", "watermark": start}
    skipped = {"a": "2026-12-01T11:00:00.250Z", "b": "2026-12-01T11:30:00Z", "c": "2026-12-01T11:40:00Z"}
    links = {
        "a": Link(
            "purchase_invoices", "a", state=LinkState.PENDING, bc_last_modified=skipped["a"]
        ),  # owner still at it
        "b": Link("purchase_invoices", "b", state=LinkState.LINKED, bc_last_modified=skipped["b"]),  # synced
        "c": Link(
            "purchase_invoices", "c", state=LinkState.LINKED, bc_last_modified="2026-12-01T09:00:00Z"
        ),  # older
    }
    hold = hold_below(skipped, links)
    assert hold == datetime(2026, 12, 1, 11, 0, 0, 250000, tzinfo=UTC)
    plan = plan_watermark(read, start, hold)
    assert plan.write
    assert plan.value == "2026-12-01T11:00:00.249000Z"
    assert "held below" in plan.message
    links["a"] = Link("purchase_invoices", "a", state=LinkState.LINKED, bc_last_modified=skipped["a"])
    assert hold_below(skipped, links) == datetime(2026, 12, 1, 11, 40, tzinfo=UTC)  # c: older version synced
    links["c"] = Link("purchase_invoices", "c", state=LinkState.RESOLVED, bc_last_modified=skipped["c"])
    assert hold_below(skipped, links) is None
    assert plan_watermark(read, start, None).value == "2026-12-01T12:00:00Z"
    # a hold never moves a newer watermark back either
    assert plan_watermark(read, "2026-12-01T13:00:00Z", hold).value == "2026-12-01T13:00:00Z"


# -- two runs at the same time never make two issues for one record --------------------------------------

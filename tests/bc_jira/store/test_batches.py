"""A run's batches written once and handed out again on retry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from bc_jira.store.batches import batch_id, plan_batches

if TYPE_CHECKING:
    from bc_jira.store import StateStore


def test_save_batches_is_idempotent_per_run(store: StateStore) -> None:
    recs = [{"id": f"r{i}", "amount": i * 1.5, "when": "2026-11-20T10:00:00Z"} for i in range(5)]
    ids = store.save_batches("purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00", recs, 2)
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert [store.load_batch(b) for b in ids] == [recs[0:2], recs[2:4], recs[4:5]]

    again = store.save_batches(
        "purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00", [{"id": "changed"}] * 7, 1
    )
    assert again == ids
    assert [r for b in again for r in store.load_batch(b)] == recs  # not rewritten
    assert store.batch_ids("purchase_invoices", "scheduled__2026-11-20T10:00:00+00:00") == ids
    assert store.batch_ids("vendors", "scheduled__2026-11-20T10:00:00+00:00") == []
    other = store.save_batches("vendors", "scheduled__2026-11-20T10:00:00+00:00", recs[:1], 50)
    assert len(other) == 1
    assert other[0] not in ids
    assert store.save_batches("vendors", "empty-run", [], 10) == []

    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            store.save_batches("vendors", "r2", recs, bad)  # type: ignore[arg-type]

    assert store.purge_batches(datetime.now(UTC) - timedelta(days=1)) == 0
    assert store.purge_batches(datetime.now(UTC) + timedelta(seconds=1)) == 4
    with pytest.raises(KeyError, match="not in the state store"):
        store.load_batch(ids[0])


# -- planning (no database) ------------------------------------------------------------------------------


def test_plan_batches_numbers_full_batches_and_a_remainder() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    rows = plan_batches("vendors", "run-1", ({"n": n} for n in range(5)), 2, now)
    assert [r["seq"] for r in rows] == [0, 1, 2]
    assert [r["size"] for r in rows] == [2, 2, 1]
    assert [json.loads(r["records"]) for r in rows] == [
        [{"n": 0}, {"n": 1}],
        [{"n": 2}, {"n": 3}],
        [{"n": 4}],
    ]
    assert [r["batch_id"] for r in rows] == [batch_id("vendors", "run-1", s) for s in range(3)]
    assert rows[2]["batch_id"].startswith("vendors:")
    assert rows[2]["batch_id"].endswith(":00002")
    assert {r["created_at"] for r in rows} == {now}
    assert batch_id("vendors", "run-2", 0) != batch_id("vendors", "run-1", 0)
    assert plan_batches("vendors", "run-1", [], 2, now) == []


def test_plan_batches_serialises_each_batch_when_it_is_full() -> None:
    """A 100,000-record extract hands its records over one at a time and lets go of them: a full batch is
    JSON before the next record is asked for, so the objects are not all held beside their JSON
    (``save_batches`` writes each row before it asks for the next)."""
    first = [{"n": 0}, {"n": 1}]

    def records():
        yield from first
        first[0]["n"] = 99  # changed after its batch filled: the stored batch is the JSON from before
        yield {"n": 2}

    rows = plan_batches("vendors", "run-1", records(), 2, datetime(2026, 12, 1, tzinfo=UTC))
    assert [json.loads(r["records"]) for r in rows] == [[{"n": 0}, {"n": 1}], [{"n": 2}]]


@pytest.mark.parametrize("size", [0, -1, True, 2.0, "2"])
def test_plan_batches_refuses_a_bad_size(size: object) -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer"):
        plan_batches("vendors", "r", [{"n": 1}], size, datetime.now(UTC))  # type: ignore[arg-type]

"""Record claims: one owner at a time, takeover of stale claims, races across processes."""

from __future__ import annotations

import multiprocessing
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bc_jira.store import StateStore
from bc_jira.store import engine as store_engine
from bc_jira.store import schema as store_schema
from tests.support.store_db import table_names

E = "purchase_invoices"


def test_claims_one_owner_at_a_time_with_takeover(store: StateStore) -> None:
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    taken, held = store.claim_records(E, ["a", "b"], "d/run1/upsert[0]", 1, t0, 900)
    assert (taken, held) == ({"a", "b"}, {})
    taken, held = store.claim_records(E, ["b", "c"], "d/run2/upsert[0]", 1, t0 + timedelta(seconds=5), 900)
    assert taken == {"c"}
    assert held == {"b": ("d/run1/upsert[0]", 1, t0)}
    # the owner re-claiming refreshes its claim (heartbeat); a later try of the same task takes it back
    assert store.claim_records(E, ["b"], "d/run1/upsert[0]", 1, t0 + timedelta(seconds=600), 900)[0] == {"b"}
    assert store.claim_records(E, ["a"], "d/run1/upsert[0]", 2, t0 + timedelta(seconds=601), 900)[0] == {"a"}
    # an earlier try never takes a later try's claim
    assert store.claim_records(E, ["a"], "d/run1/upsert[0]", 1, t0 + timedelta(seconds=602), 900)[0] == set()
    # older than the TTL: the owner is gone, another run takes it over
    late = t0 + timedelta(seconds=600 + 901)
    assert store.claim_records(E, ["b"], "d/run2/upsert[0]", 1, late, 900)[0] == {"b"}
    # releasing drops only the releasing owner's claims
    assert store.release_claims(E, ["a", "b", "c"], "d/run1/upsert[0]") == 1  # a
    assert store.get_claims(E, ["a", "b", "c"]) == {
        "b": ("d/run2/upsert[0]", 1, late),
        "c": ("d/run2/upsert[0]", 1, t0 + timedelta(seconds=5)),
    }
    assert store.claim_records("vendors", ["b"], "d/run1/upsert[0]", 1, t0, 900)[0] == {"b"}  # per entity


def _claim_many(url: str, owner: str, ids: list[str], start_at: float, out: Any) -> None:
    try:
        s = StateStore.from_url(url)
        time.sleep(max(0.0, start_at - time.time()))
        mine: set[str] = set()
        for i in range(0, len(ids), 50):  # like the upserts: one claim statement per batch
            mine |= s.claim_records(E, ids[i : i + 50], owner, 1, datetime.now(UTC), 900)[0]
        out.put((owner, sorted(mine)))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent process
        out.put((owner, f"{type(exc).__name__}: {exc}"))


def test_claims_race_across_processes_gives_each_record_one_owner(store: StateStore, url: str) -> None:
    store.ensure_schema()
    store.get_claims(E, ["warm"])  # the parent holds pooled connections: forked children must not reuse them
    ids = [f"rec-{n:04d}" for n in range(400)]
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    procs = []
    for k in range(4):
        order = ids if k % 2 == 0 else list(reversed(ids))  # overlapping sets in both orders
        procs.append(ctx.Process(target=_claim_many, args=(url, f"d/run{k}/upsert[0]", order, start_at, out)))
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert all(isinstance(v, list) for v in results.values()), results
    owners: dict[str, list[str]] = {}
    for owner, got in results.items():
        for bc_id in got:
            owners.setdefault(bc_id, []).append(owner)
    assert sorted(owners) == ids  # every record claimed ...
    assert all(len(v) == 1 for v in owners.values())  # ... by exactly one run
    claims = store.get_claims(E, ids)
    assert all(claims[b][0] == owners[b][0] for b in ids)


def test_claims_table_added_to_a_store_created_before_it(url: str) -> None:
    """A state store created by the previous release (no bc_jira_claims) gets the table on first use."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in store_schema.metadata.sorted_tables:
            if table.name != "bc_jira_claims":
                table.create(conn)
    engine.dispose()
    assert "bc_jira_claims" not in table_names(url)
    store_engine._SCHEMA_READY.clear()
    old = StateStore.from_url(url)
    assert old.claim_records(E, ["a"], "d/r/upsert", 1, datetime.now(UTC), 900)[0] == {"a"}
    assert "bc_jira_claims" in table_names(url)

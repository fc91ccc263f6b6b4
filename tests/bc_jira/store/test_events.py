"""Staged inbound events and delivery tombstones against real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bc_jira.store import StateStore
from bc_jira.store import schema as store_schema


def test_stage_event_dedupes(store: StateStore) -> None:
    assert store.stage_event("jira", "jira_webhook", "wh-1", {"issue": {"key": "FIN-1"}}) is True
    assert store.stage_event("jira", "jira_webhook", "wh-1", {"issue": {"key": "other"}}) is False
    [ev] = store.pending_events()
    assert (ev.source, ev.kind, ev.dedupe_key, ev.payload) == (
        "jira",
        "jira_webhook",
        "wh-1",
        {"issue": {"key": "FIN-1"}},
    )
    assert ev.status == "staged"
    assert ev.attempts == 0
    assert ev.error is None
    assert ev.received_at.tzinfo is not None
    assert abs(datetime.now(UTC) - ev.received_at) < timedelta(minutes=1)


def test_event_lifecycle(store: StateStore) -> None:
    for i, kind in enumerate(["bc", "jira", "bc"]):
        store.stage_event("src", kind, f"k{i}", {"n": i})
    assert [e.payload["n"] for e in store.pending_events()] == [0, 1, 2]  # oldest first
    assert [e.payload["n"] for e in store.pending_events(kind="bc")] == [0, 2]
    assert [e.payload["n"] for e in store.pending_events(limit=2)] == [0, 1]
    assert (store.count_pending(), store.count_pending("bc"), store.count_pending("nope")) == (3, 2, 0)

    first = store.pending_events()[0]
    store.mark_event_failed(first.id, "BC 503")
    store.mark_event_failed(first.id, "x" * 100_000)
    again = store.pending_events()[0]
    assert (again.id, again.status, again.attempts) == (first.id, "failed", 2)
    assert again.error.startswith("xxx")
    assert 1000 < len(again.error) <= store_schema.MAX_ERROR
    assert store.count_pending() == 3  # a failed event stays for replay

    store.delete_event(first.id)
    assert [e.payload["n"] for e in store.pending_events()] == [1, 2]
    assert not store.stage_event("src", "bc", "k1", {})  # still de-duplicated while staged


def test_stage_delivery_once_per_delivery_key_with_tombstones(store: StateStore) -> None:
    from datetime import timedelta

    ttl = timedelta(hours=24)

    def stage(delivery: str, body: str, event_key: str) -> str:
        return store.stage_delivery(
            "jira",
            "jira.transition",
            event_key,
            {"b": body},
            delivery_key=delivery,
            body_sha256=body,
            ttl=ttl,
        )

    assert stage("d1", "h1", "e1") == "staged"
    assert stage("d1", "h1", "e1") == "duplicate"  # a retry
    assert stage("d1", "h2", "e2") == "conflict"  # the identifier reused for another body
    assert stage("d2", "h3", "e1") == "duplicate"  # the same change through another delivery
    assert store.count_pending() == 1
    assert store.count_deliveries() == 2
    (ev,) = store.pending_events()
    store.delete_event(ev.id)
    assert stage("d1", "h1", "e1") == "duplicate"  # late retry after processing: the tombstone remains
    assert store.count_pending() == 0
    store.stage_delivery("bc", "k", "e9", {}, delivery_key="d9", body_sha256="x", ttl=timedelta(seconds=-1))
    assert store.count_deliveries() == 3
    assert stage("d3", "h4", "e3") == "staged"  # purges the expired d9 on the way
    assert store.count_deliveries() == 3
    assert "d9" not in store.dump_text()


def test_tombstone_table_added_to_a_database_created_without_it(url: str) -> None:
    """A store created by the previous code (no bc_jira_deliveries) gets the table on first use."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    old = [t for t in store_schema.metadata.sorted_tables if t.name != "bc_jira_deliveries"]
    store_schema.metadata.create_all(engine, tables=old)
    assert "bc_jira_deliveries" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    st = StateStore.from_url(url)
    from datetime import timedelta

    out = st.stage_delivery("bc", "k", "e", {}, delivery_key="d", body_sha256="h", ttl=timedelta(hours=1))
    assert out == "staged"
    assert st.count_deliveries() == 1

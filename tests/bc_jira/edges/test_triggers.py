"""StagedEventTrigger: fires on new staged events (not consuming them), once per new batch; assets."""

from __future__ import annotations

import asyncio
import time

import pytest

from bc_jira.edges import triggers
from bc_jira.store import StateStore


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    st = StateStore.from_url(sqlite_url)
    st.ensure_schema()
    return st


def test_serialize_roundtrip_is_importable_by_path(sqlite_url: str) -> None:
    import importlib

    t = triggers.StagedEventTrigger(["b", "a", "a"], poll_interval=0.5, store_url=sqlite_url)
    path, kwargs = t.serialize()
    mod, _, name = path.rpartition(".")
    again = getattr(importlib.import_module(mod), name)(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs["kinds"] == ["a", "b"]


def test_fires_on_new_events_only_and_never_consumes(store: StateStore, sqlite_url: str) -> None:
    trig = triggers.StagedEventTrigger(["jira.transition"], poll_interval=0.05, store_url=sqlite_url)

    async def scenario() -> list[tuple[float, dict]]:
        events: list[tuple[float, dict]] = []
        queue: asyncio.Queue = asyncio.Queue()

        async def pump() -> None:
            async for ev in trig.run():
                await queue.put(ev.payload)

        task = asyncio.create_task(pump())

        async def nxt(timeout: float) -> dict | None:
            try:
                return await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                return None

        assert await nxt(0.3) is None  # nothing staged: silent
        store.stage_event("bc", "bc.vendors", "other-kind", {})  # a kind it does not watch
        assert await nxt(0.3) is None
        t0 = time.monotonic()
        store.stage_event("jira", "jira.transition", "k1", {"issue_id": "1"})
        first = await nxt(5.0)
        events.append((time.monotonic() - t0, first))
        assert await nxt(0.3) is None  # same pending event: not announced twice
        store.stage_event("jira", "jira.transition", "k2", {"issue_id": "2"})
        events.append((0.0, await nxt(5.0)))
        # processed and deleted, then a new event that SQLite gives the same id: still announced
        newest = max(e.id for e in store.pending_events("jira.transition"))
        for e in store.pending_events("jira.transition"):
            store.delete_event(e.id)
        assert await nxt(0.3) is None
        store.stage_event("jira", "jira.transition", "k3", {"issue_id": "3"})
        reused = store.pending_events("jira.transition")[0].id
        events.append((float(reused == newest), await nxt(5.0)))
        task.cancel()
        return events

    events = asyncio.run(scenario())
    latency, first = events[0]
    assert first["pending"] == 1
    assert first["kinds"] == ["jira.transition"]
    assert latency < 3.0  # poll interval 0.05 s; generous for a loaded CI machine
    assert events[1][1]["pending"] == 2
    assert events[2][1] is not None
    assert events[2][1]["pending"] == 1
    assert store.count_pending("jira.transition") == 1  # not consumed


def test_restarted_trigger_announces_pending_backlog(store: StateStore, sqlite_url: str) -> None:
    store.stage_event("jira", "jira.transition", "k1", {})
    trig = triggers.StagedEventTrigger(["jira.transition"], poll_interval=0.05, store_url=sqlite_url)

    async def first() -> dict:
        gen = trig.run()
        ev = await asyncio.wait_for(gen.__anext__(), 2.0)
        await gen.aclose()
        return ev.payload

    assert asyncio.run(first())["pending"] == 1


def test_assets_and_watchers_are_stable() -> None:
    a, b = triggers.bc_change_asset("vendors"), triggers.bc_vendor_events_asset()
    assert a == b
    assert a.name == "bc_jira_bc_vendors_changes"
    assert a.watchers[0].trigger.serialize() == b.watchers[0].trigger.serialize()
    assert triggers.bc_invoice_events_asset().watchers[0].trigger.kinds == ["bc.purchase_invoices"]
    assert triggers.jira_transition_asset().watchers[0].trigger.kinds == ["jira.transition"]
    with pytest.raises(ValueError, match="purchase_orders"):
        triggers.bc_change_asset("purchase_orders")


def test_outbound_schedule_picks_up_the_asset() -> None:
    from airflow.sdk import AssetOrTimeSchedule

    from bc_jira.sync import dag

    sched = dag.schedule_for("vendors", "*/15 * * * *")
    assert isinstance(sched, AssetOrTimeSchedule)
    assert "bc_jira_bc_vendors_changes" in repr(sched)

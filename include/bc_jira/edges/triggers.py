"""Event-driven scheduling: a trigger that wakes DAGs when the plugin stages events, and the assets it feeds.

The plugin writes webhook deliveries to the state store; :class:`StagedEventTrigger` (run by the triggerer
through an ``AssetWatcher``) polls that table and fires an asset event when new rows appear, so the DAG runs
within seconds instead of at its next cron tick. It never consumes rows: the DAG deletes an event only after
its effect is done and audited, so the trigger remembers in memory which pending rows it has
announced. After a triggerer restart it announces still-pending events once more (a replay; the DAGs are
idempotent).

Use in a DAG (cron OR event)::

    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable
    from bc_jira.edges.triggers import bc_change_asset
    schedule = AssetOrTimeSchedule(timetable=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
                                   assets=bc_change_asset("purchase_invoices"))
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from bc_jira.edges.intake import BC_ENTITIES, KIND_JIRA_TRANSITION, bc_kind

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from bc_jira.edges.protocols import EventStore

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL_S = 2.0


class StagedEventTrigger(BaseEventTrigger):
    """Fires when the state store holds staged (or failed, awaiting replay) events of ``kinds``.

    ``store_url``: explicit state-store URL (tests); default ``StateStore.from_airflow(conn_id)``.
    """

    def __init__(
        self,
        kinds: Sequence[str],
        poll_interval: float = DEFAULT_POLL_INTERVAL_S,
        conn_id: str = "bc_jira_db",
        store_url: str | None = None,
    ) -> None:
        super().__init__()
        self.kinds = sorted(set(kinds))
        self.poll_interval = float(poll_interval)
        self.conn_id = conn_id
        self.store_url = store_url

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "bc_jira.edges.triggers.StagedEventTrigger",
            {
                "kinds": list(self.kinds),
                "poll_interval": self.poll_interval,
                "conn_id": self.conn_id,
                "store_url": self.store_url,
            },
        )

    def _store(self) -> EventStore:
        from bc_jira.store import StateStore

        if self.store_url:
            return StateStore.from_url(self.store_url)
        return StateStore.from_airflow(self.conn_id)

    def snapshot(self) -> tuple[int, frozenset[tuple[int, str]]]:
        """``(pending count, identities of the oldest pending events)`` (blocking: run in a thread).

        Identity is (id, received_at): SQLite reuses the id of a deleted last row, so an id alone could
        look "already announced" for a brand-new event.
        """
        store = self._store()
        count, seen = 0, set[tuple[int, str]]()
        for kind in self.kinds:
            count += store.count_pending(kind)
            seen.update((e.id, e.received_at.isoformat()) for e in store.pending_events(kind, limit=500))
        return count, frozenset(seen)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        announced: frozenset[tuple[int, str]] = frozenset()
        while True:
            try:
                count, seen = await asyncio.to_thread(self.snapshot)
            except Exception as exc:  # noqa: BLE001 - a store hiccup must not kill the watcher
                log.warning(
                    "staged-event trigger %s: state store not readable (%s); retrying",
                    self.kinds,
                    type(exc).__name__,
                )
                await asyncio.sleep(max(self.poll_interval, 5.0))
                continue
            fresh = seen - announced
            announced = seen  # forget what is gone: memory stays bounded by the backlog
            if count and fresh:
                newest = max(i for i, _ in fresh)
                log.info("staged-event trigger %s: %d pending, %d new", self.kinds, count, len(fresh))
                yield TriggerEvent(
                    {"kinds": self.kinds, "pending": count, "new": len(fresh), "newest_event_id": newest}
                )
            await asyncio.sleep(self.poll_interval)


def staged_events_asset(
    name: str,
    kinds: Sequence[str],
    poll_interval: float = DEFAULT_POLL_INTERVAL_S,
    store_url: str | None = None,
) -> Asset:
    """An asset whose watcher fires on staged events of ``kinds`` (same args -> same trigger)."""
    trigger = StagedEventTrigger(kinds=kinds, poll_interval=poll_interval, store_url=store_url)
    return Asset(
        name=name,
        uri=f"bc-jira://events/{name}",
        group="bc_jira",
        watchers=[AssetWatcher(name=f"{name}_watcher", trigger=trigger)],
    )


def bc_change_asset(entity: str) -> Asset:
    """BC change notifications for ``purchase_invoices`` or ``vendors`` (outbound DAGs' event schedule)."""
    if entity not in BC_ENTITIES.values():
        raise ValueError(
            f"BC sends change notifications only for {sorted(BC_ENTITIES.values())}, not {entity!r}"
        )
    return staged_events_asset(f"bc_jira_bc_{entity}_changes", [bc_kind(entity)])


def bc_invoice_events_asset() -> Asset:
    return bc_change_asset("purchase_invoices")


def bc_vendor_events_asset() -> Asset:
    return bc_change_asset("vendors")


def jira_transition_asset() -> Asset:
    """Jira status changes staged by the plugin (``jira_transitions_to_bc``'s event schedule)."""
    return staged_events_asset("bc_jira_jira_transitions", [KIND_JIRA_TRANSITION])

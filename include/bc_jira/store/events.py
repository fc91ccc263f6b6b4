"""Staged inbound events and delivery tombstones (``bc_jira_events``, ``bc_jira_deliveries``).

Why staged: the intake answers BC and Jira within their timeouts by writing the event durably and nothing
else; the DAGs process it later. The tombstones outlive the events so a late retry is still a duplicate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.schema import MAX_ERROR, Event, aware, deliveries, dumps, events, loads, utcnow

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy.engine import Connection

    from bc_jira.store.engine import Database

_OPEN = ("staged", "failed")  # event statuses still to be processed


def _event_values(
    source: str, kind: str, dedupe_key: str, payload: dict[str, Any], now: datetime
) -> dict[str, object]:
    return {
        "source": source,
        "kind": kind,
        "dedupe_key": dedupe_key[:512],
        "payload": dumps(payload),
        "status": "staged",
        "attempts": 0,
        "received_at": now,
        "updated_at": now,
    }


class EventRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def stage_event(self, source: str, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
        """Stage one event durably; False when the same dedupe key was staged before."""
        values = _event_values(source, kind, dedupe_key, payload, utcnow())
        with self._db.tx() as conn:
            stmt = self._db.insert_ignore(events, values, ["dedupe_key"])
            return conn.execute(stmt).rowcount == 1

    def stage_delivery(
        self,
        source: str,
        kind: str,
        dedupe_key: str,
        payload: dict[str, Any],
        *,
        delivery_key: str,
        body_sha256: str,
        ttl: timedelta,
    ) -> str:
        """Stage the event of one delivery, once per delivery key; the delivery's tombstone lives ``ttl``.

        Returns ``"staged"``; ``"duplicate"`` (the delivery was seen with the same body, even if its event
        is long processed and deleted, or another delivery staged the same change); ``"conflict"`` (the
        delivery key was seen with a different body: nothing staged). One transaction; expired tombstones
        are purged on the way.
        """
        now = utcnow()
        with self._db.tx(immediate=True) as conn:
            conn.execute(deliveries.delete().where(deliveries.c.expires_at < now))
            tomb = {
                "delivery_key": delivery_key[:512],
                "source": source,
                "body_sha256": body_sha256,
                "event_key": dedupe_key[:512],
                "received_at": now,
                "expires_at": now + ttl,
            }
            seen = self._seen_body(conn, tomb)
            if seen is not None:
                return "duplicate" if seen == body_sha256 else "conflict"
            values = _event_values(source, kind, dedupe_key, payload, now)
            staged = conn.execute(self._db.insert_ignore(events, values, ["dedupe_key"])).rowcount == 1
            return "staged" if staged else "duplicate"

    def _seen_body(self, conn: Connection, tomb: dict[str, object]) -> str | None:
        """The body hash an earlier delivery of this key left, else None after writing this tombstone."""
        seen_q = sa.select(deliveries.c.body_sha256).where(deliveries.c.delivery_key == tomb["delivery_key"])
        seen = conn.execute(seen_q).scalar()
        if (
            seen is None
            and conn.execute(self._db.insert_ignore(deliveries, tomb, ["delivery_key"])).rowcount != 1
        ):
            seen = conn.execute(seen_q).scalar()  # a concurrent twin committed first
        return seen

    def count_deliveries(self) -> int:
        with self._db.tx() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one())

    def pending_events(self, kind: str | None = None, limit: int = 500) -> list[Event]:
        q = sa.select(events).where(events.c.status.in_(_OPEN))
        if kind is not None:
            q = q.where(events.c.kind == kind)
        q = q.order_by(events.c.id).limit(limit)
        with self._db.tx() as conn:
            return [
                Event(
                    r.id,
                    r.source,
                    r.kind,
                    r.dedupe_key,
                    loads(r.payload),
                    r.status,
                    r.attempts,
                    r.error,
                    aware(r.received_at),
                )
                for r in conn.execute(q)
            ]

    def count_pending(self, kind: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(events).where(events.c.status.in_(_OPEN))
        if kind is not None:
            q = q.where(events.c.kind == kind)
        with self._db.tx() as conn:
            return int(conn.execute(q).scalar_one())

    def mark_event_failed(self, event_id: int, error: str) -> None:
        with self._db.tx() as conn:
            conn.execute(
                events.update()
                .where(events.c.id == event_id)
                .values(
                    status="failed",
                    attempts=events.c.attempts + 1,
                    error=error[:MAX_ERROR],
                    updated_at=utcnow(),
                )
            )

    def delete_event(self, event_id: int) -> None:
        with self._db.tx() as conn:
            conn.execute(events.delete().where(events.c.id == event_id))

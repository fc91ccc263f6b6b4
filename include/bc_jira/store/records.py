"""Small keyed records of the edges: BC subscriptions, the Jira webhook, OAuth consent states.

Subscriptions and webhooks are one JSON ``fields`` column per key (their shape follows the vendor's answer);
a consent state is consumed once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.schema import aware, dumps, loads, oauth_states, utcnow

if TYPE_CHECKING:
    from bc_jira.store.engine import Database


class FieldsRepository:
    """Rows of ``(key, fields JSON, updated_at)``: BC subscriptions or Jira webhooks."""

    def __init__(self, db: Database, table: sa.Table, key_col: str) -> None:
        self._db = db
        self._table = table
        self._key = key_col

    def get(self, key: str) -> dict[str, Any] | None:
        table = self._table
        with self._db.tx() as conn:
            row = conn.execute(sa.select(table).where(table.c[self._key] == key)).first()
        if row is None:
            return None
        return {**loads(row.fields), self._key: key, "updated_at": aware(row.updated_at)}

    def put(self, key: str, values: dict[str, Any]) -> None:
        """Merge ``values`` into the stored fields."""
        current = self.get(key) or {}
        current.pop("updated_at", None)
        current.pop(self._key, None)
        current.update(values)
        row = {self._key: key, "fields": dumps(current), "updated_at": utcnow()}
        with self._db.tx() as conn:
            conn.execute(self._db.upsert(self._table, row, [self._key]))

    def delete(self, key: str) -> None:
        with self._db.tx() as conn:
            conn.execute(self._table.delete().where(self._table.c[self._key] == key))

    def list(self) -> list[dict[str, Any]]:
        with self._db.tx() as conn:
            rows = conn.execute(sa.select(self._table).order_by(self._table.c[self._key])).all()
        return [{**loads(r.fields), self._key: r[0], "updated_at": aware(r.updated_at)} for r in rows]


class OAuthStateRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put_oauth_state(self, state: str, meta: dict[str, Any]) -> None:
        with self._db.tx() as conn:
            conn.execute(oauth_states.insert().values(state=state, meta=dumps(meta), created_at=utcnow()))

    def pop_oauth_state(self, state: str, max_age_s: float = 600) -> dict[str, Any] | None:
        """Consume a consent state once; None when unknown, used or older than ``max_age_s``."""
        with self._db.tx(immediate=True) as conn:
            row = conn.execute(sa.select(oauth_states).where(oauth_states.c.state == state)).first()
            if row is None:
                return None
            conn.execute(oauth_states.delete().where(oauth_states.c.state == state))
            conn.execute(
                oauth_states.delete().where(
                    oauth_states.c.created_at < utcnow() - timedelta(seconds=max_age_s)
                )
            )
        created = aware(row.created_at)
        if created is None or created < utcnow() - timedelta(seconds=max_age_s):
            return None
        return loads(row.meta)

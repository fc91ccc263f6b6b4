"""Effects owed in Jira that Jira cannot make idempotent (``bc_jira_effects``): made exactly once.

The intent is written before the call and the outcome after it; ``attempts > 0`` while pending means an
earlier call may have reached Jira, so the caller looks for the effect before making it again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.links import CHUNK
from bc_jira.store.schema import MAX_ERROR, Effect, aware, dumps, effects, loads, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Row

    from bc_jira.store.engine import Database


def effect_from_row(r: Row[Any]) -> Effect:
    return Effect(
        r.effect_key,
        r.kind,
        r.entity,
        r.bc_id,
        r.issue_id,
        r.issue_key,
        loads(r.payload) or {},
        r.state,
        r.attempts,
        loads(r.result),
        r.error,
        aware(r.created_at),
        aware(r.updated_at),
        r.company,
    )


class EffectRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def put_effect(self, effect: Effect) -> Effect:
        """Record the intent once (insert-or-ignore on the key); returns the stored row, old or new."""
        now = utcnow()
        values = {
            "effect_key": effect.effect_key,
            "kind": effect.kind,
            "entity": effect.entity,
            "bc_id": effect.bc_id,
            "company": effect.company,
            "issue_id": effect.issue_id,
            "issue_key": effect.issue_key,
            "payload": dumps(effect.payload or {}),
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._db.tx() as conn:
            conn.execute(self._db.insert_ignore(effects, values, ["effect_key"]))
            row = conn.execute(sa.select(effects).where(effects.c.effect_key == effect.effect_key)).one()
        return effect_from_row(row)

    def get_effect(self, effect_key: str) -> Effect | None:
        with self._db.tx() as conn:
            row = conn.execute(sa.select(effects).where(effects.c.effect_key == effect_key)).first()
        return effect_from_row(row) if row is not None else None

    def effect_attempt(self, effect_key: str) -> None:
        """Written right before the call: from now on a lost answer means "look before making it again"."""
        with self._db.tx() as conn:
            conn.execute(
                effects.update()
                .where(effects.c.effect_key == effect_key)
                .values(attempts=effects.c.attempts + 1, updated_at=utcnow())
            )

    def finish_effect(
        self, effect_key: str, state: str, *, result: Any = None, error: str | None = None
    ) -> None:
        with self._db.tx() as conn:
            conn.execute(
                effects.update()
                .where(effects.c.effect_key == effect_key)
                .values(
                    state=state,
                    result=dumps(result),
                    error=error[:MAX_ERROR] if error else None,
                    updated_at=utcnow(),
                )
            )

    def pending_effects(
        self,
        kind: str,
        *,
        entity: str | None = None,
        bc_ids: Iterable[str] | None = None,
        limit: int = 500,
        company: str | None = None,
    ) -> list[Effect]:
        """Pending effects of ``kind`` (``company`` None: of every company; the write-back's pass)."""
        q = sa.select(effects).where(effects.c.kind == kind, effects.c.state == "pending")
        if company is not None:
            q = q.where(effects.c.company == company)
        if entity is not None:
            q = q.where(effects.c.entity == entity)
        out: list[Effect] = []
        with self._db.tx() as conn:
            if bc_ids is None:
                out = [
                    effect_from_row(r) for r in conn.execute(q.order_by(effects.c.created_at).limit(limit))
                ]
            else:
                ids = list(dict.fromkeys(bc_ids))
                for i in range(0, len(ids), CHUNK):
                    chunk = q.where(effects.c.bc_id.in_(ids[i : i + CHUNK])).order_by(effects.c.created_at)
                    out += [effect_from_row(r) for r in conn.execute(chunk)]
        return out[:limit]

    def count_effects(
        self, kind: str, entity: str, bc_id: str, state: str = "done", company: str = ""
    ) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(effects)
            .where(
                effects.c.kind == kind,
                effects.c.entity == entity,
                effects.c.bc_id == bc_id,
                effects.c.company == company,
                effects.c.state == state,
            )
        )
        with self._db.tx() as conn:
            return int(conn.execute(q).scalar_one())

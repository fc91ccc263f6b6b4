"""Record claims (``bc_jira_claims``): two runs never work on one record at once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bc_jira.store.links import CHUNK
from bc_jira.store.schema import aware, claims

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

    from bc_jira.store.engine import Database

Holder = tuple[str, int, datetime | None]  # (owner, try_number, claimed_at)
_CLAIM_CHUNK = 200  # 5 parameters a row: far below SQLite's limit
_RELEASED: Holder = ("another run (since released)", 0, None)


class ClaimRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def claim_records(
        self,
        entity: str,
        bc_ids: Iterable[str],
        owner: str,
        try_number: int,
        now: datetime,
        ttl_s: float,
        company: str = "",
    ) -> tuple[set[str], dict[str, Holder]]:
        """Claim each record for ``owner``; returns (taken, {bc_id: (owner, try, claimed_at) held by others}).

        One ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`` per chunk: a free record is inserted, a
        claim of the same task instance (an earlier or the same try: a retry or a clear) or one claimed
        more than ``ttl_s`` before ``now`` (its owner is gone) is taken over, any other claim stays with
        its owner. The database decides row by row under its own lock, so two runs never both get one
        record.
        Re-claiming what one holds refreshes ``claimed_at`` (the heartbeat). Ids are sorted so two
        PostgreSQL transactions lock overlapping rows in the same order (no deadlock).
        """
        ids = sorted(set(bc_ids))
        taken: set[str] = set()
        if not ids:
            return taken, {}
        stale_before = now - timedelta(seconds=ttl_s)
        with self._db.tx(immediate=True) as conn:
            for i in range(0, len(ids), _CLAIM_CHUNK):
                chunk = ids[i : i + _CLAIM_CHUNK]
                taken.update(
                    self._claim_chunk(conn, (company, entity), chunk, owner, try_number, now, stale_before)
                )
        others = [b for b in ids if b not in taken]
        held = self.get_claims(entity, others, company) if others else {}
        # released between the two statements: still skipped now (the watermark of this run holds them)
        return taken, {b: held.get(b, _RELEASED) for b in others}

    def _claim_chunk(
        self,
        conn: Connection,
        key: tuple[str, str],
        chunk: list[str],
        owner: str,
        try_number: int,
        now: datetime,
        stale_before: datetime,
    ) -> list[str]:
        company, entity = key
        rows = [
            {
                "company": company,
                "entity": entity,
                "bc_id": b,
                "owner": owner,
                "try_number": try_number,
                "claimed_at": now,
            }
            for b in chunk
        ]
        stmt = self._db.insert(claims).values(rows)
        stmt = stmt.on_conflict_do_update(
            index_elements=["company", "entity", "bc_id"],
            set_={
                "owner": stmt.excluded.owner,
                "try_number": stmt.excluded.try_number,
                "claimed_at": stmt.excluded.claimed_at,
            },
            where=sa.or_(
                sa.and_(claims.c.owner == stmt.excluded.owner, claims.c.try_number <= try_number),
                claims.c.claimed_at < stale_before,
            ),
        )
        return [r.bc_id for r in conn.execute(stmt.returning(claims.c.bc_id))]

    def get_claims(self, entity: str, bc_ids: Iterable[str], company: str = "") -> dict[str, Holder]:
        """Current claims of these records: {bc_id: (owner, try, claimed_at)} (diagnostics, takeover logs)."""
        ids = sorted(set(bc_ids))
        out: dict[str, Holder] = {}
        with self._db.tx() as conn:
            for i in range(0, len(ids), CHUNK):
                q = sa.select(claims).where(
                    claims.c.company == company,
                    claims.c.entity == entity,
                    claims.c.bc_id.in_(ids[i : i + CHUNK]),
                )
                out.update({r.bc_id: (r.owner, r.try_number, aware(r.claimed_at)) for r in conn.execute(q)})
        return out

    def release_claims(self, entity: str, bc_ids: Iterable[str], owner: str, company: str = "") -> int:
        """Drop this owner's claims (after its links are written); claims taken over by others stay."""
        ids = sorted(set(bc_ids))
        n = 0
        with self._db.tx() as conn:
            for i in range(0, len(ids), CHUNK):
                n += conn.execute(
                    claims.delete().where(
                        claims.c.company == company,
                        claims.c.entity == entity,
                        claims.c.bc_id.in_(ids[i : i + CHUNK]),
                        claims.c.owner == owner,
                    )
                ).rowcount
        return n

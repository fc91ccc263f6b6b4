"""A run's extracted records as numbered batches (``bc_jira_batches``): a retry or clear gets them back.

Why in the store and not XCom: the mapped upsert tasks read their batch by id, and a re-run of the extract
must hand out the same ids (the same records) instead of a second, different set.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.schema import batches, dumps, loads, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import datetime

    from bc_jira.store.engine import Database


def batch_id(entity: str, run_key: str, seq: int, company: str = "") -> str:
    """The default company's ids are the ones from before companies (a replay finds its batches)."""
    scope = f"{entity}|{company}" if company else entity
    digest = hashlib.sha1(f"{scope}|{run_key}".encode(), usedforsecurity=False).hexdigest()[:16]
    return f"{entity}:{digest}:{seq:05d}"


def _check_size(batch_size: object) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")


def iter_batches(
    entity: str,
    run_key: str,
    records: Iterable[dict[str, Any]],
    batch_size: int,
    now: datetime,
    company: str = "",
) -> Iterator[dict[str, Any]]:
    """The ``bc_jira_batches`` rows of a run, one at a time: ``batch_size`` records each, numbered from 0.

    Each row is made as soon as its chunk is full, so a caller that hands over records one at a time and
    writes each row before asking for the next never holds a run's records whole (a 100,000-record extract).
    """
    _check_size(batch_size)
    chunk: list[dict[str, Any]] = []
    seq = 0
    for rec in records:
        chunk.append(rec)
        if len(chunk) >= batch_size:
            yield _row(entity, run_key, seq, chunk, now, company)
            seq, chunk = seq + 1, []
    if chunk:
        yield _row(entity, run_key, seq, chunk, now, company)


def _row(
    entity: str, run_key: str, seq: int, chunk: list[dict[str, Any]], now: datetime, company: str
) -> dict[str, Any]:
    return {
        "batch_id": batch_id(entity, run_key, seq, company),
        "entity": entity,
        "company": company,
        "run_key": run_key,
        "seq": seq,
        "records": dumps(chunk),
        "size": len(chunk),
        "created_at": now,
    }


def plan_batches(
    entity: str,
    run_key: str,
    records: Iterable[dict[str, Any]],
    batch_size: int,
    now: datetime,
    company: str = "",
) -> list[dict[str, Any]]:
    """Every ``bc_jira_batches`` row of a run (no I/O); see :func:`iter_batches`."""
    return list(iter_batches(entity, run_key, records, batch_size, now, company))


class BatchRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def save_batches(
        self,
        entity: str,
        run_key: str,
        records: Iterable[dict[str, Any]],
        batch_size: int,
        company: str = "",
    ) -> list[str]:
        """Write a run's records once as numbered batches; a retry or clear gets the same ids back."""
        _check_size(batch_size)
        existing = self.batch_ids(entity, run_key, company)
        if existing:
            return existing
        rows = iter_batches(entity, run_key, records, batch_size, utcnow(), company)
        first = next(rows, None)
        if first is None:
            return []
        with self._db.tx(immediate=True) as conn:
            # Batch 0 is the run's claim: whoever inserts it writes the whole run. A concurrent extract of
            # the same run waits on that row (PostgreSQL) or the write lock (SQLite), then finds it taken.
            if conn.execute(self._db.insert_ignore(batches, first, ["batch_id"])).rowcount == 1:
                ids = [first["batch_id"]]
                for row in rows:  # one row at a time, in the same transaction: all or nothing
                    conn.execute(batches.insert(), [row])
                    ids.append(row["batch_id"])
                return ids
        return self.batch_ids(entity, run_key, company)

    def batch_ids(self, entity: str, run_key: str, company: str = "") -> list[str]:
        q = (
            sa.select(batches.c.batch_id)
            .where(batches.c.entity == entity, batches.c.run_key == run_key, batches.c.company == company)
            .order_by(batches.c.seq)
        )
        with self._db.tx() as conn:
            return [r.batch_id for r in conn.execute(q)]

    def load_batch(self, batch_id: str) -> list[dict[str, Any]]:
        with self._db.tx() as conn:
            row = conn.execute(sa.select(batches.c.records).where(batches.c.batch_id == batch_id)).first()
        if row is None:
            raise KeyError(f"batch {batch_id} is not in the state store (purged? re-run the extract task)")
        return loads(row.records)

    def batch_company(self, batch_id: str) -> str:
        """The store key of the company a batch belongs to (``KeyError`` when the batch is gone)."""
        with self._db.tx() as conn:
            row = conn.execute(sa.select(batches.c.company).where(batches.c.batch_id == batch_id)).first()
        if row is None:
            raise KeyError(f"batch {batch_id} is not in the state store (purged? re-run the extract task)")
        return str(row.company)

    def purge_batches(self, older_than: datetime) -> int:
        with self._db.tx() as conn:
            return conn.execute(batches.delete().where(batches.c.created_at < older_than)).rowcount

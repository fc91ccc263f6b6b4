"""The audit trail (``bc_jira_audit``): what was read, sent and answered per record, by which task."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa

from bc_jira.store.schema import MAX_ERROR, AuditRow, audit_log, aware, dumps, links, loads, utcnow

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from sqlalchemy.engine import Row

    from bc_jira.store.engine import Database

_JSON_FIELDS = ("read", "sent", "response")


def audit_values(rows: Sequence[AuditRow], now: datetime) -> list[dict[str, Any]]:
    """The rows to insert: JSON columns encoded, errors cut to ``MAX_ERROR``, ``at`` defaulted (no I/O)."""
    values = []
    for row in rows:
        v = asdict(row)
        v.pop("id")
        v["at"] = row.at or now
        for key in _JSON_FIELDS:
            v[key] = dumps(v[key])
        if v["error"]:
            v["error"] = str(v["error"])[:MAX_ERROR]
        values.append(v)
    return values


def audit_from_row(r: Row[Any]) -> AuditRow:
    return AuditRow(
        entity=r.entity,
        bc_id=r.bc_id,
        action=r.action,
        document_number=r.document_number,
        issue_key=r.issue_key,
        reason=r.reason,
        read=loads(r.read),
        sent=loads(r.sent),
        response=loads(r.response),
        error=r.error,
        dag_id=r.dag_id,
        run_id=r.run_id,
        task_id=r.task_id,
        map_index=r.map_index,
        try_number=r.try_number,
        at=aware(r.at),
        id=r.id,
        company=r.company,
    )


def _latest_per_record_query(
    text_filter: str | None,
    errors_only: bool,
    entity: str | None,
    before_id: int | None,
    limit: int,
    company: str | None = None,
) -> sa.Select[Any]:
    """Keyset-paged: ``before_id`` is the last row's ``id`` of the previous page. Walks the primary key
    backwards and keeps a row when no newer row of its record exists (one probe of ``ix_bc_jira_audit_record``
    per row), so a page costs about ``limit`` rows, not a GROUP BY over the whole audit table."""
    newer = sa.alias(audit_log, "newer")
    q = (
        sa.select(
            audit_log,
            links.c.issue_key.label("link_issue_key"),
            links.c.issue_id,
            links.c.state.label("link_state"),
            links.c.document_number.label("link_document"),
        )
        .where(
            ~sa.exists().where(
                newer.c.company == audit_log.c.company,
                newer.c.entity == audit_log.c.entity,
                newer.c.bc_id == audit_log.c.bc_id,
                newer.c.id > audit_log.c.id,
            )
        )
        .outerjoin(
            links,
            sa.and_(
                links.c.company == audit_log.c.company,
                links.c.entity == audit_log.c.entity,
                links.c.bc_id == audit_log.c.bc_id,
            ),
        )
    )
    if entity is not None:
        q = q.where(audit_log.c.entity == entity)
    if company is not None:
        q = q.where(audit_log.c.company == company)
    if before_id is not None:
        q = q.where(audit_log.c.id < before_id)
    if errors_only:
        q = q.where(audit_log.c.error.is_not(None))
    needle = (text_filter or "").strip().lower()
    if needle:
        searched = (
            audit_log.c.document_number,
            audit_log.c.issue_key,
            audit_log.c.bc_id,
            audit_log.c.error,
            audit_log.c.entity,
            links.c.issue_key,
            links.c.document_number,
        )
        q = q.where(sa.or_(*(sa.func.lower(c).contains(needle, autoescape=True) for c in searched)))
    return q.order_by(audit_log.c.id.desc()).limit(limit)


class BatchKey(NamedTuple):
    """The task instance that wrote audit rows (``map_index`` None: any, e.g. a task that is not mapped)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int | None = None


_BATCH_COLUMNS = (audit_log.c.dag_id, audit_log.c.run_id, audit_log.c.task_id, audit_log.c.map_index)


class AuditRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def audit(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        values = audit_values(rows, utcnow())
        with self._db.tx() as conn:
            conn.execute(audit_log.insert(), values)

    def query_audit(
        self,
        *,
        entity: str | None = None,
        bc_id: str | None = None,
        issue_key: str | None = None,
        action: str | None = None,
        errors_only: bool = False,
        before_id: int | None = None,
        limit: int = 200,
        batch: BatchKey | None = None,
        company: str | None = None,
    ) -> list[AuditRow]:
        """Audit rows, newest first; ``before_id`` pages on (keyset on the primary key); ``batch`` keeps the
        rows one task instance wrote (dag, run, task, map index: one batch of one run)."""
        q = sa.select(audit_log)
        if before_id is not None:
            q = q.where(audit_log.c.id < before_id)
        for col, value in (
            (audit_log.c.entity, entity),
            (audit_log.c.bc_id, bc_id),
            (audit_log.c.issue_key, issue_key),
            (audit_log.c.action, action),
            (audit_log.c.company, company),
            *(zip(_BATCH_COLUMNS, batch, strict=True) if batch else ()),
        ):
            if value is not None:
                q = q.where(col == value)
        if errors_only:
            q = q.where(audit_log.c.error.is_not(None))
        q = q.order_by(audit_log.c.id.desc()).limit(limit)
        with self._db.tx() as conn:
            return [audit_from_row(r) for r in conn.execute(q)]

    def latest_per_record(
        self,
        *,
        text_filter: str | None = None,
        errors_only: bool = False,
        entity: str | None = None,
        before_id: int | None = None,
        limit: int = 500,
        company: str | None = None,
    ) -> list[dict[str, Any]]:
        """The newest audit row of each record with its link (the audit view's table), newest first."""
        q = _latest_per_record_query(text_filter, errors_only, entity, before_id, limit, company)
        out = []
        with self._db.tx() as conn:
            for r in conn.execute(q):
                row = asdict(audit_from_row(r))
                row.pop("read")
                row.update(
                    issue_key=r.issue_key or r.link_issue_key,
                    issue_id=r.issue_id,
                    link_state=r.link_state,
                    document_number=r.document_number or r.link_document,
                )
                out.append(row)
        return out

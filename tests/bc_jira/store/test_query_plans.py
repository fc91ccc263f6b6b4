"""The incremental sync's statements use indexes: one changed record costs the same over 3,000 links as 3.

Every statement the extract and the upsert of one changed record send (captured from the real code, not
listed by hand) is explained on SQLite (``EXPLAIN QUERY PLAN``) and PostgreSQL (``EXPLAIN`` with sequential
scans disabled, so a plan that still scans has no index to use); none may scan a table that grows with
history.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bc_jira.config import parse_config
from bc_jira.store import AuditRow, Link, StateStore
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import RunInfo
from bc_jira.sync.extract import extract
from bc_jira.sync.upsert import Upserter
from tests.support.sync_fakes import IDS, Clock, FakeBC, FakeJira, invoice

# tables whose size grows with the records ever synced (batches and audit rows are per run / appended)
GROWING = ("bc_jira_links", "bc_jira_claims", "bc_jira_effects", "bc_jira_batches", "bc_jira_audit_log")
HISTORY = 3000


def _seed_history(store: StateStore) -> None:
    """HISTORY links of records synced long ago, as a first sync leaves them."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    store.upsert_links(
        [
            Link(
                "purchase_invoices",
                f"11111111-0000-0000-0000-{n:012d}",
                f"PI{n}",
                str(50_000 + n),
                f"FIN-{50_000 + n}",
                "h",
                "2026-11-01T00:00:00Z",
                LinkState.LINKED,
                now,
            )
            for n in range(HISTORY)
        ]
    )


def _capture(store: StateStore) -> tuple[list[tuple[str, Any]], Any]:
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, executemany: bool) -> None:
        if not executemany:
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", listen)
    return seen, listen


def _scans(store: StateStore, statement: str, params: Any) -> list[str]:
    """The plan lines of ``statement`` that read a growing table without an index."""
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            lines = [str(r[-1]) for r in rows]
            return [ln for ln in lines if ln.startswith("SCAN ") and any(t in ln for t in GROWING)]
        conn.exec_driver_sql("SET enable_seqscan = off")
        rows = conn.exec_driver_sql(f"EXPLAIN {statement}", params).all()
        conn.rollback()  # EXPLAIN of a write statement does not run it; nothing to keep anyway
        lines = [str(r[0]) for r in rows]
        return [ln for ln in lines if "Seq Scan" in ln and any(t in ln for t in GROWING)]


def test_one_changed_record_over_a_long_history_reads_no_table_whole(store: StateStore) -> None:
    store.ensure_schema()
    clock = Clock()
    jira = FakeJira(clock)
    cfg = parse_config(
        {"project_key": "FIN", "entities": {"purchase_invoices": {"resolved_transition": "Done"}}}
    )

    def upserter(run_id: str) -> Upserter:
        run = RunInfo(dag_id="d", run_id=run_id, task_id="upsert", map_index=0, try_number=1)
        return Upserter(
            cfg=cfg,
            entity="purchase_invoices",
            ids=IDS,
            jira=jira,
            store=store,
            run=run,
            sleep=clock.sleep,
            clock=clock,
            link_cls=Link,
            audit_cls=AuditRow,
        )

    recs = [invoice(i) for i in range(3)]
    assert upserter("first").upsert(recs).created == 3
    _seed_history(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")  # the planner knows the tables are large

    changed = dict(recs[1], totalAmountIncludingTax=999.5, lastModifiedDateTime="2026-11-20T11:00:00Z")
    seen, listen = _capture(store)
    try:
        out = extract(
            "purchase_invoices",
            cfg=cfg,
            bc=FakeBC([changed]),
            store=store,
            run=RunInfo(run_id="next"),
            watermark="2026-11-20T10:59:00Z",
        )
        counts = upserter("next").upsert(store.load_batch(out["batch_ids"][0]))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", listen)

    assert (counts.updated, jira.calls["edit"]) == (1, 1)
    explained = [
        (s, p) for s, p in seen if s.lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE")
    ]
    assert len(explained) >= 4, seen  # the link reads, the claim, the effects: the test saw the real path
    scans = {s: _scans(store, s, p) for s, p in explained}
    assert not {s: lines for s, lines in scans.items() if lines}
    # the check itself can see a scan: no index covers document_number
    assert _scans(store, "SELECT count(*) FROM bc_jira_links WHERE document_number = 'PI7'", ())

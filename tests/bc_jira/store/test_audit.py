"""The audit trail: insert, query, the newest row per record with its link."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bc_jira.store import AuditRow, Link, StateStore


def _row(bc_id: str, action: str, **kw: Any) -> AuditRow:
    return AuditRow(entity=kw.pop("entity", "purchase_invoices"), bc_id=bc_id, action=action, **kw)


def test_audit_insert_and_query(store: StateStore) -> None:
    store.audit([])
    store.audit(
        [
            _row(
                "a",
                "created",
                document_number="PI1",
                issue_key="FIN-1",
                read={"id": "a", "n": 1},
                sent={"fields": {"summary": "s"}},
                response={"key": "FIN-1"},
                dag_id="d",
                run_id="r",
                task_id="t",
                map_index=0,
                try_number=1,
            ),
            _row("b", "error", document_number="PI2", error="Jira 400 INVALID_INPUT: bad field"),
            _row("a", "updated", issue_key="FIN-1", at=datetime(2030, 1, 1, tzinfo=UTC)),
            _row("v", "created", entity="vendors", issue_key="FIN-9"),
        ]
    )
    rows = store.query_audit(entity="purchase_invoices")
    assert [(r.bc_id, r.action) for r in rows] == [("a", "updated"), ("b", "error"), ("a", "created")]
    created = rows[2]
    assert created.read == {"id": "a", "n": 1}
    assert created.sent == {"fields": {"summary": "s"}}
    assert (created.dag_id, created.run_id, created.task_id, created.map_index, created.try_number) == (
        "d",
        "r",
        "t",
        0,
        1,
    )
    assert created.id is not None
    assert created.at.tzinfo is not None
    assert rows[0].at == datetime(2030, 1, 1, tzinfo=UTC)
    assert [r.bc_id for r in store.query_audit(issue_key="FIN-1")] == ["a", "a"]
    assert [r.action for r in store.query_audit(bc_id="a", action="created")] == ["created"]
    assert [r.bc_id for r in store.query_audit(errors_only=True)] == ["b"]
    assert len(store.query_audit(limit=2)) == 2


def test_latest_per_record(store: StateStore) -> None:
    store.upsert_link(Link("purchase_invoices", "a", "PI100", "10001", "FIN-1", "h", None, "linked"))
    store.audit(
        [
            _row("a", "created", document_number="PI100", issue_key="FIN-1"),
            _row("b", "error", document_number="PI_200", error="boom 100%"),
            _row("c", "created", document_number="PI300", issue_key="FIN-3"),
        ]
    )
    store.audit([_row("a", "error", error="Jira 503"), _row("b", "created", issue_key="FIN-2")])

    latest = {r["bc_id"]: r for r in store.latest_per_record()}
    assert set(latest) == {"a", "b", "c"}
    a = latest["a"]
    got = tuple(a[k] for k in ("action", "error", "issue_key", "document_number", "issue_id", "link_state"))
    assert got == ("error", "Jira 503", "FIN-1", "PI100", "10001", "linked")  # link info fills the latest row
    assert latest["b"]["action"] == "created"
    assert latest["b"]["error"] is None
    assert [r["bc_id"] for r in store.latest_per_record()][0] == "b"  # newest first

    def match(**kw: Any) -> list[str]:
        return sorted(r["bc_id"] for r in store.latest_per_record(**kw))

    assert match(errors_only=True) == ["a"]  # b's error is history
    assert match(text_filter="fin-1") == ["a"]
    assert match(text_filter=" pi300 ") == ["c"]
    assert match(text_filter="503") == ["a"]
    assert match(text_filter="%") == []  # wildcards are literal
    assert match(text_filter="I_2") == []  # b's latest row has no document number, its link none either
    assert match(text_filter="FIN", errors_only=True) == ["a"]
    assert len(store.latest_per_record(limit=1)) == 1


def test_audit_values_encode_json_cut_errors_and_default_the_time() -> None:
    from bc_jira.store.audit import audit_values
    from bc_jira.store.schema import MAX_ERROR

    now = datetime(2026, 12, 1, tzinfo=UTC)
    earlier = datetime(2026, 11, 30, tzinfo=UTC)
    rows = [
        AuditRow("vendors", "v1", "created", read={"b": 1, "a": [2]}, error="x" * (MAX_ERROR + 10)),
        AuditRow("vendors", "v2", "skipped", at=earlier, id=99),
    ]
    first, second = audit_values(rows, now)
    assert "id" not in first
    assert "id" not in second
    assert first["read"] == '{"a": [2], "b": 1}'
    assert first["sent"] is None
    assert first["response"] is None
    assert first["error"] == "x" * MAX_ERROR
    assert first["at"] == now
    assert second["at"] == earlier
    assert second["error"] is None


def test_latest_per_record_pages_by_entity_and_history(store: StateStore) -> None:
    """Keyset pages (``before_id``) cover every record once, newest first; the entity filter narrows them."""
    rows = [_row(f"r{i}", "created") for i in range(7)]
    rows += [AuditRow("vendors", f"v{i}", "created", f"V{i}", None) for i in range(3)]
    store.audit(rows)
    store.audit([_row("r1", "edit"), _row("r1", "error", error="Jira 503")])  # r1: three attempts
    pages, before = [], None
    while True:
        page = store.latest_per_record(limit=3, before_id=before)
        pages.append([r["bc_id"] for r in page])
        if len(page) < 3:
            break
        before = page[-1]["id"]
    seen = [b for p in pages for b in p]
    assert seen[0] == "r1"
    assert len(seen) == len(set(seen)) == 10
    ids = [r["id"] for r in store.latest_per_record(limit=100)]
    assert ids == sorted(ids, reverse=True)
    assert sorted(r["bc_id"] for r in store.latest_per_record(entity="vendors")) == ["v0", "v1", "v2"]
    assert [r["bc_id"] for r in store.latest_per_record(entity="vendors", limit=1)] == ["v2"]
    assert store.latest_per_record(entity="purchase_orders") == []
    history = store.query_audit(entity="purchase_invoices", bc_id="r1")
    assert [h.action for h in history] == ["error", "edit", "created"]
    assert [
        h.action for h in store.query_audit(entity="purchase_invoices", bc_id="r1", before_id=history[0].id)
    ] == [
        "edit",
        "created",
    ]

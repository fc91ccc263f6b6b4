"""settle: staged BC events go only once a sync's watermark covers their change, audited."""

from __future__ import annotations

import pytest

from bc_jira.edges import settle
from bc_jira.store import StateStore
from tests.support.bc_notifications import bc_item, bc_post


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    st = StateStore.from_url(sqlite_url)
    st.ensure_schema()
    return st


def test_settle_deletes_only_covered_events_and_audits(store: StateStore) -> None:
    bc_post(
        store,
        [
            bc_item(when="2026-03-01T10:00:00Z"),
            bc_item(rid="DDDD0000-1111-2222-3333-444455556666", when="2026-03-01T11:00:00Z"),
        ],
    )
    n = settle.settle_bc_events(store, "purchase_invoices", "2026-03-01T10:30:00Z", run={"dag_id": "d"})
    assert n == 1
    left = store.pending_events("bc.purchase_invoices")
    assert [e.payload["lastModifiedDateTime"] for e in left] == ["2026-03-01T11:00:00Z"]
    audit = store.query_audit(action="event_settled")
    assert len(audit) == 1
    assert audit[0].dag_id == "d"
    assert settle.settle_bc_events(store, "purchase_invoices", None) == 0

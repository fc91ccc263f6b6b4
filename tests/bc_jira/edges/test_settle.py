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


def test_a_companys_view_settles_its_own_events_and_leaves_unnamed_ones(store: StateStore) -> None:
    """Through a company's view only that company's events go; ``named_only`` (a company other than the
    default) leaves events that name no company: staged before companies, they are the default company's."""
    from tests.support.bc_notifications import COMPANY

    other = "7e2d8c0b-0000-4000-8000-000000000002"
    bc_post(store, [bc_item(when="2026-03-01T10:00:00Z")])
    mine = bc_item(rid="DDDD0000-1111-2222-3333-444455556666", when="2026-03-01T10:00:00Z")
    bc_post(store, [{**mine, "resource": mine["resource"].replace(COMPANY, other)}])
    legacy = {"record_id": "EEEE", "changeType": "updated", "lastModifiedDateTime": "2026-03-01T10:00:00Z"}
    store.stage_event("bc", "bc.purchase_invoices", "legacy:1", legacy)
    view = store.for_company("c0ffee00", other)
    assert settle.settle_bc_events(view, "purchase_invoices", "2026-03-02T00:00:00Z", named_only=True) == 1
    left = store.pending_events("bc.purchase_invoices")
    assert sorted(str(e.payload.get("company_id")) for e in left) == sorted([COMPANY, "None"])
    default = store.for_company("", COMPANY)
    assert settle.settle_bc_events(default, "purchase_invoices", "2026-03-02T00:00:00Z") == 2
    assert store.pending_events("bc.purchase_invoices") == []

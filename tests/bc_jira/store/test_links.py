"""Links (BC record -> Jira issue) against real SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from bc_jira.store import Link, StateStore


def test_links_upsert_and_lookup(store: StateStore) -> None:
    link = Link("purchase_invoices", "guid-1", "PI100", None, None, None, "2026-11-20T10:00:00Z", "pending")
    store.upsert_link(link)
    got = store.get_links("purchase_invoices", ["guid-1", "guid-2"])
    assert list(got) == ["guid-1"]
    assert got["guid-1"].state == "pending"
    assert got["guid-1"].issue_key is None
    assert got["guid-1"].updated_at.tzinfo is not None

    store.upsert_link(
        Link(
            "purchase_invoices",
            "guid-1",
            "PI100",
            "10001",
            "FIN-1",
            "h1",
            "2026-11-20T10:05:00Z",
            "linked",
            datetime(2026, 11, 20, 11, 0, tzinfo=UTC),
        )
    )
    store.upsert_link(Link("vendors", "guid-1", "V1", "10002", "FIN-2", None, None, "linked"))
    got = store.get_links("purchase_invoices", ["guid-1"])["guid-1"]
    assert (got.issue_id, got.issue_key, got.content_hash, got.state) == ("10001", "FIN-1", "h1", "linked")
    assert got.updated_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)

    assert store.get_link_by_issue("FIN-1").bc_id == "guid-1"
    assert store.get_link_by_issue("10002").entity == "vendors"
    assert store.get_link_by_issue("FIN-404") is None
    many = [f"id-{i}" for i in range(1200)] + ["guid-1"]  # more ids than one IN list holds
    assert list(store.get_links("purchase_invoices", many)) == ["guid-1"]

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


def test_written_text_hashes_are_kept_per_link(store: StateStore) -> None:
    store.upsert_link(
        Link(
            "vendors", "v1", "V1", "1", "FIN-1", "h", None, "linked", summary_hash="s1", description_hash="d1"
        )
    )
    got = store.get_links("vendors", ["v1"])["v1"]
    assert (got.summary_hash, got.description_hash) == ("s1", "d1")
    store.upsert_links([Link("vendors", "v1", "V1", "1", "FIN-1", "h2", None, "linked", summary_hash="s2")])
    got = store.get_links("vendors", ["v1"])["v1"]
    assert (got.content_hash, got.summary_hash, got.description_hash) == ("h2", "s2", None)


def test_text_hash_columns_added_to_a_store_made_before_them(url: str) -> None:
    """A store created by the previous schema (bc_jira_links without the hash columns, with a row) is
    upgraded on first use: the columns are added, the old row reads None ("not known") and keeps its data."""
    import sqlalchemy as sa

    from bc_jira.store import schema as store_schema

    old = sa.MetaData()
    for table in store_schema.metadata.sorted_tables:
        copy = table.to_metadata(old)
        if table.name == "bc_jira_links":
            for name in ("summary_hash", "description_hash"):
                copy._columns.remove(copy.c[name])
    engine = sa.create_engine(url)
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            old.tables["bc_jira_links"].insert(),
            {
                "entity": "vendors",
                "bc_id": "v0",
                "issue_id": "9",
                "issue_key": "FIN-9",
                "content_hash": "h0",
                "state": "linked",
                "updated_at": datetime(2026, 1, 1, tzinfo=UTC),
            },
        )
    columns = {c["name"] for c in sa.inspect(engine).get_columns("bc_jira_links")}
    engine.dispose()
    assert "summary_hash" not in columns

    s = StateStore.from_url(url)
    legacy = s.get_links("vendors", ["v0"])["v0"]
    assert (legacy.issue_key, legacy.content_hash, legacy.summary_hash, legacy.description_hash) == (
        "FIN-9",
        "h0",
        None,
        None,
    )
    s.upsert_link(
        Link("vendors", "v1", "V1", "1", "FIN-1", state="linked", summary_hash="s", description_hash="d")
    )
    assert s.get_links("vendors", ["v1"])["v1"].description_hash == "d"
    engine = sa.create_engine(url)
    assert {"summary_hash", "description_hash"} <= {
        c["name"] for c in sa.inspect(engine).get_columns("bc_jira_links")
    }
    engine.dispose()

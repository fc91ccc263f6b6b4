"""A store written by ``main`` before companies: upgraded in place, its rows become the default company's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bc_jira.store import AuditRow, Effect, Link, StateStore
from bc_jira.store import engine as store_engine
from tests.support import pre_company_ddl

GUID = "5d1b1e0a-0000-4000-8000-000000000001"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _old_store(url: str) -> None:
    """The tables exactly as today's main creates them, with a link, a claim, an audit row, an effect."""
    engine = sa.create_engine(url)
    pg = url.startswith("postgresql")
    ddl = pre_company_ddl.POSTGRESQL if pg else pre_company_ddl.SQLITE
    with engine.begin() as conn:
        for stmt in ddl:
            conn.execute(sa.text(stmt))
        conn.execute(
            sa.text(
                "INSERT INTO bc_jira_links (entity, bc_id, document_number, issue_id, issue_key, "
                "content_hash, state, updated_at, summary_hash) VALUES "
                "('purchase_invoices', :b, '108001', '10001', 'FIN-1', 'h1', 'linked', :t, 's1')"
            ),
            {"b": GUID, "t": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO bc_jira_claims (entity, bc_id, owner, try_number, claimed_at) "
                "VALUES ('purchase_invoices', :b, 'd/r/upsert[0]', 1, :t)"
            ),
            {"b": GUID, "t": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO bc_jira_audit (at, entity, bc_id, action, issue_key) "
                "VALUES (:t, 'purchase_invoices', :b, 'create', 'FIN-1')"
            ),
            {"b": GUID, "t": T0},
        )
        conn.execute(
            sa.text(
                "INSERT INTO bc_jira_effects (effect_key, kind, entity, bc_id, state, attempts, created_at, "
                "updated_at) VALUES ('e1', 'resolve_comment', 'purchase_invoices', :b, 'done', 1, :t, :t)"
            ),
            {"b": GUID, "t": T0},
        )
    engine.dispose()


def test_store_from_main_upgraded_rows_are_the_default_companys(url: str) -> None:
    _old_store(url)
    store_engine._SCHEMA_READY.clear()
    store = StateStore.from_url(url)
    old = store.get_links("purchase_invoices", [GUID])[GUID]
    assert (old.company, old.issue_key, old.summary_hash, old.state) == ("", "FIN-1", "s1", "linked")
    assert store.get_link_by_issue("FIN-1") == old
    assert store.count_effects("resolve_comment", "purchase_invoices", GUID) == 1
    assert [r.issue_key for r in store.query_audit(company="")] == ["FIN-1"]
    # the old claim is the default company's: another owner cannot take it while fresh
    taken, held = store.claim_records("purchase_invoices", [GUID], "other", 1, T0 + timedelta(seconds=5), 600)
    assert taken == set()
    assert held[GUID][0] == "d/r/upsert[0]"

    # the key now holds the company: the same GUID in another company is another record
    ca = store.for_company("c0ffee00")
    assert ca.get_links("purchase_invoices", [GUID]) == {}
    taken, _ = ca.claim_records("purchase_invoices", [GUID], "other", 1, T0 + timedelta(seconds=5), 600)
    assert taken == {GUID}
    ca.upsert_link(Link("purchase_invoices", GUID, "108001", "10002", "CA-1", state="linked"))
    assert store.get_links("purchase_invoices", [GUID])[GUID].issue_key == "FIN-1"
    assert ca.get_links("purchase_invoices", [GUID])[GUID].issue_key == "CA-1"
    assert store.get_link_by_issue("CA-1").company == "c0ffee00"

    inspector = sa.inspect(store.engine)
    assert inspector.get_pk_constraint("bc_jira_links")["constrained_columns"] == [
        "company",
        "entity",
        "bc_id",
    ]
    assert inspector.get_pk_constraint("bc_jira_claims")["constrained_columns"] == [
        "company",
        "entity",
        "bc_id",
    ]
    assert "bc_jira_links_pre_company" not in inspector.get_table_names()
    indexes = {ix["name"] for ix in inspector.get_indexes("bc_jira_links")}
    assert {"ix_bc_jira_links_issue_id", "ix_bc_jira_links_issue_key"} <= indexes
    assert "ix_bc_jira_audit_company_id" in {ix["name"] for ix in inspector.get_indexes("bc_jira_audit")}
    store_engine._SCHEMA_READY.clear()
    StateStore.from_url(url).ensure_schema()  # again: nothing to do, no error, nothing lost
    assert StateStore.from_url(url).get_links("purchase_invoices", [GUID])[GUID].issue_key == "FIN-1"


def test_same_guid_in_two_companies_is_two_records(store: StateStore) -> None:
    """Links, batches, claims, audit rows and effects of one company never answer for another."""
    us, ca = store.for_company(""), store.for_company("ab12cd34")
    for view, key in ((us, "FIN-1"), (ca, "CA-1")):
        view.upsert_links([Link("vendors", GUID, "V1", key[-1], key, state="linked")])
        view.audit([AuditRow("vendors", GUID, "create", issue_key=key)])
        view.put_effect(Effect(f"eff-{key}", "resolve_comment", "vendors", GUID))
    assert us.get_links("vendors", [GUID])[GUID].issue_key == "FIN-1"
    assert ca.get_links("vendors", [GUID])[GUID].issue_key == "CA-1"
    assert ca.linked_ids("vendors") == [GUID] == us.linked_ids("vendors")
    assert [r.issue_key for r in ca.query_audit()] == ["CA-1"]
    assert [r.issue_key for r in us.query_audit(company="")] == ["FIN-1"]
    assert {r.issue_key for r in store.query_audit()} == {"FIN-1", "CA-1"}  # not scoped: every company
    assert [e.effect_key for e in ca.pending_effects("resolve_comment")] == ["eff-CA-1"]
    assert [e.company for e in store.pending_effects("resolve_comment")] == ["", "ab12cd34"]
    rows = store.latest_per_record(company="ab12cd34")
    assert [(r["issue_key"], r["company"]) for r in rows] == [("CA-1", "ab12cd34")]
    assert len(store.latest_per_record()) == 2  # one record per company

    b_us = us.save_batches("vendors", "run-1", [{"id": GUID}], 10)
    b_ca = ca.save_batches("vendors", "run-1", [{"id": GUID}], 10)
    assert b_us != b_ca
    assert (us.batch_ids("vendors", "run-1"), ca.batch_ids("vendors", "run-1")) == (b_us, b_ca)
    assert (store.batch_company(b_us[0]), store.batch_company(b_ca[0])) == ("", "ab12cd34")
    assert b_us[0].startswith("vendors:")  # the default company's batch ids are the ones from before

    now = datetime.now(UTC)
    assert us.claim_records("vendors", [GUID], "run-a", 1, now, 600)[0] == {GUID}
    assert ca.claim_records("vendors", [GUID], "run-b", 1, now, 600)[0] == {GUID}  # not the other's claim
    assert ca.release_claims("vendors", [GUID], "run-b") == 1
    assert us.get_claims("vendors", [GUID])[GUID][0] == "run-a"

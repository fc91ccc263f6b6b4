"""Effects owed in Jira: intent, attempt, outcome; the table added to an older store."""

from __future__ import annotations

import sqlalchemy as sa

from bc_jira.store import Link, StateStore
from bc_jira.store import schema as store_schema
from tests.support.store_db import table_names


def test_effects_intent_attempt_outcome(store: StateStore) -> None:
    from bc_jira.store import Effect

    first = store.put_effect(Effect("k1", "resolve_comment", "vendors", "v1", "10001", "FIN-1", {"body": 1}))
    assert (first.state, first.attempts, first.payload) == ("pending", 0, {"body": 1})
    again = store.put_effect(Effect("k1", "resolve_comment", "vendors", "v1", "10001", "FIN-1", {"body": 2}))
    assert again.payload == {"body": 1}
    assert again.created_at == first.created_at
    store.effect_attempt("k1")
    store.effect_attempt("k1")
    assert store.get_effect("k1").attempts == 2
    store.put_effect(Effect("k2", "resolve_comment", "vendors", "v2"))
    store.put_effect(Effect("k3", "duplicate", "vendors", "v1"))
    assert [e.effect_key for e in store.pending_effects("resolve_comment")] == ["k1", "k2"]
    assert [e.effect_key for e in store.pending_effects("resolve_comment", bc_ids=["v2", "zz"])] == ["k2"]
    assert store.pending_effects("resolve_comment", entity="purchase_invoices") == []
    store.finish_effect("k1", "done", result={"comment_id": "7"})
    done = store.get_effect("k1")
    assert done.state == "done"
    assert done.result == {"comment_id": "7"}
    assert done.error is None
    assert [e.effect_key for e in store.pending_effects("resolve_comment")] == ["k2"]
    assert store.count_effects("resolve_comment", "vendors", "v1") == 1
    assert store.count_effects("resolve_comment", "vendors", "v2") == 0
    store.finish_effect("k2", "pending", error="x" * 10000)
    assert len(store.get_effect("k2").error) == 4000
    assert store.get_effect("zz") is None


def test_effects_table_added_to_a_store_made_before_it(url: str) -> None:
    """A database created by the previous schema (no bc_jira_effects) gets the table on first use."""
    old = sa.MetaData()
    for table in store_schema.metadata.sorted_tables:
        if table.name != "bc_jira_effects":
            table.to_metadata(old)
    engine = sa.create_engine(url)
    old.create_all(engine)
    engine.dispose()
    assert "bc_jira_effects" not in table_names(url)
    s = StateStore.from_url(url)
    s.upsert_link(Link("vendors", "v1", "V1", "1", "FIN-1", state="linked"))
    assert "bc_jira_effects" in table_names(url)
    assert s.get_links("vendors", ["v1"])["v1"].issue_key == "FIN-1"

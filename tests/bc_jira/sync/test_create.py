"""Bulk create, read-back and lookup against the sandbox's Jira over real HTTP: what a batch costs."""

from __future__ import annotations

from typing import Any

from bc_jira.mapping import field_ids
from bc_jira.store import StateStore
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import RunInfo
from bc_jira.sync.upsert import Upserter
from tests.support.sync_fakes import invoice, sandbox_cfg

SEARCH = "POST /ex/jira/{cloudId}/rest/api/3/search/jql"
BULK = "POST /ex/jira/{cloudId}/rest/api/3/issue/bulk"
FETCH = "POST /ex/jira/{cloudId}/rest/api/3/issue/bulkfetch"


def _upserter(airflow_conns: dict[str, str], store: StateStore) -> tuple[Upserter, Any, str]:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.sync.jira_ops import JiraOps

    cfg = sandbox_cfg(airflow_conns)
    hook = JiraCloudHook()
    ids = field_ids(cfg.fields, {f["name"]: f["id"] for f in hook.client.get_json("field") if f["custom"]})
    run = RunInfo(dag_id="d", run_id="r1", task_id="upsert", map_index=0, try_number=1)
    up = Upserter(cfg=cfg, entity="purchase_invoices", ids=ids, jira=JiraOps(hook), store=store, run=run)
    return up, hook, ids.record_id


def test_batch_of_500_new_records_costs_17_calls_and_links_each_by_value_under_shuffled_answers(
    sandbox_jira, airflow_conns, sqlite_url
) -> None:
    """500 unlinked records: 2 lookups (250 ids each), 10 bulk creates (50 each), 5 read-backs (100 each):
    0.034 calls per record. The sandbox answers issues[] in shuffled order, so a link made by position would
    point at another record's issue; every link must name the issue that carries its own record id."""
    sandbox_jira.options(bulk_create_order="shuffled")
    store = StateStore.from_url(sqlite_url)
    store.ensure_schema()
    up, _, rid = _upserter(airflow_conns, store)
    recs = [invoice(i) for i in range(500)]
    sandbox_jira.control("POST", "/_sandbox/stats/reset")

    counts = up.upsert(recs)

    assert counts.created == 500
    calls = sandbox_jira.stats()["calls"]
    assert (calls.get(SEARCH), calls.get(BULK), calls.get(FETCH)) == (2, 10, 5)
    assert sum(calls.values()) == 17, calls
    links = store.get_links("purchase_invoices", [r["id"] for r in recs])
    assert {lk.state for lk in links.values()} == {LinkState.LINKED}
    # the sandbox's own view (no search lag): every issue and the record id it carries
    carried = {str(i["id"]): i["fields"][rid] for i in sandbox_jira.control("GET", "/_sandbox/jira/issues")}
    assert len(carried) == 500  # no duplicates
    assert all(carried[links[r["id"]].issue_id] == r["id"] for r in recs)
    # a record linked to another's issue would be off by its position in the shuffled answer
    assert len({lk.issue_id for lk in links.values()}) == 500


def test_lookup_of_250_ids_finds_issues_made_outside_the_link_table(
    sandbox_jira, airflow_conns, sqlite_url, tmp_path
) -> None:
    """A store that lost its links (restored backup): the batched lookup still finds every existing issue,
    in one search per 250 ids, and links it instead of creating a second."""
    sandbox_jira.options(search_lag_s=0)
    first = StateStore.from_url(sqlite_url)
    first.ensure_schema()
    up, _, _ = _upserter(airflow_conns, first)
    recs = [invoice(i) for i in range(300)]
    assert up.upsert(recs).created == 300

    lost = StateStore.from_url(f"sqlite:///{tmp_path}/restored.db")
    lost.ensure_schema()
    again, _, _ = _upserter(airflow_conns, lost)
    sandbox_jira.control("POST", "/_sandbox/stats/reset")
    counts = again.upsert(recs)

    assert counts.created == 0
    calls = sandbox_jira.stats()["calls"]
    assert calls.get(SEARCH) == 2, calls
    assert BULK not in calls, calls
    ids = [r["id"] for r in recs]
    before, after = first.get_links("purchase_invoices", ids), lost.get_links("purchase_invoices", ids)
    assert all(after[b].issue_id == before[b].issue_id for b in ids)
    assert len(sandbox_jira.control("GET", "/_sandbox/jira/issues")) == 300

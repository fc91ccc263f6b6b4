"""The inbound DAGs under ``dag.test()`` against the sandbox over real HTTP, with the plugin app serving the
callbacks; plus (slow) a real ``airflow standalone`` with the plugin: handshake, signed/forged deliveries and
the end-to-end latencies (Jira transition -> BC post, BC change -> Jira issue) with no cron tick involved."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bc_jira.intake import KIND_JIRA_TRANSITION
from bc_jira.store import Link, StateStore
from tests.bc_jira.test_lifecycle import PluginServer, sandbox_secrets
from tests.conftest import REPO


def run_dag(dag_id: str, **kw: Any) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id].test(**kw)


@pytest.fixture
def inbound(sandbox: Any, airflow_conns: dict[str, str], airflow_db: Any, monkeypatch: pytest.MonkeyPatch,
            tmp_path: Any) -> Any:
    from airflow.models.variable import Variable

    from bc_jira.hooks.jira import JiraCloudHook

    sandbox.reset(vendors=8, invoices=10, orders=0)
    db = tmp_path / "state.db"
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    monkeypatch.setattr(StateStore, "_from_airflow_cache", {}, raising=False)
    store = StateStore.from_url(f"sqlite:///{db}")
    server = PluginServer(store, sandbox_secrets(sandbox))
    Variable.set("bc_jira_public_url", server.url)
    fields = JiraCloudHook(store=store).field_ids_by_name()
    Variable.set("bc_jira_jira_fields", json.dumps({k: v for k, v in fields.items() if k.startswith("BC ")}))
    yield {"sandbox": sandbox, "store": store, "server": server, "fields": fields}
    server.stop()
    Variable.delete("bc_jira_public_url")


def _success(dr: Any) -> None:
    from airflow.utils.state import DagRunState

    assert dr.state == DagRunState.SUCCESS, [(ti.task_id, ti.state) for ti in dr.get_task_instances()]


def test_transitions_dag_posts_once_for_a_double_delivery(inbound: dict[str, Any]) -> None:
    from bc_jira.hooks.jira import JiraCloudHook

    sb, store = inbound["sandbox"], inbound["store"]
    inv = next(r for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
               if r["status"] == "Draft")
    jira = JiraCloudHook(store=store)
    issue = jira.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"},
                               "summary": f"Invoice {inv['number']}",
                               inbound["fields"]["BC Record Id"]: inv["id"]})
    store.upsert_link(Link("purchase_invoices", inv["id"], inv["number"], str(issue["id"]), issue["key"],
                           state="linked"))
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    for n in (1, 2):  # the same change staged twice (two deliveries that escaped dedupe)
        store.stage_event("jira", KIND_JIRA_TRANSITION, f"dup:{n}", {"issue_id": str(issue["id"])})
    _success(run_dag("jira_transitions_to_bc"))
    posted = [r for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
              if r["id"] == inv["id"]][0]
    assert posted["status"] == "Open"
    key = ("POST /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/purchaseInvoices({key})"
           "/Microsoft.NAV.post")
    assert sb.stats()["calls"].get(key) == 1
    assert store.count_pending() == 0
    audit = store.query_audit(bc_id=inv["id"])
    assert {a.action for a in audit} >= {"writeback_posted", "writeback_noop", "writeback_comment"}
    assert all(a.dag_id == "jira_transitions_to_bc" and a.run_id for a in audit)
    _success(run_dag("jira_transitions_to_bc"))  # replay of the whole run: nothing new
    assert sb.stats()["calls"].get(key) == 1


def test_lifecycle_dags_create_then_keep_one(inbound: dict[str, Any]) -> None:
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook

    for _ in range(2):
        _success(run_dag("bc_subscriptions_renewal"))
        _success(run_dag("jira_webhooks_refresh"))
    subs = BusinessCentralHook().list_subscriptions()
    assert len(subs) == 2 and all(s["notificationUrl"].startswith(inbound["server"].url) for s in subs)
    hooks = JiraCloudHook(store=inbound["store"]).list_webhooks()
    assert len(hooks) == 1 and hooks[0]["jqlFilter"] == 'project = FIN AND issuetype IN ("Invoice", "Vendor")'
    actions = {s["last_action"] for s in inbound["store"].list_subscriptions()}
    assert actions == {"ok"}

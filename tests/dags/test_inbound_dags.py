"""The inbound DAGs under ``dag.test()`` against the sandbox over real HTTP, with the plugin app serving the
callbacks; plus (slow) a real ``airflow standalone`` with the plugin: handshake, signed/forged deliveries and
the end-to-end latencies (Jira transition -> BC post, BC change -> Jira issue) with no cron tick involved."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bc_jira.edges.intake import KIND_JIRA_TRANSITION
from bc_jira.store import Link, StateStore
from tests.conftest import REPO
from tests.support.outbound import run_dag
from tests.support.plugin_server import PluginServer, sandbox_secrets


@pytest.fixture
def inbound(
    sandbox: Any,
    airflow_conns: dict[str, str],
    airflow_db: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> Any:
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
    inv = next(
        r
        for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    )
    jira = JiraCloudHook(store=store)
    issue = jira.create_issue(
        {
            "project": {"key": "FIN"},
            "issuetype": {"name": "Invoice"},
            "summary": f"Invoice {inv['number']}",
            inbound["fields"]["BC Record Id"]: inv["id"],
        }
    )
    store.upsert_link(
        Link("purchase_invoices", inv["id"], inv["number"], str(issue["id"]), issue["key"], state="linked")
    )
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    for n in (1, 2):  # the same change staged twice (two deliveries that escaped dedupe)
        store.stage_event("jira", KIND_JIRA_TRANSITION, f"dup:{n}", {"issue_id": str(issue["id"])})
    _success(run_dag("jira_transitions_to_bc"))
    posted = [
        r for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"] if r["id"] == inv["id"]
    ][0]
    assert posted["status"] == "Open"
    key = (
        "POST /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/purchaseInvoices({key})"
        "/Microsoft.NAV.post"
    )
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
    assert len(subs) == 2
    assert all(s["notificationUrl"].startswith(inbound["server"].url) for s in subs)
    hooks = JiraCloudHook(store=inbound["store"]).list_webhooks()
    assert len(hooks) == 1
    assert hooks[0]["jqlFilter"] == 'project = FIN AND issuetype IN ("Invoice", "Vendor")'
    actions = {s["last_action"] for s in inbound["store"].list_subscriptions()}
    assert actions == {"ok"}


# -- slow: a real `airflow standalone` with the plugin, the triggerer and the DAGs ---------------------------


class Standalone:
    """``airflow standalone`` (SQLite, LocalExecutor) in its own AIRFLOW_HOME, aimed at a sandbox."""

    def __init__(self, home: Any, env_extra: dict[str, str]) -> None:
        import os
        import subprocess
        import sys
        from pathlib import Path

        from tests.conftest import _free_port

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.home = Path(home)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home}/airflow.db",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
                # unpaused only once the api-server answers: task processes started before it is up hang
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API_AUTH__JWT_SECRET": "x" * 64,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                "BC_JIRA_RETRY_DELAY_SECONDS": "5",
                "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
                **env_extra,
            }
        )
        self.log_path = self.home / "standalone.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "standalone"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.home,
            start_new_session=True,
        )

    def api(self, method: str, path: str, **kw: Any) -> Any:
        import requests

        return requests.request(method, f"{self.url}{path}", timeout=30, **kw)

    def wait_healthy(self, timeout: float = 180.0) -> None:
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.tail()
            try:
                h = requests.get(f"{self.url}/api/v2/monitor/health", timeout=2).json()
                if all(
                    (h.get(k) or {}).get("status") == "healthy"
                    for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        raise AssertionError(f"standalone not healthy in {timeout}s\n{self.tail()}")

    def unpause_all(self, dag_ids: list[str], timeout: float = 120.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        for dag_id in dag_ids:
            while self.api("GET", f"/api/v2/dags/{dag_id}").status_code != 200:
                assert time.monotonic() < deadline, f"{dag_id} never parsed\n{self.tail()}"
                time.sleep(1)
            assert self.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False}).status_code == 200

    def run_dag(self, dag_id: str, timeout: float = 180.0) -> str:
        import time

        deadline = time.monotonic() + timeout
        while self.api("GET", f"/api/v2/dags/{dag_id}").status_code != 200:
            assert time.monotonic() < deadline, f"{dag_id} never parsed\n{self.tail()}"
            time.sleep(1)
        # Standalone runs on SQLite: while the scheduler's tasks write, Airflow's own API can answer 500
        # "Database error" (its SQLite lock). A person clicks Trigger again; so does this, a few times.
        for _ in range(5):
            answer = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", json={"logical_date": None})
            if answer.status_code != 500 or "Database error" not in answer.text:
                break
            time.sleep(2)
        assert answer.status_code == 200, (
            f"trigger {dag_id}: {answer.status_code} {answer.text}\n{self.tail()}"
        )
        run = answer.json()
        while True:
            state = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}").json()["state"]
            if state in ("success", "failed"):
                return state
            assert time.monotonic() < deadline, f"{dag_id} run stuck in {state}\n{self.tail()}"
            time.sleep(1)

    def tail(self, n: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def stop(self) -> None:
        import os
        import signal
        import subprocess

        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


def _wait(pred: Any, timeout: float, what: str, poll: float = 0.25) -> float:
    """Seconds until pred() is truthy (fails after timeout)."""
    import time

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(poll)
    raise AssertionError(f"{what}: not within {timeout}s")


@pytest.mark.slow
def test_end_to_end_in_standalone_airflow(tmp_path: Any) -> None:
    import hashlib
    import hmac
    import time

    import requests

    from bc_jira.hooks.jira import JiraCloudHook
    from tests.conftest import SandboxProcess

    sb = SandboxProcess(
        "--notify-delay-s",
        "5",
        "--search-lag-s",
        "1",
        "--seed-invoices",
        "12",
        "--seed-vendors",
        "10",
        "--seed-orders",
        "2",
    )
    af = None
    try:
        env = sb.env()
        store_path = tmp_path / "home" / "bc_jira_state.db"
        (tmp_path / "home").mkdir()
        # field ids as bc_jira_connect would store them
        import os

        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            fields = JiraCloudHook(
                store=StateStore.from_url(f"sqlite:///{tmp_path}/probe.db")
            ).field_ids_by_name()
        finally:
            for k, v in saved.items():
                os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        env["AIRFLOW_VAR_BC_JIRA_JIRA_FIELDS"] = json.dumps(
            {k: v for k, v in fields.items() if k.startswith("BC ")}
        )
        af = Standalone(tmp_path / "home", env)
        env_public = af.url
        af.wait_healthy()
        af.unpause_all(
            [
                "bc_subscriptions_renewal",
                "jira_webhooks_refresh",
                "bc_purchase_invoices_to_jira",
                "bc_vendors_to_jira",
                "jira_transitions_to_bc",
            ]
        )
        store = StateStore.from_url(f"sqlite:///{store_path}")
        base = f"{env_public}/bc-jira"

        # -- Show 1: handshake, signed / forged / duplicate deliveries on the real api-server --------------
        r = requests.post(f"{base}/bc/notifications?validationToken=hello-bc", timeout=10)
        assert (r.status_code, r.text) == (200, "hello-bc")
        body = json.dumps(
            {
                "webhookEvent": "jira:issue_updated",
                "issue": {
                    "id": "999001",
                    "key": "FIN-999001",
                    "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}},
                },
                "changelog": {
                    "id": "c-999001",
                    "items": [{"field": "status", "fieldId": "status", "toString": "Done"}],
                },
            }
        ).encode()
        sig = hmac.new(sb.creds["webhook_secret"].encode(), body, hashlib.sha256).hexdigest()
        signed = {
            "X-Hub-Signature": f"sha256={sig}",
            "X-Atlassian-Webhook-Identifier": "e2e-1",
            "Content-Type": "application/json",
        }
        t_first = time.monotonic()
        first = requests.post(f"{base}/jira/webhook", data=body, headers=signed, timeout=90)
        print("first signed delivery answered in", round(time.monotonic() - t_first, 2), "s")
        assert first.status_code == 202
        assert first.json()["staged"] == 1
        staged_or_handled = store.count_pending("jira.transition") == 1 or store.query_audit(
            issue_key="999001"
        )
        assert staged_or_handled
        dup = requests.post(f"{base}/jira/webhook", data=body, headers=signed, timeout=10)
        assert dup.status_code == 202
        assert dup.json().get("duplicate") is True
        forged = requests.post(
            f"{base}/jira/webhook",
            data=body,
            timeout=10,
            headers={**signed, "X-Hub-Signature": "sha256=" + "0" * 64},
        )
        unsigned = requests.post(
            f"{base}/jira/webhook", data=body, timeout=10, headers={"Content-Type": "application/json"}
        )
        assert forged.status_code == 401
        assert unsigned.status_code == 401
        assert store.count_pending("jira.transition") <= 1

        # -- lifecycle DAGs register the live edges against this api-server -------------------------------
        assert af.run_dag("bc_subscriptions_renewal") == "success", af.tail()
        assert af.run_dag("jira_webhooks_refresh") == "success", af.tail()
        subs = sb.control("GET", "/_sandbox/stats")
        assert subs is not None
        # initial outbound sync creates the issues and links
        for dag_id in ("bc_purchase_invoices_to_jira", "bc_vendors_to_jira"):
            assert af.run_dag(dag_id) == "success", af.tail()

        # the watchers: registered (trigger rows) once the DAGs are unpaused; then the triggerer starts them
        def watched() -> bool:
            assets = af.api("GET", "/api/v2/assets", params={"limit": 100}).json().get("assets", [])
            return sum(1 for a in assets if a["name"].startswith("bc_jira_") and a["watchers"]) >= 3

        _wait(watched, 120, "asset watchers registered", poll=2)
        time.sleep(10)  # the triggerer picks new triggers up within a few seconds

        def linked(ent: str, entity_set: str) -> dict[str, Any]:
            ids = [r["id"] for r in sb.control("GET", f"/_sandbox/bc/records/{entity_set}")["value"]]
            return store.get_links(ent, ids)

        links = {**linked("purchase_invoices", "purchaseInvoices"), **linked("vendors", "vendors")}
        invoices = sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        vendors = sb.control("GET", "/_sandbox/bc/records/vendors")["value"]
        unblocked = {v["id"] for v in vendors if v["blocked"] in ("", "_x0020_")}
        # BC refuses to post an invoice of a blocked vendor (the sandbox too): pick one it can post
        inv = next(
            r for r in invoices if r["status"] == "Draft" and r["id"] in links and r["vendorId"] in unblocked
        )
        ven = next(r for r in vendors if r["blocked"] not in ("", "_x0020_") and r["id"] in links)

        def issue_of(key: str) -> dict[str, Any]:
            return next(i for i in sb.control("GET", "/_sandbox/jira/issues") if i["key"] == key)

        latencies: dict[str, float] = {}
        # -- Show 2: Jira transition -> BC invoice posted + comment, no cron tick --------------------------
        key = links[inv["id"]].issue_key
        comments0 = issue_of(key)["comments"]
        sb.control("POST", "/_sandbox/jira/transition", {"issue": key, "to": "Done"})
        latencies["jira_done_to_bc_invoice_posted_s"] = _wait(
            lambda: (
                next(
                    r
                    for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
                    if r["id"] == inv["id"]
                )["status"]
                == "Open"
            ),
            60,
            "invoice posted",
        )
        latencies["jira_done_to_comment_s"] = (
            _wait(lambda: issue_of(key)["comments"] > comments0, 30, "comment")
            + latencies["jira_done_to_bc_invoice_posted_s"]
        )
        # -- vendor unblock likewise ----------------------------------------------------------------------
        vkey = links[ven["id"]].issue_key
        sb.control("POST", "/_sandbox/jira/transition", {"issue": vkey, "to": "Done"})
        latencies["jira_done_to_bc_vendor_unblocked_s"] = _wait(
            lambda: (
                next(
                    r
                    for r in sb.control("GET", "/_sandbox/bc/records/vendors")["value"]
                    if r["id"] == ven["id"]
                )["blocked"]
                in ("", "_x0020_")
            ),
            60,
            "vendor unblocked",
        )
        # -- Show 3: BC change -> Jira issue, through the BC subscription (notify delay 5 s) --------------
        rid_field = fields["BC Record Id"]
        created = sb.control("POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "create": {}})[
            "records"
        ][0]
        t0 = time.monotonic()

        def has_issue() -> bool:
            return any(
                (i.get("fields") or {}).get(rid_field) == created["id"]
                for i in sb.control("GET", "/_sandbox/jira/issues")
            )

        _wait(has_issue, 90, "issue for the new BC invoice", poll=0.5)
        latencies["bc_change_to_jira_issue_s"] = time.monotonic() - t0
        (tmp_path / "latencies.json").write_text(json.dumps(latencies, indent=2))
        print("E2E latencies:", json.dumps(latencies))
        assert latencies["jira_done_to_bc_invoice_posted_s"] < 30
        assert latencies["jira_done_to_bc_vendor_unblocked_s"] < 30
        assert latencies["bc_change_to_jira_issue_s"] < 60
        # health of the running plugin
        health = requests.get(f"{base}/health", timeout=10).json()
        assert health["store"]["ok"]
        assert len(health["bc_subscriptions"]) == 2
        # the REST webhook's deliveries carried only the app's bearer JWT, and the plugin accepted them
        sent = sb.control("GET", "/_sandbox/jira/deliveries")
        assert sent, sent
        assert {d["auth"] for d in sent} == {"jwt"}, sent
        assert {d["status"] for d in sent} == {202}, sent
        assert health["jira_app_webhook"]["last_delivery_at"]
    finally:
        if af is not None:
            af.stop()
        sb.stop()


def test_transitions_dag_waits_out_a_long_retry_after(
    inbound: dict[str, Any], airflow_conns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jira asks to wait longer than the in-process cap: the write-back task is rescheduled (same try)."""
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from bc_jira.hooks.jira import JiraCloudHook

    cfg = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    cfg["rate_limit"] = {"max_inline_wait_seconds": 1, "max_defer_seconds": 60}
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_CONFIG", json.dumps(cfg))
    sb, store = inbound["sandbox"], inbound["store"]
    inv = next(
        r
        for r in sb.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    )
    issue = JiraCloudHook(store=store).create_issue(
        {
            "project": {"key": "FIN"},
            "issuetype": {"name": "Invoice"},
            "summary": f"Invoice {inv['number']}",
            inbound["fields"]["BC Record Id"]: inv["id"],
        }
    )
    store.upsert_link(
        Link("purchase_invoices", inv["id"], inv["number"], str(issue["id"]), issue["key"], state="linked")
    )
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    store.stage_event("jira", KIND_JIRA_TRANSITION, "rl:1", {"issue_id": str(issue["id"])})
    sb.faults(
        rules=[
            {"kind": "429", "method": "GET", "path": f"/issue/{issue['id']}$", "count": 1, "retry_after": 3}
        ]
    )
    dr = run_dag("jira_transitions_to_bc")
    _success(dr)
    assert sb.stats()["faults"] == {"429": 1}
    staged = next(ti for ti in dr.get_task_instances() if ti.task_id == "process_staged_transitions")
    assert staged.try_number == 1, "the wait must not spend a retry"
    with create_session() as session:
        rows = session.scalars(select(TaskReschedule).where(TaskReschedule.ti_id == staged.id)).all()
        assert len(rows) == 1
        assert (rows[0].reschedule_date - rows[0].end_date).total_seconds() >= 3
    key = (
        "POST /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/purchaseInvoices({key})"
        "/Microsoft.NAV.post"
    )
    assert sb.stats()["calls"].get(key) == 1
    assert store.count_pending() == 0
    comments = sb.control("GET", "/_sandbox/jira/issues")
    assert next(i for i in comments if str(i["id"]) == str(issue["id"]))["comments"] == 1


def test_replayed_done_does_not_unblock_a_vendor_blocked_again(inbound: dict[str, Any]) -> None:
    """Unblocked by the DAG, blocked again in BC, then the old Done comes back (the first run cleared and
    re-run, a late retry of the delivery, the safety-net poll finding the issue still in Done): the vendor
    stays blocked."""
    import time

    from bc_jira.hooks.jira import JiraCloudHook

    sb, store = inbound["sandbox"], inbound["store"]
    ven = next(
        v
        for v in sb.control("GET", "/_sandbox/bc/records/vendors")["value"]
        if v["blocked"] in ("Payment", "All")
    )
    jira = JiraCloudHook(store=store)
    issue = jira.create_issue(
        {
            "project": {"key": "FIN"},
            "issuetype": {"name": "Vendor"},
            "summary": f"Vendor {ven['number']} blocked",
            inbound["fields"]["BC Record Id"]: ven["id"],
        }
    )
    store.upsert_link(
        Link("vendors", ven["id"], ven["number"], str(issue["id"]), issue["key"], state="linked")
    )
    sb.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    delivery = {"issue_id": str(issue["id"]), "issue_key": issue["key"], "delivery_id": "d-1"}
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-1", delivery)
    from datetime import UTC, datetime

    first_date = datetime.now(UTC).replace(microsecond=0)
    first = run_dag("jira_transitions_to_bc", logical_date=first_date, run_after=first_date)
    _success(first)

    def vendor() -> dict[str, Any]:
        return next(
            v for v in sb.control("GET", "/_sandbox/bc/records/vendors")["value"] if v["id"] == ven["id"]
        )

    assert vendor()["blocked"] in ("", "_x0020_")
    sb.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sb.control(
        "POST", "/_sandbox/bc/change", {"entity": "vendors", "id": ven["id"], "set": {"blocked": "All"}}
    )
    # the outbound sync marks the link as needing a human again (as bc_vendors_to_jira does on its next run)
    store.upsert_link(
        Link("vendors", ven["id"], ven["number"], str(issue["id"]), issue["key"], state="linked")
    )
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-1-late-retry", delivery)
    time.sleep(1.2)  # past the search lag: the safety-net poll sees the issue in Done
    # dag.test with the same dates deletes that run's state and runs it again, under the same run id
    replay = run_dag("jira_transitions_to_bc", logical_date=first_date, run_after=first_date)
    _success(replay)
    assert replay.run_id == first.run_id
    _success(run_dag("jira_transitions_to_bc"))  # and a new run: the poll keeps finding the issue in Done
    assert vendor()["blocked"] == "All"
    stale = store.query_audit(bc_id=ven["id"], action="writeback_stale")
    assert len(stale) >= 2
    assert {r.task_id for r in stale} >= {"process_staged_transitions", "safety_net_poll"}
    made = store.query_audit(bc_id=ven["id"], action="writeback_comment")
    assert len(made) == 2  # "unblocked" once, "changed after the decision" once, whatever the replays
    assert (
        next(i for i in sb.control("GET", "/_sandbox/jira/issues") if i["key"] == issue["key"])["comments"]
        == 2
    )
    # a person decides again: out of done and back -> the current block is lifted
    sb.control("POST", "/_sandbox/clock", {"advance_s": 2})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "In Progress"})
    sb.control("POST", "/_sandbox/jira/transition", {"issue": issue["key"], "to": "Done"})
    store.stage_event("jira", KIND_JIRA_TRANSITION, "d-2", delivery)
    _success(run_dag("jira_transitions_to_bc"))
    assert vendor()["blocked"] in ("", "_x0020_")


def test_idle_run_says_so_and_errors_name_the_issue_key(
    inbound: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing staged: "no staged transitions" in words. A staged issue Jira no longer has: named by key."""
    store = inbound["store"]
    with caplog.at_level("INFO", logger="bc_jira"):
        _success(run_dag("jira_transitions_to_bc"))
    assert "no staged transitions: no Jira issue reached a done status since the last run" in caplog.text
    store.stage_event(
        "jira",
        KIND_JIRA_TRANSITION,
        "gone:1",
        {"issue_id": "99913", "issue_key": "FIN-913", "delivery_id": "d1"},
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="bc_jira"):
        dr = run_dag("jira_transitions_to_bc")
    _success(dr)
    ti = next(t for t in dr.get_task_instances() if t.task_id == "process_staged_transitions")
    assert ti.xcom_pull(task_ids=ti.task_id)["issues"][0]["issue"] == "FIN-913"
    (row,) = store.query_audit(action="writeback_ignored")
    assert (row.issue_key, row.reason) == ("FIN-913", "issue no longer exists in Jira")


def test_bc_subscriptions_renewal_subscribes_every_company(
    inbound: dict[str, Any], airflow_conns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two companies under ``dag.test()``: one set of subscriptions each, a change in company 2 is staged
    naming company 2; a second run keeps all four."""
    from bc_jira.hooks.business_central import BusinessCentralHook

    sb, store = inbound["sandbox"], inbound["store"]
    sb.reset(companies=2, vendors=3, invoices=3, orders=0)
    ids = [c["id"] for c in sb.control("GET", "/_sandbox/bc/companies")["value"]]
    cfg = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    cfg["companies"] = [{"id": ids[0]}, {"id": ids[1], "project_key": "FIN"}]
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_CONFIG", json.dumps(cfg))
    for _ in range(2):
        _success(run_dag("bc_subscriptions_renewal"))
    subs = BusinessCentralHook().list_subscriptions()
    assert sorted(s["resource"].lower() for s in subs) == sorted(
        f"/api/v2.0/companies({i})/{e}".lower() for i in ids for e in ("purchaseInvoices", "vendors")
    )
    assert {s["last_action"] for s in store.list_subscriptions()} == {"ok"}
    sb.control("POST", "/_sandbox/bc/change", {"company": ids[1], "entity": "vendors", "touch": 1})
    deadline = time.monotonic() + 15
    while not store.count_pending("bc.vendors") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {e.payload["company_id"] for e in store.pending_events("bc.vendors")} == {ids[1]}

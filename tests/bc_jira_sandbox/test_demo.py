"""``make run`` helpers (light): what the demo configures and how it cleans up.

The full run is measured by hand (README: time to first green runs): it owns ports 8080 and 8990.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from typing import TYPE_CHECKING

import pytest

from bc_jira_sandbox import airflow_cli, demo
from tests.conftest import REPO, _free_port

if TYPE_CHECKING:
    from pathlib import Path

CONTRACT_DAGS = {
    "bc_purchase_invoices_to_jira",
    "bc_vendors_to_jira",
    "bc_purchase_orders_to_jira",
    "jira_transitions_to_bc",
    "bc_subscriptions_renewal",
    "jira_webhooks_refresh",
    "bc_jira_connect",
}


def test_dag_ids_read_from_the_dags_folder_are_the_contract() -> None:
    assert demo.repo_root() == REPO
    ids = demo.dag_ids(REPO / "dags")
    assert set(ids) == CONTRACT_DAGS
    assert len(ids) == len(set(ids))
    assert demo.CONNECT_DAG in ids


def test_airflow_env_uses_real_options_and_the_repo_folders(tmp_path) -> None:
    from airflow.configuration import conf

    env = demo.airflow_env(REPO, tmp_path / ".airflow", 18080)
    options = {(s, o) for s, body in conf.configuration_description.items() for o in body.get("options", {})}
    for key in env:
        if key.startswith("AIRFLOW__"):
            section, _, option = key[len("AIRFLOW__") :].partition("__")
            assert (section.lower(), option.lower()) in options, key
    assert env["AIRFLOW_HOME"] == str(tmp_path / ".airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO / "plugins")
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1", "all-admins mode must not listen beyond this machine"
    assert env["AIRFLOW__API__BASE_URL"].endswith(":18080")


def test_sandbox_env_aims_both_connections_at_the_sandbox_and_leaves_the_config_to_the_db(sandbox) -> None:
    env = demo.sandbox_env(sandbox.url)
    assert set(env) == {"AIRFLOW_CONN_BC_DEFAULT", "AIRFLOW_CONN_JIRA_DEFAULT"}, (
        "no AIRFLOW_VAR_*: it shadows"
    )
    printed = sandbox.env()
    assert env == {k: v for k, v in printed.items() if k.startswith("AIRFLOW_CONN_")}, "as `airflow-env`"
    assert demo.sandbox_config(sandbox.url) == json.loads(printed["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    bc = json.loads(env["AIRFLOW_CONN_BC_DEFAULT"])
    assert bc["extra"]["api_url"].startswith(sandbox.url)


def test_refuses_to_start_a_second_airflow_on_a_busy_port(sandbox, tmp_path) -> None:
    args = argparse.Namespace(port=sandbox.port, sandbox_port=sandbox.port, exit_when_green=True)
    d = demo.Demo(args)
    d.home = tmp_path / ".airflow"
    with pytest.raises(RuntimeError, match="already answers"):
        d.prepare_airflow()
    assert not (tmp_path / ".airflow" / "airflow.db").exists(), "nothing migrated"


def test_stop_group_ends_children_and_grandchildren() -> None:
    proc = subprocess.Popen(["bash", "-c", "sleep 300 & sleep 300 & wait"], start_new_session=True)
    time.sleep(0.3)
    members = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert len(members) >= 3
    demo.stop_group(proc, "test", grace=5)
    time.sleep(0.2)
    for pid in members:
        assert not os.path.exists(f"/proc/{pid}") or _proc_state(pid) == "Z", pid


def _proc_state(pid: str) -> str:
    """The state letter of a process in /proc (``Z``: a zombie, gone but not yet reaped)."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2]


# -- the demo's setup step and `make airflow` with the real CLI ---------------------------------------------
README_BACKFILL = [
    *("backfill", "create", "--dag-id", "bc_purchase_invoices_to_jira"),
    *("--from-date", "2026-11-01", "--to-date", "2026-11-07"),
]


def _wrapper(
    home: Path, sandbox_port: int, *args: str, db: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    """``make airflow ARGS="..."`` (the Makefile passes DB/DB_URL and ``-- $(ARGS)`` to this module)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bc_jira_sandbox.airflow_cli",
            "--home",
            str(home),
            "--port",
            str(_free_port()),
        ]
        + [*db, "--", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _setup(home: Path, sandbox_port: int, **db: str) -> demo.Demo:
    """The demo's setup step (``prepare_airflow``: migrate + the Variable) in ``home``."""
    d = demo.Demo(
        argparse.Namespace(port=_free_port(), sandbox_port=sandbox_port, exit_when_green=True, **db)
    )
    d.home = home
    d.prepare_airflow()
    return d


@pytest.fixture(scope="module")
def demo_home(sandbox_server, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("demo") / ".airflow"
    _setup(home, sandbox_server.port, db="sqlite")
    return home


def test_setup_writes_bc_jira_config_into_admin_variables_and_a_rerun_keeps_an_edit(
    demo_home, sandbox_server
) -> None:
    got = _wrapper(demo_home, sandbox_server.port, "variables", "get", "bc_jira_config")
    assert got.returncode == 0, got.stderr[-2000:]
    assert json.loads(got.stdout) == demo.sandbox_config(sandbox_server.url)
    edited = {"project_key": "EDIT"}
    saved = _wrapper(demo_home, sandbox_server.port, "variables", "set", "bc_jira_config", json.dumps(edited))
    assert saved.returncode == 0, saved.stderr[-2000:]
    _setup(demo_home, sandbox_server.port, db="sqlite")  # a re-run of `make run`
    again = _wrapper(demo_home, sandbox_server.port, "variables", "get", "bc_jira_config")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout) == edited, again.stderr[-2000:]


def test_setup_writes_both_connections_into_admin_connections_aimed_at_the_sandbox(
    demo_home, sandbox_server
) -> None:
    """Listed (and so testable) in the UI; no AIRFLOW_CONN_* in the demo's env shadows them; a re-run
    rewrites them to match the sandbox."""
    env = airflow_cli.cli_env(demo_home, demo.load_db_choice(demo_home) or {}, 18080)
    assert not [k for k in env if k.startswith("AIRFLOW_CONN_")]
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    deleted = _wrapper(demo_home, sandbox_server.port, "connections", "delete", "jira_default")
    assert deleted.returncode == 0, deleted.stderr[-2000:]
    _setup(demo_home, sandbox_server.port, db="sqlite")  # a re-run of `make run`
    for conn_id, conn_type in (("bc_default", "business_central"), ("jira_default", "jira_cloud")):
        got = _wrapper(demo_home, sandbox_server.port, "connections", "get", conn_id, "-o", "json")
        assert got.returncode == 0, got.stderr[-2000:]
        (conn,) = json.loads(got.stdout.strip().splitlines()[-1])
        assert conn["conn_type"] == conn_type
        assert conn["extra_dejson"]["api_url"].startswith(sandbox_server.url)
        assert conn["port"] is None


def test_make_airflow_dags_list_shows_the_contract_dags(demo_home, sandbox_server) -> None:
    parsed = _wrapper(demo_home, sandbox_server.port, "dags", "reserialize")  # the dag-processor's job
    assert parsed.returncode == 0, parsed.stderr[-2000:]
    listed = _wrapper(demo_home, sandbox_server.port, "dags", "list", "--output", "json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = json.loads(listed.stdout.strip().splitlines()[-1])  # after any warning Airflow logs to stdout
    assert {d["dag_id"] for d in rows} == CONTRACT_DAGS


def test_readme_backfill_on_sqlite_says_why_in_one_line_and_creates_nothing(tmp_path, sandbox_server) -> None:
    home = tmp_path / ".airflow"
    out = _wrapper(home, sandbox_server.port, *README_BACKFILL, db=("--db", "sqlite"))
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert lines == [airflow_cli.SQLITE_BACKFILL_REFUSAL]
    assert "database is locked" in lines[0]
    assert "make run DB=postgres" in lines[0]
    assert not home.exists(), "refused before Airflow touched anything"


@pytest.mark.slow
@pytest.mark.postgres
def test_readme_backfill_on_the_postgres_variant_creates_its_runs(pg_url, sandbox_server, tmp_path) -> None:
    import sqlalchemy as sa

    url = pg_url.rsplit("/", 1)[0] + f"/bc_jira_demo_test_{uuid.uuid4().hex[:8]}"
    home = tmp_path / ".airflow"
    try:
        _setup(home, sandbox_server.port, db="postgres", db_url=url)
        assert not demo.ensure_pg_database(url), "created by the setup step, reused now"
        parsed = _wrapper(home, sandbox_server.port, "dags", "reserialize")
        assert parsed.returncode == 0, parsed.stderr[-2000:]
        out = _wrapper(home, sandbox_server.port, *README_BACKFILL)  # the DB the setup step chose
        assert out.returncode == 0, out.stderr[-2000:]
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            runs = conn.execute(
                sa.text("select count(*) from dag_run where dag_id = :d and run_type = 'backfill'"),
                {"d": "bc_purchase_invoices_to_jira"},
            ).scalar()
        engine.dispose()
        assert runs == 577, "every 15 minutes from 11-01 00:00 to 11-07 00:00 inclusive (README)"
    finally:
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[-1]}" WITH (FORCE)'))
        admin.dispose()


def test_an_unreachable_postgres_is_one_line_with_how_to_start_one() -> None:
    with pytest.raises(RuntimeError) as err:
        demo.ensure_pg_database(f"postgresql+psycopg2://postgres@127.0.0.1:{_free_port()}/bc_jira_demo")
    assert "\n" not in str(err.value)
    assert "PostgreSQL not reachable at 127.0.0.1" in str(err.value)
    assert "docker run" in str(err.value)
    assert "DB_URL=" in str(err.value)


# -- health watcher and API retry (narrow unit tests: a fake Airflow API with requests-mock) ---------------
HEALTHY = {c: {"status": "healthy"} for c in demo.HEALTH_COMPONENTS}


def _demo(tmp_path: Path) -> demo.Demo:
    d = demo.Demo(argparse.Namespace(port=18080, sandbox_port=18990, exit_when_green=False))
    d.home = tmp_path
    return d


def test_issue_kinds_names_each_run_of_keys_by_kind_in_key_order() -> None:
    def issue(n: int, kind: str) -> dict:
        return {"key": f"FIN-{n}", "fields": {"issuetype": {"name": kind}}}

    issues = [issue(3, "Invoice"), issue(10, "Vendor"), issue(1, "Invoice"), issue(2, "Invoice")]
    issues += [issue(11, "Purchase Order"), issue(4, "Vendor")]
    issues += [issue(n, "Vendor") for n in range(5, 10)]
    assert demo.issue_kinds(issues) == "FIN-1…FIN-3 Invoice, FIN-4…FIN-10 Vendor, FIN-11 Purchase Order"
    assert demo.issue_kinds([]) == ""


def test_health_problems_name_each_component_that_is_not_healthy() -> None:
    assert demo.health_problems(HEALTHY) == []
    dead = {
        **HEALTHY,
        "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": "2026-12-01T23:00:00Z"},
        "triggerer": {"status": None, "latest_triggerer_heartbeat": None},
    }
    del dead["dag_processor"]
    assert demo.health_problems(dead) == [
        "scheduler is unhealthy, last heartbeat 2026-12-01T23:00:00Z",
        "dag_processor is missing",
        "triggerer is missing",
    ]


def test_the_watcher_says_once_when_a_component_died_and_when_it_is_back(tmp_path, capsys) -> None:
    requests_mock = pytest.importorskip("requests_mock")
    d = _demo(tmp_path)
    died = {**HEALTHY, "scheduler": {"status": "unhealthy", "latest_scheduler_heartbeat": "T"}}
    with requests_mock.Mocker() as m:
        m.get(
            f"{d.api}/api/v2/monitor/health",
            [{"json": HEALTHY}, {"json": died}, {"json": died}, {"json": HEALTHY}],
        )
        for _ in range(4):
            d.watch_health()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2, out
    assert "AIRFLOW IS UNHEALTHY: scheduler is unhealthy, last heartbeat T" in out[0]
    assert "standalone.log" in out[0]
    assert "re-run `make run`" in out[0]
    assert "healthy again" in out[1]


def test_the_watcher_reports_an_api_server_that_stopped_answering(tmp_path, capsys) -> None:
    requests_mock = pytest.importorskip("requests_mock")
    import requests

    d = _demo(tmp_path)
    with requests_mock.Mocker() as m:
        m.get(f"{d.api}/api/v2/monitor/health", exc=requests.ConnectionError)
        d.watch_health()
    assert "does not answer its health check (ConnectionError)" in capsys.readouterr().out


def test_a_transient_500_is_retried_with_backoff(tmp_path, monkeypatch) -> None:
    requests_mock = pytest.importorskip("requests_mock")
    waits: list[float] = []
    monkeypatch.setattr(demo.time, "sleep", waits.append)
    d = _demo(tmp_path)
    url = f"{d.api}/api/v2/dags/jira_webhooks_refresh"
    with requests_mock.Mocker() as m:
        m.patch(
            url, [{"status_code": 500, "text": "database is locked"}] * 2 + [{"json": {"is_paused": False}}]
        )
        d.unpause("jira_webhooks_refresh")
        assert m.call_count == 3
        assert m.request_history[-1].json() == {"is_paused": False}
    assert waits == [1.0, 2.0]


def test_what_is_not_transient_fails_in_one_line_with_the_fix(tmp_path, monkeypatch) -> None:
    requests_mock = pytest.importorskip("requests_mock")
    monkeypatch.setattr(demo.time, "sleep", lambda s: None)
    d = _demo(tmp_path)
    with requests_mock.Mocker() as m:
        m.patch(f"{d.api}/api/v2/dags/nope", status_code=404, text='{"detail": "DAG nope not found"}')
        with pytest.raises(demo.ApiError) as err:
            d.unpause("nope")
        assert m.call_count == 1, "a 404 is not retried"
        m.patch(f"{d.api}/api/v2/dags/jira_webhooks_refresh", status_code=500, text="boom\nline 2")
        with pytest.raises(demo.ApiError) as err5:
            d.unpause("jira_webhooks_refresh")
        assert m.call_count == 1 + 5
    for e in (err, err5):
        assert "\n" not in str(e.value)
        assert "answered" in str(e.value)
    assert "404" in str(err.value)
    assert "DAG nope not found" in str(err.value)
    assert "500" in str(err5.value)
    assert "standalone.log" in str(err5.value)


def test_run_reports_an_api_error_in_one_line_not_a_traceback(tmp_path, monkeypatch, capsys) -> None:
    d = _demo(tmp_path)

    def fail() -> None:
        raise demo.ApiError("PATCH /api/v2/dags/x answered 500 (boom): read the log")

    for step in ("start_sandbox", "prepare_airflow", "start_airflow", "connect_then_sync"):
        monkeypatch.setattr(d, step, lambda: None)
    monkeypatch.setattr(d, "connect_then_sync", fail)
    assert d.run() == 1
    err = capsys.readouterr().err
    assert "make run failed: PATCH /api/v2/dags/x answered 500 (boom): read the log" in err
    assert "Traceback" not in err

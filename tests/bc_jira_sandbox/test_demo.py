"""``make run`` helpers (light): what the demo configures and how it cleans up.

The full run is measured by hand (README: time to first green runs): it owns ports 8080 and 8990.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time

import pytest

from bc_jira_sandbox import demo
from tests.conftest import REPO

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


def test_sandbox_env_aims_both_connections_and_the_config_at_the_sandbox(sandbox) -> None:
    env = demo.sandbox_env(sandbox.url)
    assert set(env) == {"AIRFLOW_CONN_BC_DEFAULT", "AIRFLOW_CONN_JIRA_DEFAULT", "AIRFLOW_VAR_BC_JIRA_CONFIG"}
    assert env == sandbox.env(), "same lines as `python -m bc_jira_sandbox airflow-env`"
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

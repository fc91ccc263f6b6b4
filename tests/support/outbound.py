"""The outbound DAGs' test setup, one home for every test module that runs them with ``dag.test()``.

Seeds the sandbox, sets small batches, a per-test state store, short retry delays, no watermark Variables,
and the Jira field ids ``bc_jira_connect`` would discover. The fixtures that call it live in the test modules
(or ``tests/dags/conftest.py``); this module has the plain helpers.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tests.conftest import REPO

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    import pytest

    from tests.conftest import SandboxProcess

ENTITIES = ("purchase_invoices", "vendors", "purchase_orders")


def prepare_outbound(
    sandbox: SandboxProcess,
    airflow_conns: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    batch_size: int | None = 7,
    search_settle_seconds: float = 3,
    config: Mapping[str, Any] | None = None,
    **counts: int,
) -> dict[str, Any]:
    """Fresh data and a clean connector state; returns ``{"cfg", "fields", "state_db"}``.

    ``batch_size=None`` keeps the sandbox config's own; ``config`` adds keys to ``bc_jira_config``;
    ``counts`` (vendors, invoices, orders) seed the sandbox.
    """
    from airflow.models.variable import Variable

    from bc_jira.config import parse_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.setup import connect as ob
    from bc_jira.store import StateStore
    from bc_jira.sync import dag

    sandbox.reset(**(counts or {"vendors": 20, "invoices": 30, "orders": 12}))
    cfg = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    cfg.update(search_settle_seconds=search_settle_seconds, **(config or {}))
    if batch_size is not None:
        cfg["batch_size"] = batch_size
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_CONFIG", json.dumps(cfg))
    state_db = {"conn_type": "sqlite", "host": str(tmp_path / "state.db")}
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps(state_db))
    monkeypatch.setattr(StateStore, "_from_airflow_cache", {}, raising=False)  # one store per test
    monkeypatch.setitem(dag.DEFAULT_ARGS, "retry_delay", timedelta(seconds=1))
    monkeypatch.setitem(dag.DEFAULT_ARGS, "retry_exponential_backoff", False)
    for key in [f"bc_jira_watermark_{e}" for e in ENTITIES] + ["bc_jira_jira_fields", "bc_jira_jira_users"]:
        Variable.delete(key)
    rep = ob.connect_checks(parse_config(cfg), JiraCloudHook().client)
    assert rep.problems == []
    Variable.set("bc_jira_jira_fields", json.dumps(rep.fields))
    Variable.set("bc_jira_jira_users", "{}")  # what bc_jira_connect writes when no rule names a user
    return {"cfg": cfg, "fields": rep.fields, "state_db": state_db}


def repo_dag(dag_id: str) -> Any:
    """One of the repository's DAGs, freshly parsed (so ``DEFAULT_ARGS`` patched by a test apply)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags[dag_id]


def run_dag(dag_id: str, **kw: Any) -> Any:
    """``dag.test()`` of one of the repository's DAGs (the run lands in the session's metadata DB)."""
    return repo_dag(dag_id).test(**kw)

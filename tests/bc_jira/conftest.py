"""Fixtures for the connector's tests that need the sandbox and the web app served over real HTTP."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from bc_jira.config.companies import company_key
from bc_jira.store import StateStore
from tests.support.plugin_server import PluginServer, sandbox_secrets

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def lc(sandbox: Any, airflow_conns: dict[str, str], sqlite_url: str) -> Iterator[dict[str, Any]]:
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook

    sandbox.reset(vendors=6, invoices=6, orders=0)
    store = StateStore.from_url(sqlite_url)
    server = PluginServer(store, sandbox_secrets(sandbox))
    yield {
        "sandbox": sandbox,
        "store": store,
        "server": server,
        "bc": BusinessCentralHook(),
        "jira": JiraCloudHook(store=store),
        "base": server.url,
    }
    server.stop()


@pytest.fixture
def sandbox_jira(sandbox, airflow_conns) -> Iterator[Any]:
    """The freshly reset sandbox with the Jira connection aimed at it and no access token cached in-process
    (a reset sandbox issues a new grant)."""
    from bc_jira.tokens import JiraTokenProvider

    JiraTokenProvider._process_cache.clear()
    yield sandbox
    JiraTokenProvider._process_cache.clear()


@pytest.fixture
def two_companies(
    lc: dict[str, Any], airflow_conns: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Two companies in the sandbox, the task's store is the plugin's, ``companies`` names both."""
    sb = lc["sandbox"]
    sb.reset(companies=2, vendors=3, invoices=3, orders=0)
    ids = [c["id"] for c in sb.control("GET", "/_sandbox/bc/companies")["value"]]
    db = lc["store"].engine.url.database
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": db}))
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_BC_COMPANIES", json.dumps({"bc_default": {"CRONUS US": ids[1]}}))
    base = json.loads(airflow_conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])

    def configure(*companies: dict[str, Any] | None) -> None:
        cfg = dict(base)
        if companies != (None,):
            cfg["companies"] = list(companies)
        monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_CONFIG", json.dumps(cfg))

    configure({"id": ids[0]}, {"name": "CRONUS US"})
    env = sb.creds["environment"]
    return {
        **lc,
        "ids": ids,
        "key2": company_key("bc_default", env, ids[1]),
        "configure": configure,
        "url": f"{lc['base']}/bc-jira/bc/notifications",
    }

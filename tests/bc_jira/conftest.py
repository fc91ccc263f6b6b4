"""Fixtures for the connector's tests that need the sandbox and the web app served over real HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

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

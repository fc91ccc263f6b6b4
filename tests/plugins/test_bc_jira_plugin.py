"""The Airflow plugin: it mounts the web app at ``/bc-jira`` and registers the audit page as a view."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "bc_jira_plugin.py"


def load_plugin() -> Any:
    if "bc_jira_plugin" in sys.modules:
        return sys.modules["bc_jira_plugin"]
    spec = importlib.util.spec_from_file_location("bc_jira_plugin", PLUGIN)
    assert spec
    assert spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bc_jira_plugin"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_plugin_registers_fastapi_app_at_bc_jira() -> None:
    mod = load_plugin()
    apps = mod.BcJiraPlugin.fastapi_apps
    assert apps[0]["url_prefix"] == "/bc-jira"
    assert apps[0]["app"] is mod.app
    paths = {r.path for r in mod.app.routes}
    assert {
        "/bc/notifications",
        "/jira/webhook",
        "/jira/oauth/start",
        "/jira/oauth/callback",
        "/health",
    } <= paths

"""The provider entry point: Airflow discovers bc-jira and its two connection types with declarative forms."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bc_jira.provider import get_provider_info


def _airflow(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "airflow", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_provider_info_validates_against_airflow_schema():
    import json
    from importlib.resources import files

    import jsonschema

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_package_name_matches_distribution():
    from importlib.metadata import distribution

    assert get_provider_info()["package-name"] == distribution("bc-jira").metadata["Name"]


@pytest.mark.parametrize(
    ("conn_type", "fields"),
    [
        (
            "business_central",
            {"tenant_id", "environment", "company_id", "api_url", "authority_url", "client_state"},
        ),
        ("jira_cloud", {"auth", "site_url", "redirect_uri", "auth_url", "api_url", "webhook_secret"}),
    ],
)
def test_conn_fields_declared(conn_type, fields):
    ct = {c["connection-type"]: c for c in get_provider_info()["connection-types"]}[conn_type]
    assert fields <= set(ct["conn-fields"])
    for name, spec in ct["conn-fields"].items():
        assert spec["label"], name
        assert spec["schema"]["type"], name
    secret_fields = {n for n, s in ct["conn-fields"].items() if s["schema"].get("format") == "password"}
    assert secret_fields, "secrets must be declared as password fields so the UI masks them"


def test_airflow_lists_provider_and_hooks():
    assert "bc-jira" in _airflow("providers", "list")
    import json

    out = _airflow("providers", "hooks", "-o", "json")
    listing = next(line for line in out.splitlines() if line.startswith("[{"))  # skip log lines
    hooks = {h["connection_type"]: h for h in json.loads(listing)}
    assert hooks["business_central"]["class"] == "bc_jira.hooks.business_central.BusinessCentralHook"
    assert hooks["business_central"]["conn_id_attribute_name"] == "bc_conn_id"
    assert hooks["jira_cloud"]["class"] == "bc_jira.hooks.jira.JiraCloudHook"
    assert hooks["jira_cloud"]["conn_id_attribute_name"] == "jira_conn_id"
    ours = {h["package_name"] for k, h in hooks.items() if k in ("business_central", "jira_cloud")}
    assert ours == {"bc-jira"}

"""The app's routes reach the sandbox only through ``get_sandbox``: overriding it swaps the sandbox served."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bc_jira_sandbox.app import create_app
from bc_jira_sandbox.core import Options, Sandbox
from bc_jira_sandbox.deps import get_sandbox


def test_dependency_override_swaps_the_sandbox_behind_every_router() -> None:
    served, other = Sandbox(Options(seed=1)), Sandbox(Options(seed=2))
    asgi = create_app(served)
    client = TestClient(asgi)
    assert client.get("/_sandbox/credentials").json()["jira_api_token"] == served.creds["jira_api_token"]
    asgi.app.dependency_overrides[get_sandbox] = lambda: other
    creds = client.get("/_sandbox/credentials").json()
    assert creds["jira_api_token"] == other.creds["jira_api_token"] != served.creds["jira_api_token"]
    # a BC record route and a Jira control route read the overriding sandbox too
    assert len(client.get("/_sandbox/jira/issues").json()) == len(other.jira.issues)
    vendors = client.get("/_sandbox/bc/records/vendors").json()["value"]
    assert {v["id"] for v in vendors} == set(other.bc.records["vendors"]) != set(served.bc.records["vendors"])

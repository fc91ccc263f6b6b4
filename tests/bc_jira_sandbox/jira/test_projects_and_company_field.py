"""The sandbox Jira holds the BC Company field and several projects, like a site syncing several companies.

A Jira admin creates the short text field "BC Company" like the six other BC fields (discoverable by name
with ``GET /rest/api/3/field`` and on the create/edit screens), and a project per company that wants its own
(``POST /_sandbox/jira/projects``). Issue keys are numbered per project; JQL ``project = X`` finds each one's.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests


class Site:
    def __init__(self, sandbox: Any) -> None:
        c = sandbox.creds
        self.base = f"{sandbox.url}/site/rest/api/3"
        self.auth = (c["jira_email"], c["jira_api_token"])
        self.fields = {f["name"]: f for f in self.call("GET", "field").json()}

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.base}/{path}", json=body, auth=self.auth, timeout=10)

    def create(self, project: str, **fields: Any) -> requests.Response:
        body = {
            "fields": {
                "project": {"key": project},
                "issuetype": {"name": "Invoice"},
                "summary": "Purchase invoice PI1",
                **fields,
            }
        }
        return self.call("POST", "issue", body)


@pytest.fixture
def site(sandbox: Any) -> Site:
    sandbox.reset()
    return Site(sandbox)


def test_bc_company_is_a_short_text_field_on_the_screens(site: Site) -> None:
    fd = site.fields["BC Company"]
    assert fd["custom"] is True
    assert fd["schema"]["custom"].endswith(":textfield")
    assert fd["clauseNames"][1] == "BC Company"
    others = {site.fields[n]["id"] for n in ("BC Record Id", "BC Status")}
    assert fd["id"] not in others
    meta = site.call("GET", "issue/createmeta/FIN/issuetypes/10002?maxResults=200").json()["fields"]
    assert fd["id"] in {f["fieldId"] for f in meta}
    made = site.create("FIN", **{fd["id"]: "CRONUS US"})
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    assert site.call("PUT", f"issue/{key}", {"fields": {fd["id"]: "CRONUS DK"}}).status_code == 204
    got = site.call("GET", f"issue/{key}?fields={fd['id']}").json()["fields"]
    assert got[fd["id"]] == "CRONUS DK"


def test_an_admin_adds_a_project_with_its_own_issue_keys(site: Site, sandbox: Any) -> None:
    assert site.create("CA").status_code == 400  # no such project yet
    added = sandbox.control("POST", "/_sandbox/jira/projects", {"key": "CA", "name": "Canada Approvals"})
    assert (added["key"], added["name"]) == ("CA", "Canada Approvals")
    bad = requests.post(f"{sandbox.url}/_sandbox/jira/projects", json={"key": "CA"}, timeout=10)
    assert bad.status_code == 400
    assert "uses this project key" in bad.json()["error"]
    bad = requests.post(f"{sandbox.url}/_sandbox/jira/projects", json={"key": "ca"}, timeout=10)
    assert bad.status_code == 400
    keys = [site.create(p).json()["key"] for p in ("FIN", "CA", "CA", "FIN")]
    assert keys == ["FIN-1", "CA-1", "CA-2", "FIN-2"]
    project = site.call("GET", "project/CA").json()
    assert project["id"] == added["id"]
    assert {t["name"] for t in project["issueTypes"]} >= {"Invoice"}
    assert site.call("GET", "project/XX").status_code == 404
    assert site.call("GET", "issue/createmeta/CA/issuetypes").status_code == 200
    assert site.call("GET", f"issuetype/project?projectId={added['id']}").status_code == 200
    issue = site.call("GET", "issue/CA-2?fields=project").json()
    assert issue["fields"]["project"]["key"] == "CA"
    time.sleep(1.2)  # the search lag of the test options
    found = site.call(
        "POST", "search/jql", {"jql": "project = CA ORDER BY key", "fields": ["summary"]}
    ).json()
    assert [i["key"] for i in found["issues"]] == ["CA-1", "CA-2"]
    listed = sandbox.control("GET", "/_sandbox/jira/projects")
    assert [p["key"] for p in listed] == ["FIN", "CA"]
    sandbox.reset()  # a reset forgets the added project
    assert [p["key"] for p in sandbox.control("GET", "/_sandbox/jira/projects")] == ["FIN"]


def test_get_all_projects_lists_every_project_as_the_spec_shapes_it(sandbox: Any) -> None:
    """``GET /rest/api/3/project`` over OAuth (3LO), every answer checked against the OpenAPI document."""
    from urllib.parse import urlsplit

    from bc_jira_sandbox.openapi import get_validator
    from tests.support.jira_http import bearer_headers, rest_base

    sandbox.reset()
    url = f"{rest_base(sandbox)}/project"
    headers = bearer_headers(sandbox)

    def listed() -> list[tuple[str, str]]:
        resp = requests.get(url, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        get_validator().validate_response("GET", urlsplit(url).path, 200, resp.json())
        return [(p["key"], p["name"]) for p in resp.json()]

    assert listed() == [("FIN", "Finance Approvals")]
    added = sandbox.control("POST", "/_sandbox/jira/projects", {"key": "CO2", "name": "CRONUS US AP"})
    assert listed() == [("FIN", "Finance Approvals"), ("CO2", "CRONUS US AP")]
    assert added["id"] != "10000"

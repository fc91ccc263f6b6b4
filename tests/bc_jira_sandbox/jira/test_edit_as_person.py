"""A person's edit in the sandbox Jira, and descriptions handed back the way Jira stores them.

``POST /_sandbox/jira/edit`` is a person editing an issue (the same checks as ``PUT /rest/api/3/issue/{key}``,
spec editIssue). A stored description comes back with the attributes Jira adds to tables
(https://developer.atlassian.com/cloud/jira/platform/apis/document/nodes/table), not byte-for-byte as sent.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

TABLE_DOC = {
    "type": "doc",
    "version": 1,
    "content": [
        {"type": "paragraph", "content": [{"type": "text", "text": "Facts"}]},
        {
            "type": "table",
            "attrs": {"isNumberColumnEnabled": False, "layout": "default"},
            "content": [
                {
                    "type": "tableRow",
                    "content": [
                        {
                            "type": "tableHeader",
                            "content": [
                                {"type": "paragraph", "content": [{"type": "text", "text": "Amount"}]}
                            ],
                        },
                        {
                            "type": "tableCell",
                            "content": [
                                {"type": "paragraph", "content": [{"type": "text", "text": "100.00"}]}
                            ],
                        },
                    ],
                }
            ],
        },
    ],
}


class Site:
    """The Jira site root with basic auth (the connector's account), as an admin script would call it."""

    def __init__(self, sandbox: Any) -> None:
        c = sandbox.creds
        self.base = f"{sandbox.url}/site/rest/api/3"
        self.auth = (c["jira_email"], c["jira_api_token"])
        self.fields = {f["name"]: f["id"] for f in self.call("GET", "field").json()}

    def call(self, method: str, path: str, body: Any = None) -> requests.Response:
        return requests.request(method, f"{self.base}/{path}", json=body, auth=self.auth, timeout=10)

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {
            "fields": {
                "project": {"key": "FIN"},
                "issuetype": {"name": "Invoice"},
                "summary": "Purchase invoice PI1",
                self.fields["BC Record Id"]: "rec-1",
                **fields,
            }
        }
        resp = self.call("POST", "issue", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def fields_of(self, key: str) -> dict[str, Any]:
        return self.call("GET", f"issue/{key}?fields=summary,description,updated").json()["fields"]


@pytest.fixture
def site(sandbox: Any) -> Site:
    sandbox.reset()
    return Site(sandbox)


def test_stored_description_comes_back_with_the_attributes_jira_adds(site: Site) -> None:
    made = site.create(description=TABLE_DOC)
    got = site.fields_of(made["key"])["description"]
    assert got != TABLE_DOC
    table = got["content"][1]
    assert table["attrs"]["localId"]
    assert (table["attrs"]["width"], table["attrs"]["displayMode"]) == (760, "default")
    assert table["attrs"]["layout"] == "default"  # what was sent is kept
    assert all(cell["attrs"] == {} for cell in table["content"][0]["content"])
    assert got["content"][0] == TABLE_DOC["content"][0]  # the text as sent
    # the same document stored again is the same stored document (no change)
    before = site.fields_of(made["key"])
    assert site.call("PUT", f"issue/{made['key']}", {"fields": {"description": TABLE_DOC}}).status_code == 204
    assert site.fields_of(made["key"]) == before


def test_a_person_edits_the_summary_like_a_rest_edit(site: Site, sandbox: Any) -> None:
    made = site.create(description=TABLE_DOC)
    answer = sandbox.control(
        "POST",
        "/_sandbox/jira/edit",
        {"issue": made["key"], "fields": {"summary": "PI1 - waiting for Carol"}},
    )
    assert answer["key"] == made["key"]
    assert site.fields_of(made["key"])["summary"] == "PI1 - waiting for Carol"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"summary": "two\nlines"}, "summary", "newline"),
        ({"summary": ""}, "summary", "You must specify a summary"),
        (
            {"description": {"type": "doc", "version": 1, "content": [{"type": "text", "text": "x"}]}},
            "description",
            "not allowed",
        ),
        ({"status": {"id": "10001"}}, "status", "cannot be set"),
    ],
)
def test_a_persons_edit_is_refused_as_jira_refuses_it(
    site: Site, sandbox: Any, fields: dict[str, Any], field: str, message: str
) -> None:
    made = site.create()
    before = site.fields_of(made["key"])
    resp = requests.post(
        f"{sandbox.url}/_sandbox/jira/edit", json={"issue": made["key"], "fields": fields}, timeout=10
    )
    assert resp.status_code == 400
    assert message in resp.json()["errors"][field]
    assert site.fields_of(made["key"]) == before


def test_a_persons_edit_of_an_unknown_issue_or_user_is_refused(site: Site, sandbox: Any) -> None:
    made = site.create()
    missing = requests.post(
        f"{sandbox.url}/_sandbox/jira/edit", json={"issue": "FIN-999", "fields": {}}, timeout=10
    )
    assert missing.status_code == 404
    stranger = requests.post(
        f"{sandbox.url}/_sandbox/jira/edit",
        json={"issue": made["key"], "fields": {"summary": "x"}, "user": "nobody"},
        timeout=10,
    )
    assert stranger.status_code == 400

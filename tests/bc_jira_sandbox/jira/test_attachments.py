"""The sandbox's Jira attachments over real HTTP: the XSRF header, multipart ``file``, 413, reading back."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from bc_jira_sandbox.bc.attachments import minimal_pdf, minimal_png
from bc_jira_sandbox.openapi import get_validator
from tests.support.jira_http import bearer_headers, rest_base

NO_CHECK = {"X-Atlassian-Token": "no-check"}


class JiraClient:
    """A bare client with an OAuth access token; every JSON answer is checked against the OpenAPI spec."""

    def __init__(self, sandbox: Any) -> None:
        self.headers = bearer_headers(sandbox)
        self.base = rest_base(sandbox)

    def call(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        resp = requests.request(
            method,
            f"{self.base}/{path}",
            headers={**self.headers, **(headers or {})},
            timeout=10,
            allow_redirects=False,
            **kw,
        )
        if resp.headers.get("content-type", "").startswith("application/json"):
            get_validator().validate_response(method, urlsplit(resp.url).path, resp.status_code, resp.json())
        return resp

    def issue(self) -> str:
        body = {
            "fields": {"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "with files"}
        }
        resp = self.call("POST", "issue", json=body)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["key"])


@pytest.fixture
def jira(sandbox: Any) -> JiraClient:
    return JiraClient(sandbox)


def test_upload_needs_the_xsrf_header_and_stores_only_file_parts(jira: JiraClient) -> None:
    key = jira.issue()
    pdf = minimal_pdf("x")
    no_header = jira.call("POST", f"issue/{key}/attachments", files={"file": ("a.pdf", pdf)})
    assert no_header.status_code == 403
    assert "XSRF check failed" in no_header.text
    wrong_part = jira.call(
        "POST", f"issue/{key}/attachments", headers=NO_CHECK, files={"upload": ("a.pdf", pdf)}
    )
    assert wrong_part.status_code == 200
    assert wrong_part.json() == []
    unknown = jira.call("POST", "issue/FIN-999/attachments", headers=NO_CHECK, files={"file": ("a.pdf", pdf)})
    assert unknown.status_code == 404
    fields = jira.call("GET", f"issue/{key}", params={"fields": "attachment"}).json()["fields"]
    assert fields["attachment"] == []  # nothing refused was stored


def test_upload_list_read_back_and_download(jira: JiraClient) -> None:
    key = jira.issue()
    pdf, png = minimal_pdf("Invoice 1"), minimal_png(4, 4, (1, 2, 3))
    resp = jira.call(
        "POST",
        f"issue/{key}/attachments",
        headers=NO_CHECK,
        files=[("file", ("inv [bc-1].pdf", pdf, "application/pdf")), ("file", ("scan.png", png))],
    )
    assert resp.status_code == 200, resp.text
    made = resp.json()
    assert [(a["filename"], a["size"], a["mimeType"]) for a in made] == [
        ("inv [bc-1].pdf", len(pdf), "application/pdf"),
        ("scan.png", len(png), "image/png"),  # no part type given: Jira goes by the name
    ]
    on_issue = jira.call("GET", f"issue/{key}", params={"fields": "attachment"}).json()["fields"][
        "attachment"
    ]
    assert [a["id"] for a in on_issue] == [a["id"] for a in made]
    meta = jira.call("GET", f"attachment/{made[0]['id']}").json()
    assert meta["filename"] == "inv [bc-1].pdf"
    assert meta["size"] == len(pdf)
    redirect = jira.call("GET", f"attachment/content/{made[0]['id']}")
    assert redirect.status_code == 303
    data = jira.call("GET", f"attachment/content/{made[0]['id']}", params={"redirect": "false"})
    assert data.status_code == 200
    assert data.content == pdf
    assert jira.call("GET", "attachment/99999").status_code == 404


def test_over_the_size_limit_is_413_and_stores_nothing(jira: JiraClient, sandbox: Any) -> None:
    sandbox.control("POST", "/_sandbox/jira/options", {"attachment_max_bytes": 2000})
    assert jira.call("GET", "attachment/meta").json() == {"enabled": True, "uploadLimit": 2000}
    key = jira.issue()
    small, big = minimal_pdf("small"), minimal_pdf("big", 5000)
    resp = jira.call(
        "POST",
        f"issue/{key}/attachments",
        headers=NO_CHECK,
        files=[("file", ("s.pdf", small)), ("file", ("b.pdf", big))],
    )
    assert resp.status_code == 413
    fields = jira.call("GET", f"issue/{key}", params={"fields": "attachment"}).json()["fields"]
    assert fields["attachment"] == []
    ok = jira.call("POST", f"issue/{key}/attachments", headers=NO_CHECK, files={"file": ("s.pdf", small)})
    assert ok.status_code == 200


def test_the_issue_page_lists_the_attachments_and_serves_them(jira: JiraClient, sandbox: Any) -> None:
    from bc_jira_sandbox.pages import SITE

    key = jira.issue()
    pdf = minimal_pdf("Invoice 9")
    made = jira.call(
        "POST", f"issue/{key}/attachments", headers=NO_CHECK, files={"file": ("inv [bc-9].pdf", pdf)}
    ).json()[0]
    page = requests.get(f"{sandbox.url}{SITE}/browse/{key}", timeout=10)
    assert page.status_code == 200
    assert "Attachments (1)" in page.text
    href = f"{SITE}/secure/attachment/{made['id']}/inv%20%5Bbc-9%5D.pdf"
    assert f'href="{href}"' in page.text
    got = requests.get(f"{sandbox.url}{href}", timeout=10)
    assert got.status_code == 200
    assert got.content == pdf
    assert got.headers["content-type"] == "application/pdf"
    assert requests.get(f"{sandbox.url}{SITE}/secure/attachment/1/x.pdf", timeout=10).status_code == 404

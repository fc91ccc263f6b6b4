"""The sandbox Jira's issue navigator ``/site/issues/?jql=`` over real HTTP: the same hits as the REST search
(index lag included), escaped, 400 for a bad JQL, and a person's page (no faults, no API call stats)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

EVIL = '<script>alert("x")</script> & <b>bold</b>'
LAG = 3.0


class Site:
    def __init__(self, sandbox: Any) -> None:
        c = sandbox.creds
        self.sb = sandbox
        self.url = c["site_url"]
        self.auth = (c["jira_email"], c["jira_api_token"])
        fields = requests.get(f"{self.url}/rest/api/3/field", auth=self.auth, timeout=10).json()
        self.ids = {f["name"]: f["id"] for f in fields}

    def create(self, summary: str, doc: str) -> str:
        fields = {
            "project": {"key": "FIN"},
            "issuetype": {"name": "Invoice"},
            "summary": summary,
            self.ids["BC Document No."]: doc,
        }
        resp = requests.post(
            f"{self.url}/rest/api/3/issue", json={"fields": fields}, auth=self.auth, timeout=10
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["key"]

    def navigator(self, jql: str | None, path: str = "/issues/") -> requests.Response:
        return requests.get(f"{self.url}{path}", params=None if jql is None else {"jql": jql}, timeout=10)

    def rest_keys(self, jql: str) -> list[str]:
        resp = requests.get(
            f"{self.url}/rest/api/3/search/jql", params={"jql": jql}, auth=self.auth, timeout=10
        )
        assert resp.status_code == 200, resp.text
        return [i["key"] for i in resp.json()["issues"]]


def keys_on(html: str) -> list[str]:
    return re.findall(r'<td><a href="/site/browse/([A-Z]+-\d+)">', html)


@pytest.fixture
def site(sandbox: Any) -> Site:
    sandbox.reset(vendors=1, invoices=1, orders=0)
    sandbox.options(search_lag_s=LAG)
    return Site(sandbox)


def test_navigator_lists_exactly_what_the_rest_search_finds_after_the_index_lag(site: Site) -> None:
    a, b, c = (
        site.create(EVIL, "1001"),
        site.create("Invoice 1002", "1002"),
        site.create("Invoice 1003", "1003"),
    )
    jql = f"key in ({a}, {c})"
    fresh = site.navigator(jql)
    assert fresh.status_code == 200
    assert keys_on(fresh.text) == [] == site.rest_keys(jql)  # not indexed yet: Jira's search lags writes
    time.sleep(LAG + 0.5)
    page = site.navigator(jql)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert keys_on(page.text) == [a, c] == site.rest_keys(jql)
    assert b not in page.text
    assert '<p class="note" id="count">2 issue(s)</p>' in page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page.text
    assert "<td>1003</td>" in page.text  # the BC Document No. column
    assert f'value="{jql}"' in page.text  # the query stays in the search box
    # the same page without the trailing slash, and the other ORDER BY
    desc = site.navigator(f"{jql} ORDER BY key DESC", path="/issues")
    assert keys_on(desc.text) == [c, a]


def test_bad_jql_is_a_400_page_naming_the_error_and_empty_jql_is_the_form(site: Site) -> None:
    bad = site.navigator('key in (FIN-1 "><script>alert(1)</script>')
    assert bad.status_code == 400
    assert "Error in the JQL Query" in bad.text
    assert "<script>alert(1)" not in bad.text
    unknown = site.navigator("nosuchfield = 1")
    assert unknown.status_code == 400
    assert "Field &#x27;nosuchfield&#x27; does not exist" in unknown.text
    unbounded = site.navigator("ORDER BY key")
    assert unbounded.status_code == 400
    assert "Unbounded JQL queries are not allowed" in unbounded.text
    assert site.navigator("x" * 20_001).status_code == 400
    for jql in (None, "", "   "):
        form = site.navigator(jql)
        assert form.status_code == 200
        assert '<input name="jql"' in form.text
        assert keys_on(form.text) == []


def test_navigator_is_a_page_no_faults_no_api_stats(site: Site) -> None:
    key = site.create("Invoice 1004", "1004")
    time.sleep(LAG + 0.5)
    sb = site.sb
    sb.control("POST", "/_sandbox/stats/reset")
    sb.faults(**{"500": 1.0})
    try:
        assert keys_on(site.navigator(f"key = {key}").text) == [key]
    finally:
        sb.faults()
    assert not [k for k in sb.stats()["calls"] if "search" in k or "issues" in k]

"""The Atlassian OAuth and Jira REST v3 sandbox over real HTTP: rotation, search lag, JQL, bulk limits, ADF,
users, webhook deliveries (REST webhooks with a bearer JWT, admin webhooks with X-Hub-Signature) with retries
and expiry, and spec-valid answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bc_jira_sandbox.core import Options, Sandbox
from bc_jira_sandbox.jira.adf import validate_adf
from bc_jira_sandbox.jira.jql import parse_jql
from bc_jira_sandbox.openapi import get_validator

if TYPE_CHECKING:
    from collections.abc import Iterator

ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "x"}]}],
}


class Jira:
    """A bare HTTP client for the sandbox that checks every answer against the OpenAPI spec."""

    def __init__(self, sandbox: Any) -> None:
        self.sb = sandbox
        c = sandbox.creds
        tok = self.token("refresh_token", refresh_token=c["refresh_token"])
        assert tok.status_code == 200, tok.text
        self.refresh_token = tok.json()["refresh_token"]
        self.headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        self.base = f"{sandbox.url}/ex/jira/{c['cloud_id']}/rest/api/3"
        self.fields = {f["name"]: f["id"] for f in self.call("GET", "field").json()}

    def refresh(self) -> None:
        """Rotate: use the newest refresh token (reusing an old one after the leeway revokes the grant)."""
        tok = self.token("refresh_token", refresh_token=self.refresh_token)
        assert tok.status_code == 200, tok.text
        self.refresh_token = tok.json()["refresh_token"]
        self.headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}

    def token(self, grant: str, **body: Any) -> requests.Response:
        c = self.sb.creds
        return requests.post(
            f"{self.sb.url}/oauth/token",
            timeout=10,
            json={
                "grant_type": grant,
                "client_id": c["atlassian_client_id"],
                "client_secret": c["atlassian_client_secret"],
                **body,
            },
        )

    def call(self, method: str, path: str, json_body: Any = None, **kw: Any) -> requests.Response:
        resp = requests.request(
            method, f"{self.base}/{path}", json=json_body, headers=self.headers, timeout=10, **kw
        )
        v = get_validator()
        url_path = urlsplit(resp.url).path
        if json_body is not None and resp.status_code < 400:
            v.validate_request(method, url_path, json_body)
        v.validate_response(method, url_path, resp.status_code, resp.json() if resp.content else None)
        return resp

    def create(self, n: int, **fields: Any) -> dict[str, Any]:
        body = {
            "fields": {
                "project": {"key": "FIN"},
                "issuetype": {"name": "Invoice"},
                "summary": f"Inv {n}",
                self.fields["BC Record Id"]: f"rec-{n}",
                **fields,
            }
        }
        resp = self.call("POST", "issue", body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def fields_custom(self) -> set[str]:
        return {fid for name, fid in self.fields.items() if fid.startswith("customfield_")}

    def search(self, jql: str, **body: Any) -> requests.Response:
        return self.call("POST", "search/jql", {"jql": jql, **body})


@pytest.fixture
def jira(sandbox: Any) -> Jira:
    return Jira(sandbox)


# -- Atlassian OAuth -----------------------------------------------------------------------------------------


def test_authorize_auto_consents_and_code_exchange(sandbox: Any) -> None:
    c = sandbox.creds
    params = {
        "audience": "api.atlassian.com",
        "client_id": c["atlassian_client_id"],
        "scope": "read:jira-work offline_access",
        "redirect_uri": c["redirect_uri"],
        "state": "s-42",
        "response_type": "code",
        "prompt": "consent",
    }
    resp = requests.get(f"{sandbox.url}/authorize", params=params, allow_redirects=False, timeout=10)
    assert resp.status_code == 302
    loc = urlsplit(resp.headers["location"])
    q = {k: v[0] for k, v in parse_qs(loc.query).items()}
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == c["redirect_uri"]
    assert q["state"] == "s-42"
    body = {
        "grant_type": "authorization_code",
        "client_id": c["atlassian_client_id"],
        "client_secret": c["atlassian_client_secret"],
        "code": q["code"],
        "redirect_uri": c["redirect_uri"],
    }
    tok = requests.post(f"{sandbox.url}/oauth/token", json=body, timeout=10)
    assert tok.status_code == 200
    assert tok.json()["refresh_token"]
    assert tok.json()["expires_in"] == 3600
    again = requests.post(f"{sandbox.url}/oauth/token", json=body, timeout=10)  # codes are single use
    assert again.status_code == 403
    assert again.json()["error"] == "invalid_grant"
    res = requests.get(
        f"{sandbox.url}/oauth/token/accessible-resources",
        timeout=10,
        headers={"Authorization": f"Bearer {tok.json()['access_token']}"},
    )
    assert res.json()[0]["id"] == c["cloud_id"]
    assert res.json()[0]["url"] == c["site_url"]
    bad = requests.get(
        f"{sandbox.url}/authorize", params={**params, "client_id": "nope"}, allow_redirects=False, timeout=10
    )
    assert bad.status_code == 400
    evil = requests.get(
        f"{sandbox.url}/authorize",
        params={**params, "redirect_uri": "https://evil.example/cb"},
        allow_redirects=False,
        timeout=10,
    )
    assert evil.status_code == 400
    assert sandbox.stats()["events"]["atlassian.token.code"] == 2


def test_refresh_rotation_leeway_then_revocation(jira: Jira, sandbox: Any) -> None:
    first = sandbox.creds["refresh_token"]  # already used once by the Jira fixture: superseded
    second = jira.refresh_token
    within = jira.token("refresh_token", refresh_token=first)
    assert within.status_code == 200  # reuse inside the 10-minute leeway is tolerated
    assert within.json()["refresh_token"] not in (first, second)  # every refresh rotates
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 601})
    late = jira.token("refresh_token", refresh_token=first)
    assert late.status_code == 403
    assert late.json()["error"] == "invalid_grant"
    # Reuse outside the leeway revoked the whole grant: the newest tokens are dead too.
    assert jira.token("refresh_token", refresh_token=within.json()["refresh_token"]).status_code == 403
    assert requests.get(f"{jira.base}/myself", headers=jira.headers, timeout=10).status_code == 401
    assert sandbox.stats()["events"]["atlassian.token.refresh"] == 4
    wrong = requests.post(
        f"{sandbox.url}/oauth/token",
        timeout=10,
        json={
            "grant_type": "refresh_token",
            "client_id": sandbox.creds["atlassian_client_id"],
            "client_secret": "bad",
            "refresh_token": second,
        },
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "access_denied"


def test_a_wrong_client_secret_spends_no_refresh_token(jira: Jira, sandbox: Any) -> None:
    """RFC 6749 section 6 and Atlassian's refresh-token page: the client is authenticated first and a token is
    retired only when a new one is issued. So a refresh carrying a wrong secret (the Test button checking a
    typed secret) is 401 and leaves the presented token as it was: not rotated, not in its leeway."""
    current = jira.refresh_token
    for secret in ("bad", "", None):
        wrong = jira.token("refresh_token", refresh_token=current, client_secret=secret)
        assert (wrong.status_code, wrong.json()["error"]) == (401, "access_denied"), wrong.text
        assert "refresh_token" not in wrong.json()
    wrong_id = jira.token("refresh_token", refresh_token=current, client_id="someone-else")
    assert wrong_id.status_code == 401
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})  # far past any reuse leeway
    right = jira.token("refresh_token", refresh_token=current)
    assert right.status_code == 200, right.text  # still the family's newest token: a first use
    events = sandbox.stats()["events"]
    assert events.get("atlassian.token.reuse_in_leeway", 0) == 0
    assert events.get("atlassian.grant.revoked", 0) == 0


def test_access_token_of_a_rotated_refresh_token_dies_after_the_leeway(jira: Jira, sandbox: Any) -> None:
    """Atlassian staff (community t/83103): on a refresh "the old access and refresh tokens will enter a
    10-minutes grace period ... before they are marked as revoked"."""
    old_headers = dict(jira.headers)
    jira.refresh()  # rotates the refresh token that came with old_headers' access token
    assert requests.get(f"{jira.base}/myself", headers=old_headers, timeout=10).status_code == 200
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 601})
    assert requests.get(f"{jira.base}/myself", headers=old_headers, timeout=10).status_code == 401
    assert jira.call("GET", "myself").status_code == 200  # the new access token lives its hour


def test_refresh_token_unused_for_90_days_expires(jira: Jira, sandbox: Any) -> None:
    """Atlassian (community t/54172): "Rotating refresh tokens expire after 90 days of user inactivity. Each
    time a new rotating refresh token is used, the inactive expiry time is reset to 90 days." """
    for _ in range(2):  # used every 89 days: each use resets the 90 days
        sandbox.control("POST", "/_sandbox/clock", {"advance_s": 89 * 86400})
        jira.refresh()
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 90 * 86400})
    late = jira.token("refresh_token", refresh_token=jira.refresh_token)
    assert late.status_code == 403
    assert late.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    assert sandbox.stats()["events"]["atlassian.token.expired_idle"] == 1


def test_grant_expires_365_days_after_consent_however_often_refreshed(jira: Jira, sandbox: Any) -> None:
    """Atlassian (t/54172): "All tokens have an absolute expiry time of 365 days ... The absolute expiry time
    persists between token refreshes"; staff (t/60806/2): "even if it keeps getting refreshed"."""
    for _ in range(12):  # refreshed every 30 days: never idle, 360 days after the consent
        sandbox.control("POST", "/_sandbox/clock", {"advance_s": 30 * 86400})
        jira.refresh()
    assert jira.call("GET", "myself").status_code == 200
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 5 * 86400})  # day 365
    late = jira.token("refresh_token", refresh_token=jira.refresh_token)
    assert late.status_code == 403
    assert late.json()["error"] == "invalid_grant"
    assert sandbox.stats()["events"]["atlassian.token.expired_absolute"] == 1
    # Consenting again starts a new year.
    c = sandbox.creds
    params = {
        "audience": "api.atlassian.com",
        "client_id": c["atlassian_client_id"],
        "scope": "read:jira-work offline_access",
        "redirect_uri": c["redirect_uri"],
        "response_type": "code",
        "prompt": "consent",
    }
    loc = requests.get(f"{sandbox.url}/authorize", params=params, allow_redirects=False, timeout=10)
    code = parse_qs(urlsplit(loc.headers["location"]).query)["code"][0]
    fresh = jira.token("authorization_code", code=code, redirect_uri=c["redirect_uri"])
    assert fresh.status_code == 200
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 30 * 86400})
    assert jira.token("refresh_token", refresh_token=fresh.json()["refresh_token"]).status_code == 200


def test_access_token_expires_after_an_hour(jira: Jira, sandbox: Any) -> None:
    assert jira.call("GET", "myself").status_code == 200
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3601})
    assert requests.get(f"{jira.base}/myself", headers=jira.headers, timeout=10).status_code == 401
    other_cloud = jira.base.replace(sandbox.creds["cloud_id"], "00000000-0000-4000-8000-000000000000")
    assert requests.get(f"{other_cloud}/myself", headers=jira.headers, timeout=10).status_code == 401


def test_basic_auth_site_root(sandbox: Any) -> None:
    c = sandbox.creds
    good = requests.get(
        f"{sandbox.url}/site/rest/api/3/myself", auth=(c["jira_email"], c["jira_api_token"]), timeout=10
    )
    assert good.status_code == 200
    assert good.json()["emailAddress"] == c["jira_email"]
    bad = requests.get(f"{sandbox.url}/site/rest/api/3/myself", auth=(c["jira_email"], "nope"), timeout=10)
    assert bad.status_code == 401


# -- fields, issues, search ----------------------------------------------------------------------------------


def test_custom_field_ids_differ_per_seed(jira: Jira) -> None:
    other = Sandbox(Options(seed=7, seed_vendors=0, seed_invoices=0, seed_orders=0))
    other_ids = {f["name"]: f["id"] for f in other.jira.fields}
    names = ["BC Record Id", "BC Document No.", "BC Vendor", "BC Amount", "BC Currency", "BC Status"]
    assert all(jira.fields[n].startswith("customfield_1") for n in names)
    assert [jira.fields[n] for n in names] != [other_ids[n] for n in names]
    field = next(f for f in jira.call("GET", "field").json() if f["name"] == "BC Amount")
    assert field["schema"]["custom"].endswith(":float")
    assert f"cf[{field['schema']['customId']}]" in field["clauseNames"]


def test_search_lags_writes_unless_reconciled(jira: Jira, sandbox: Any) -> None:
    sandbox.options(search_lag_s=1.5)
    a = jira.create(1)
    jql = 'project = FIN AND "BC Record Id" = "rec-1"'
    assert jira.search(jql).json()["issues"] == []
    got = jira.search(jql, reconcileIssues=[int(a["id"])], fields=["key"]).json()["issues"]
    assert [i["key"] for i in got] == [a["key"]]
    time.sleep(1.6)
    assert [i["id"] for i in jira.search(jql).json()["issues"]] == [a["id"]]  # default fields: id only
    assert "fields" not in jira.search(jql).json()["issues"][0]
    # An edit: search keeps showing the old value until the index catches up.
    jira.call("PUT", f"issue/{a['key']}", {"fields": {"summary": "changed"}})
    stale = jira.search(jql, fields=["summary"]).json()["issues"][0]["fields"]["summary"]
    assert stale == "Inv 1"
    fresh = jira.search(jql, fields=["summary"], reconcileIssues=[int(a["id"])]).json()
    assert fresh["issues"][0]["fields"]["summary"] == "changed"
    too_many = jira.search(jql, reconcileIssues=list(range(51)))
    assert too_many.status_code == 400


def test_jql_subset_and_paging(jira: Jira, sandbox: Any) -> None:
    sandbox.options(search_lag_s=0)
    made = [jira.create(n, **{jira.fields["BC Amount"]: float(n)}) for n in range(7)]
    vendor = jira.call(
        "POST",
        "issue",
        {"fields": {"project": {"id": "10000"}, "issuetype": {"name": "Vendor"}, "summary": "Vendor X"}},
    ).json()
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": made[2]["key"], "to": "Done"}, timeout=10
    ).raise_for_status()
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition",
        json={"issue": made[3]["key"], "to": "Rejected"},
        timeout=10,
    ).raise_for_status()
    cf = jira.fields["BC Record Id"].split("_")[1]

    def keys(jql: str) -> list[str]:
        resp = jira.search(jql, fields=["key"], maxResults=5000)
        assert resp.status_code == 200, resp.text
        return [i["key"] for i in resp.json()["issues"]]

    assert keys("project = FIN AND statusCategory = Done ORDER BY key ASC") == [
        made[2]["key"],
        made[3]["key"],
    ]
    assert keys('project = FIN AND status = "Done"') == [made[2]["key"]]
    assert keys('project = FIN AND issuetype in ("Vendor", Task)') == [vendor["key"]]
    assert keys(f'cf[{cf}] in ("rec-1", "rec-5") ORDER BY key DESC') == [made[5]["key"], made[1]["key"]]
    assert keys('project = FIN AND "BC Record Id" ~ "rec-6"') == [made[6]["key"]]
    assert keys('project = FIN AND (issuetype = Vendor OR "BC Amount" >= 6)') == [
        made[6]["key"],
        vendor["key"],
    ]
    assert len(keys('project = FIN AND updated >= "-15m"')) == 8
    assert keys('project = FIN AND updated >= "2999-01-01"') == []
    pages, token = [], None
    while True:
        body: dict[str, Any] = {"fields": ["key"], "maxResults": 3}
        if token:
            body["nextPageToken"] = token
        page = jira.search("project = FIN ORDER BY key ASC", **body).json()
        pages.append([i["key"] for i in page["issues"]])
        token = page.get("nextPageToken")
        assert page["isLast"] is (token is None)
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    for bad in (
        "",
        "ORDER BY key",
        "project = ",
        "nosuchfield = 1",
        'project = FIN AND updated > "yesterday"',
    ):
        resp = jira.search(bad)
        assert resp.status_code == 400, bad
        assert resp.json()["errorMessages"], bad


def test_bulk_create_partial_and_limits(jira: Jira) -> None:
    ok = {"fields": {"project": {"key": "FIN"}, "issuetype": {"id": "10002"}, "summary": "ok"}}
    missing = {"fields": {"project": {"key": "FIN"}, "issuetype": {"id": "10002"}}}
    bad_type = {
        "fields": {
            "project": {"key": "FIN"},
            "issuetype": {"id": "10002"},
            "summary": "x",
            jira.fields["BC Amount"]: "not a number",
        }
    }
    resp = jira.call("POST", "issue/bulk", {"issueUpdates": [ok, missing, ok, bad_type]})
    assert resp.status_code == 201
    body = resp.json()
    assert len(body["issues"]) == 2
    assert [e["failedElementNumber"] for e in body["errors"]] == [1, 3]
    assert "summary" in body["errors"][0]["elementErrors"]["errors"]
    all_bad = jira.call("POST", "issue/bulk", {"issueUpdates": [missing]})
    assert all_bad.status_code == 400
    assert all_bad.json()["issues"] == []
    assert jira.call("POST", "issue/bulk", {"issueUpdates": [ok] * 51}).status_code == 400
    unknown = jira.call("POST", "issue", {"fields": {**ok["fields"], "customfield_1": "x"}})
    assert unknown.status_code == 400
    assert "customfield_1" in unknown.json()["errors"]


def test_bulk_create_answer_order_is_not_promised_and_bulkfetch_reads_back(jira: Jira, sandbox: Any) -> None:
    """Atlassian documents no order for issues[] of POST /issue/bulk; with bulk_create_order=shuffled the
    sandbox answers in another order, and POST /issue/bulkfetch (≤ 100, ascending id, no search lag) tells
    which record each created issue carries."""
    rid = jira.fields["BC Record Id"]
    updates = [
        {
            "fields": {
                "project": {"key": "FIN"},
                "issuetype": {"name": "Invoice"},
                "summary": f"Inv {n}",
                rid: f"rec-{n}",
            }
        }
        for n in range(12)
    ]
    in_order = jira.call("POST", "issue/bulk", {"issueUpdates": updates}).json()["issues"]
    ids = [int(i["id"]) for i in in_order]
    assert ids == sorted(ids)  # the default keeps the input order
    assert sandbox.options(bulk_create_order="shuffled")["bulk_create_order"] == "shuffled"
    resp = jira.call("POST", "issue/bulk", {"issueUpdates": updates})
    assert resp.status_code == 201
    created = resp.json()["issues"]
    ids = [int(i["id"]) for i in created]
    assert sorted(ids) != ids
    assert len(set(ids)) == 12
    sandbox.options(search_lag_s=60)  # bulkfetch reads the issues themselves, not the lagging index
    asked = [i["id"] for i in reversed(created)] + ["99999999"]  # an unknown id is left out, not an error
    got = jira.call("POST", "issue/bulkfetch", {"issueIdsOrKeys": asked, "fields": [rid]})
    assert got.status_code == 200
    body = got.json()
    assert [int(i["id"]) for i in body["issues"]] == sorted(ids)
    assert body["issueErrors"] == []
    by_id = {i["id"]: i["fields"][rid] for i in body["issues"]}
    order = sorted(range(12), key=lambda n: ids[n])  # issue ids are allocated in input order
    assert [by_id[str(ids[n])] for n in order] == [f"rec-{n}" for n in range(12)]
    assert set(body["issues"][0]["fields"]) == {rid}
    by_key = jira.call("POST", "issue/bulkfetch", {"issueIdsOrKeys": [created[0]["key"]], "fields": [rid]})
    assert by_key.json()["issues"][0]["id"] == created[0]["id"]
    assert jira.call("POST", "issue/bulkfetch", {"issueIdsOrKeys": ["1"] * 101}).status_code == 400
    assert jira.call("POST", "issue/bulkfetch", {"issueIdsOrKeys": []}).status_code == 400
    bad = requests.post(f"{sandbox.url}/_sandbox/options", json={"bulk_create_order": "random"}, timeout=10)
    assert bad.status_code == 400


def test_transitions_comments_adf(jira: Jira) -> None:
    a = jira.create(1)
    trs = jira.call("GET", f"issue/{a['key']}/transitions").json()["transitions"]
    assert {t["to"]["name"]: t["to"]["statusCategory"]["key"] for t in trs} == {
        "In Progress": "indeterminate",
        "Done": "done",
        "Rejected": "done",
    }
    done = next(t for t in trs if t["to"]["name"] == "Done")
    resp = jira.call(
        "POST",
        f"issue/{a['key']}/transitions",
        {"transition": {"id": done["id"]}, "update": {"comment": [{"add": {"body": ADF}}]}},
    )
    assert resp.status_code == 204
    assert jira.call("GET", f"issue/{a['id']}?fields=status").json()["fields"]["status"]["name"] == "Done"
    assert (
        jira.call("POST", f"issue/{a['key']}/transitions", {"transition": {"id": "999"}}).status_code == 400
    )
    good = jira.call("POST", f"issue/{a['key']}/comment", {"body": ADF})
    assert good.status_code == 201
    assert good.json()["body"] == ADF
    for bad in (
        "plain text",
        {"type": "doc", "content": []},
        {"type": "doc", "version": 1, "content": [{"type": "text", "text": "inline at top"}]},
        {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": ""}]}],
        },
        {"type": "doc", "version": 1, "content": [{"type": "blink"}]},
    ):
        resp = jira.call("POST", f"issue/{a['key']}/comment", {"body": bad})
        assert resp.status_code == 400, bad
    assert jira.call("GET", f"issue/{a['key']}/comment").json()["total"] == 2
    assert jira.call("GET", "issue/FIN-999").status_code == 404


def test_adf_validator_accepts_rich_documents() -> None:
    doc = {
        "type": "doc",
        "version": 1,
        "content": [
            {"type": "heading", "attrs": {"level": 2}, "content": [{"type": "text", "text": "Invoice"}]},
            {
                "type": "paragraph",
                "content": [
                    {
                        "type": "text",
                        "text": "open",
                        "marks": [
                            {"type": "link", "attrs": {"href": "https://bc.example/x"}},
                            {"type": "strong"},
                        ],
                    }
                ],
            },
            {
                "type": "bulletList",
                "content": [
                    {
                        "type": "listItem",
                        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "a"}]}],
                    }
                ],
            },
            {
                "type": "table",
                "content": [
                    {
                        "type": "tableRow",
                        "content": [
                            {
                                "type": "tableHeader",
                                "content": [
                                    {"type": "paragraph", "content": [{"type": "text", "text": "h"}]}
                                ],
                            },
                            {"type": "tableCell", "content": [{"type": "paragraph", "content": []}]},
                        ],
                    }
                ],
            },
        ],
    }
    assert validate_adf(doc) is None
    assert validate_adf({**doc, "extra": 1}) is not None
    assert parse_jql('project = FIN AND "BC Record Id" in ("a", "b") ORDER BY key')[1] == [("key", False)]


def test_users_hide_email_and_bulk(jira: Jira) -> None:
    everyone = jira.call("GET", "user/search", params={"query": "a"}).json()
    assert everyone
    assert all("accountId" in u for u in everyone)
    bob = jira.call("GET", "user/search", params={"query": "bob"}).json()
    assert len(bob) == 1
    assert "emailAddress" not in bob[0]
    assert jira.call("GET", "user/search", params={"query": "bob.buyer@"}).json() == []  # hidden: no partial
    assert len(jira.call("GET", "user/search", params={"query": "bob.buyer@example.com"}).json()) == 1
    ids = [u["accountId"] for u in everyone]
    page = jira.call("GET", "user/bulk", params=[("accountId", i) for i in ids] + [("maxResults", 2)]).json()
    assert len(page["values"]) == 2
    assert page["isLast"] is (len(ids) <= 2)
    assert page["total"] == len(ids)
    assert jira.call("GET", "user/bulk").status_code == 400
    assert jira.call("GET", "user/search", params={"query": "a", "accountId": ids[0]}).status_code == 400


# -- webhooks ------------------------------------------------------------------------------------------------


class Receiver:
    """A local HTTP endpoint recording deliveries; answers the queued statuses first, then 200."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        self.event = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.got.append(({k.lower(): v for k, v in self.headers.items()}, raw))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.end_headers()
                outer.event.set()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/bc-jira/jira/webhook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, n: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.got) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.got) >= n, f"expected {n} deliveries, got {len(self.got)}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_webhook_delivery_signed_filtered_retried(jira: Jira, sandbox: Any, receiver: Receiver) -> None:
    res = jira.call(
        "POST",
        "webhook",
        {
            "url": receiver.url,
            "webhooks": [
                {
                    "events": ["jira:issue_updated"],
                    "jqlFilter": "project = FIN AND issuetype = Invoice",
                    "fieldIdsFilter": ["status"],
                },
                {"events": ["jira:issue_updated"], "jqlFilter": "project = FIN AND updated > -1d"},
            ],
        },
    ).json()["webhookRegistrationResult"]
    assert "createdWebhookId" in res[0]
    assert res[1]["errors"] == ["The clause updated is unsupported"]
    wid = res[0]["createdWebhookId"]
    a = jira.create(1)
    jira.call("PUT", f"issue/{a['key']}", {"fields": {"summary": "no status change"}})  # filtered out
    receiver.statuses = [503]  # first attempt fails: Jira retries with the same identifier
    moved = requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": a["key"], "to": "Done"}, timeout=10
    )
    assert moved.json()["status"] == "Done"
    receiver.wait(2, timeout=15)
    (h1, raw1), (h2, raw2) = receiver.got[:2]
    assert raw1 == raw2
    assert h1["x-atlassian-webhook-identifier"] == h2["x-atlassian-webhook-identifier"]
    assert "x-atlassian-webhook-retry" not in h1
    assert h2["x-atlassian-webhook-retry"] == "1"
    # A REST-registered (OAuth app) webhook: only a bearer JWT, HS256 with the app's client secret; no
    # X-Hub-Signature (its registration body has no place for a secret).
    for h in (h1, h2):
        assert "x-hub-signature" not in h
        claims = check_delivery_jwt(h, sandbox.creds["atlassian_client_secret"])
        assert set(claims) == {"iat", "exp"}
        assert 0 < claims["exp"] - claims["iat"] <= 300
        assert abs(claims["iat"] - time.time()) < 60
    payload = json.loads(raw2)
    assert payload["webhookEvent"] == "jira:issue_updated"
    assert payload["matchedWebhookIds"] == [wid]
    item = payload["changelog"]["items"][0]
    assert (item["field"], item["fieldId"], item["fromString"], item["toString"]) == (
        "status",
        "status",
        "To Do",
        "Done",
    )
    assert payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert payload["issue"]["key"] == a["key"]
    assert payload["user"]["displayName"] == "Alice Approver"
    get_validator().check({"$ref": "#/components/schemas/IssueBean"}, payload["issue"], "webhook issue")
    assert sandbox.stats()["events"]["jira.webhooks.sent"] == 2
    # A Vendor issue does not match the JQL filter: no delivery.
    v = jira.call(
        "POST",
        "issue",
        {"fields": {"project": {"key": "FIN"}, "issuetype": {"name": "Vendor"}, "summary": "v"}},
    ).json()
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": v["key"], "to": "Done"}, timeout=10
    )
    time.sleep(0.5)
    assert len(receiver.got) == 2


def check_delivery_jwt(headers: dict[str, str], secret: str) -> dict[str, Any]:
    """Verify the delivery's bearer token independently of the connector (PyJWT)."""
    import jwt as pyjwt

    auth = headers["authorization"]
    assert auth.startswith("Bearer ")
    token = auth.removeprefix("Bearer ")
    assert pyjwt.get_unverified_header(token)["alg"] == "HS256"
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, secret + "x", algorithms=["HS256"])
    return pyjwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp", "iat"]})


def test_admin_webhooks_sign_with_their_secret_only(jira: Jira, sandbox: Any, receiver: Receiver) -> None:
    """Admin webhooks (Settings > System > WebHooks): X-Hub-Signature with the secret they were created with,
    none without one; never a JWT. They do not expire and do not need the OAuth app."""
    signed = requests.post(
        f"{sandbox.url}/_sandbox/jira/admin-webhooks",
        json={"url": receiver.url, "jqlFilter": "project = FIN", "secret": "admin-secret-1"},
        timeout=10,
    )
    assert signed.status_code == 201
    assert "secret" not in signed.json()
    plain_url = receiver.url.replace("/jira/webhook", "/jira/plain")
    assert (
        requests.post(
            f"{sandbox.url}/_sandbox/jira/admin-webhooks", json={"url": plain_url}, timeout=10
        ).status_code
        == 201
    )
    bad = requests.post(
        f"{sandbox.url}/_sandbox/jira/admin-webhooks",
        json={"url": receiver.url, "jqlFilter": "updated > -1d"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert "unsupported" in bad.text
    a = jira.create(1)
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 40 * 86400})  # admin webhooks do not expire
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": a["key"], "to": "Done"}, timeout=10
    )
    receiver.wait(2, timeout=15)
    by_path = {h.get("x-atlassian-webhook-identifier"): (h, raw) for h, raw in receiver.got}
    assert len(by_path) == 2  # one delivery per admin webhook, each with its own identifier
    with_sig = [(h, raw) for h, raw in receiver.got if "x-hub-signature" in h]
    without = [(h, raw) for h, raw in receiver.got if "x-hub-signature" not in h]
    assert len(with_sig) == 1
    assert len(without) == 1
    h, raw = with_sig[0]
    assert h["x-hub-signature"] == "sha256=" + hmac.new(b"admin-secret-1", raw, hashlib.sha256).hexdigest()
    assert all("authorization" not in h for h, _ in receiver.got)
    payload = json.loads(raw)
    assert payload["issue"]["key"] == a["key"]
    assert "matchedWebhookIds" not in payload


def test_webhook_expiry_refresh_list_delete(jira: Jira, sandbox: Any, receiver: Receiver) -> None:
    wid = jira.call(
        "POST",
        "webhook",
        {"url": receiver.url, "webhooks": [{"events": ["jira:issue_updated"], "jqlFilter": "project = FIN"}]},
    ).json()["webhookRegistrationResult"][0]["createdWebhookId"]
    listed = jira.call("GET", "webhook").json()
    assert listed["total"] == 1
    assert listed["values"][0]["url"] == receiver.url
    exp = listed["values"][0]["expirationDate"]
    assert abs(exp / 1000 - (time.time() + 30 * 86400)) < 120
    other = jira.call(
        "POST",
        "webhook",
        {
            "url": "http://127.0.0.1:1/other",
            "webhooks": [{"events": ["jira:issue_updated"], "jqlFilter": "project = FIN"}],
        },
    )
    assert other.status_code == 400  # one URL per app
    a = jira.create(1)
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 31 * 86400})
    jira.refresh()  # the access token expired with the clock jump
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": a["key"], "to": "Done"}, timeout=10
    )
    time.sleep(0.5)
    assert receiver.got == []  # expired: not delivered
    refreshed = jira.call("PUT", "webhook/refresh", {"webhookIds": [wid, 424242]}).json()["expirationDate"]
    assert refreshed > exp
    requests.post(
        f"{sandbox.url}/_sandbox/jira/transition", json={"issue": a["key"], "to": "To Do"}, timeout=10
    )
    receiver.wait(1)
    assert jira.call("DELETE", "webhook", {"webhookIds": [wid]}).status_code == 202
    assert jira.call("GET", "webhook").json()["values"] == []


def test_webhook_expiration_date_in_the_spec_examples_form(jira: Jira, sandbox: Any) -> None:
    """The spec's schema says int64 epoch ms; its examples (and Atlassian's reference page) show
    "2019-06-01T12:42:30.000+0000". The sandbox answers either; the ISO form is validated as exactly that."""
    from bc_jira_sandbox.openapi import SpecViolation

    assert sandbox.control("POST", "/_sandbox/jira/options", {"expiration_date_format": "iso"}) == {
        "validate": True,
        "expiration_date_format": "iso",
    }
    wid = jira.call(
        "POST",
        "webhook",
        {
            "url": "http://127.0.0.1:1/h",
            "webhooks": [{"events": ["jira:issue_updated"], "jqlFilter": "project = FIN"}],
        },
    ).json()["webhookRegistrationResult"][0]["createdWebhookId"]
    listed = requests.get(f"{jira.base}/webhook", headers=jira.headers, timeout=10).json()
    refreshed = requests.put(
        f"{jira.base}/webhook/refresh", json={"webhookIds": [wid]}, headers=jira.headers, timeout=10
    ).json()
    stamp = datetime.now(UTC) + timedelta(days=30)
    for value in (listed["values"][0]["expirationDate"], refreshed["expirationDate"]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000", value), value
        assert abs((datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z") - stamp).total_seconds()) < 120
    strict, examples = get_validator(), get_validator(example_forms=True)
    with pytest.raises(SpecViolation, match="expirationDate"):
        strict.validate_response("GET", "/rest/api/3/webhook", 200, listed)
    examples.validate_response("GET", "/rest/api/3/webhook", 200, listed)
    examples.validate_response("PUT", "/rest/api/3/webhook/refresh", 200, refreshed)
    assert sandbox.spec_violations() == 0  # the sandbox's own check knows the setting
    sandbox.control("POST", "/_sandbox/jira/options", {"expiration_date_format": "epoch_ms"})
    assert isinstance(jira.call("GET", "webhook").json()["values"][0]["expirationDate"], int)
    bad = requests.post(
        f"{sandbox.url}/_sandbox/jira/options", json={"expiration_date_format": "x"}, timeout=10
    )
    assert bad.status_code == 400


def test_basic_auth_cannot_register_webhooks(sandbox: Any) -> None:
    c = sandbox.creds
    resp = requests.post(
        f"{sandbox.url}/site/rest/api/3/webhook",
        auth=(c["jira_email"], c["jira_api_token"]),
        json={"url": "http://x", "webhooks": []},
        timeout=10,
    )
    assert resp.status_code == 403
    assert "OAuth 2.0" in resp.json()["errorMessages"][0]


def test_sandbox_self_validation_reports_no_violation(jira: Jira, sandbox: Any) -> None:
    sandbox.control("POST", "/_sandbox/jira/options", {"validate": True})
    a = jira.create(1, description=ADF, labels=["x"])
    for method, path, body in [
        ("GET", "field", None),
        ("GET", "myself", None),
        ("GET", "status", None),
        ("GET", "project/FIN", None),
        ("GET", "project/FIN/statuses", None),
        ("GET", "issuetype/project?projectId=10000", None),
        ("GET", f"issue/{a['key']}", None),
        ("GET", f"issue/{a['key']}/transitions", None),
        (
            "POST",
            "search/jql",
            {"jql": "project = FIN", "fields": ["*all"], "reconcileIssues": [int(a["id"])]},
        ),
        ("GET", "user/search?query=a", None),
        ("GET", "webhook", None),
    ]:
        assert jira.call(method, path, body).status_code == 200, path
    # A request body outside the spec is refused like a schema error would be.
    bad = requests.post(f"{jira.base}/webhook", headers=jira.headers, json={"url": "x"}, timeout=10)
    assert bad.status_code == 400
    assert sandbox.stats()["events"].get("jira.spec_violations", 0) == 0


# -- array query parameters (issue 10.4) ---------------------------------------------------------------------


def test_array_query_params_repeated_and_comma_separated(jira: Jira, sandbox: Any) -> None:
    """Jira reads an array query parameter repeated (OpenAPI form style, ``ids=1&ids=2``)
    or comma-separated (spec: "This parameter accepts a comma-separated list"). A widely used client repeats
    it, and found 1 of the 3 issues it had just created when only one value was read."""
    sandbox.options(search_lag_s=60)  # nothing is searchable unless reconciled
    made = [jira.create(n, labels=[f"l{n}"]) for n in range(3)]
    ids = [m["id"] for m in made]

    def search(params: list[tuple[str, str]]) -> dict[str, Any]:
        resp = jira.call("GET", "search/jql", params=[("jql", "project = FIN ORDER BY key ASC"), *params])
        assert resp.status_code == 200, resp.text
        return resp.json()

    repeated = search([*(("reconcileIssues", i) for i in ids), ("fields", "summary"), ("fields", "labels")])
    assert [i["id"] for i in repeated["issues"]] == ids
    assert all(set(i["fields"]) == {"summary", "labels"} for i in repeated["issues"])
    mixed = search(
        [("reconcileIssues", f"{ids[0]},{ids[1]}"), ("reconcileIssues", ids[2]), ("fields", "summary,labels")]
    )
    assert mixed["issues"] == repeated["issues"]
    assert search([("reconcileIssues", ids[1])])["issues"] == [
        {
            "expand": repeated["issues"][1]["expand"],
            "id": ids[1],
            "self": repeated["issues"][1]["self"],
            "key": made[1]["key"],
        }
    ]
    bad = jira.call("GET", "search/jql", params=[("jql", "project = FIN"), ("reconcileIssues", "ten")])
    assert bad.status_code == 400
    assert "reconcileIssues" in bad.json()["errorMessages"][0]

    one = jira.call("GET", f"issue/{made[0]['key']}", params=[("fields", "summary"), ("fields", "labels")])
    assert set(one.json()["fields"]) == {"summary", "labels"}
    comma = jira.call("GET", f"issue/{made[0]['key']}", params={"fields": "summary,labels"})
    assert comma.json()["fields"] == one.json()["fields"]

    users = [
        jira.call("GET", "user/search", params={"query": q}).json()[0]["accountId"]
        for q in ("al", "bo", "ca")
    ]
    assert len(set(users)) == 3
    rep = jira.call("GET", "user/bulk", params=[("accountId", u) for u in users]).json()
    csv = jira.call("GET", "user/bulk", params={"accountId": ",".join(users)}).json()
    assert [u["accountId"] for u in rep["values"]] == [u["accountId"] for u in csv["values"]] == users


# -- text search (issue 10.5) --------------------------------------------------------------------------------


def test_contains_is_a_tokenised_text_match_not_a_substring(jira: Jira, sandbox: Any) -> None:
    """``~`` per https://support.atlassian.com/jira-software-cloud/docs/search-syntax-for-text-fields/ (terms
    AND-joined, phrases in escaped quotes, trailing ``*``) and the Jira Core Cloud variant of that page
    (``-``/NOT/OR operators): words of the indexed value, never a substring."""
    sandbox.options(search_lag_s=0)
    g1 = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
    g2 = "3f2504e0-4f89-11d3-9a0c-0305e82c3302"  # shares four of five words with g1
    values = [g1, g2, "Jira Software", "Jira is the best software", "alpha-beta gamma"]
    made = {v: jira.create(n, **{jira.fields["BC Record Id"]: v}) for n, v in enumerate(values)}
    cf = jira.fields["BC Record Id"].split("_")[1]

    def found(text: str) -> set[str]:
        jql = f"project = FIN AND cf[{cf}] ~ " + '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        resp = jira.search(jql, fields=["key"], maxResults=100)
        assert resp.status_code == 200, resp.text
        keys = {i["key"] for i in resp.json()["issues"]}
        return {v for v, m in made.items() if m["key"] in keys}

    assert found(f'"{g1}"') == {g1}  # the phrase of the whole GUID: only that issue
    assert found(f'"{g1[:23]}"') == {g1, g2}  # a phrase of its first words matches both: compare exactly
    assert found(g1[:6]) == set()  # inside a word: a substring test would have found g1 and g2
    assert found("ware") == set()
    assert found("Jira Software") == {"Jira Software", "Jira is the best software"}  # AND, any order
    assert found('"Jira Software"') == {"Jira Software"}
    assert found('"software jira"') == set()  # a phrase keeps its order
    assert found("soft*") == {"Jira Software", "Jira is the best software"}
    assert found("Jira -best") == {"Jira Software"}
    assert found("Jira NOT best") == {"Jira Software"}
    assert found("best OR gamma") == {"Jira is the best software", "alpha-beta gamma"}
    assert found("beta-alpha") == {"alpha-beta gamma"}  # in-word hyphen: two words, both required
    assert found("alpha beta delta") == set()
    not_contains = jira.search(f'project = FIN AND cf[{cf}] !~ "jira"', fields=["key"]).json()["issues"]
    assert {i["key"] for i in not_contains} == {made[v]["key"] for v in (g1, g2, "alpha-beta gamma")}
    empty = jira.search(f'project = FIN AND cf[{cf}] ~ "*"')
    assert empty.status_code == 400
    assert empty.json()["errorMessages"]


# -- screens, field types, searchers (issue 10.2) ------------------------------------------------------------

OFF_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."


def test_createmeta_pages_issue_types_and_create_screen_fields(jira: Jira) -> None:
    """Spec ``getCreateIssueMetaIssueTypes`` / ``getCreateIssueMetaIssueTypeId``: pages with startAt,
    maxResults (default 50, at most 200) and total; the fields are those of the create screen."""
    first = jira.call("GET", "issue/createmeta/FIN/issuetypes", params={"maxResults": 2}).json()
    rest = jira.call("GET", "issue/createmeta/FIN/issuetypes", params={"startAt": 2}).json()
    assert first["total"] == rest["total"] == 4
    assert len(first["issueTypes"]) == 2
    names = [t["name"] for t in first["issueTypes"] + rest["issueTypes"]]
    assert names == ["Task", "Invoice", "Vendor", "Purchase Order"]
    too_big = jira.call("GET", "issue/createmeta/FIN/issuetypes", params={"maxResults": 201})
    assert too_big.status_code == 400
    assert jira.call("GET", "issue/createmeta/NOPE/issuetypes").status_code == 400
    invoice = next(t["id"] for t in first["issueTypes"] + rest["issueTypes"] if t["name"] == "Invoice")
    whole = jira.call("GET", f"issue/createmeta/FIN/issuetypes/{invoice}").json()
    ids = [f["fieldId"] for f in whole["fields"]]
    assert whole["total"] == len(ids)
    assert ids[:2] == ["issuetype", "project"]
    assert {"summary", "description", "labels", "assignee", *jira.fields_custom()} <= set(ids)
    assert next(f for f in whole["fields"] if f["fieldId"] == "summary")["required"] is True
    paged: list[str] = []
    while len(paged) < whole["total"]:
        page = jira.call(
            "GET",
            f"issue/createmeta/FIN/issuetypes/{invoice}",
            params={"startAt": len(paged), "maxResults": 3},
        ).json()
        assert page["maxResults"] == 3
        assert page["fields"]
        paged += [f["fieldId"] for f in page["fields"]]
    assert paged == ids
    assert jira.call("GET", "issue/createmeta/FIN/issuetypes/99999").status_code == 400


def test_field_off_a_screen_is_refused_like_jira(jira: Jira, sandbox: Any) -> None:
    """Spec createIssue: the settable fields "are the same fields that appear on the issue's create screen";
    editIssue: 400 for fields "not associated with the issue's edit screen". Jira's message for both."""
    vendor_f = jira.fields["BC Vendor"]
    sandbox.control(
        "POST",
        "/_sandbox/jira/screen",
        {"issue_type": "Invoice", "screen": "create", "remove": ["BC Vendor"]},
    )
    meta = jira.call("GET", "issue/createmeta/FIN/issuetypes/10002").json()
    assert vendor_f not in {f["fieldId"] for f in meta["fields"]}
    base = {"project": {"key": "FIN"}, "issuetype": {"name": "Invoice"}, "summary": "s", vendor_f: "Acme"}
    refused = jira.call("POST", "issue", {"fields": base})
    assert refused.status_code == 400
    assert refused.json()["errors"] == {vendor_f: OFF_SCREEN.format(vendor_f)}
    bulk = jira.call("POST", "issue/bulk", {"issueUpdates": [{"fields": base}]})
    assert bulk.status_code == 400
    assert bulk.json()["errors"][0]["elementErrors"]["errors"] == {vendor_f: OFF_SCREEN.format(vendor_f)}
    other_type = jira.call("POST", "issue", {"fields": {**base, "issuetype": {"name": "Vendor"}}})
    assert other_type.status_code == 201  # screens are per issue type
    made = jira.create(1)  # without the field: fine; and the edit screen still has it
    assert jira.call("PUT", f"issue/{made['key']}", {"fields": {vendor_f: "Acme"}}).status_code == 204
    sandbox.control(
        "POST", "/_sandbox/jira/screen", {"issue_type": "Invoice", "screen": "edit", "remove": ["labels"]}
    )
    edit = jira.call("PUT", f"issue/{made['key']}", {"update": {"labels": [{"add": "x"}]}})
    assert edit.status_code == 400
    assert edit.json()["errors"] == {"labels": OFF_SCREEN.format("labels")}
    editmeta = jira.call("GET", f"issue/{made['key']}/editmeta").json()["fields"]  # spec getEditIssueMeta
    assert "labels" not in editmeta
    assert {vendor_f, "summary", "description"} <= set(editmeta)
    sandbox.control(
        "POST", "/_sandbox/jira/screen", {"issue_type": "Invoice", "add": ["BC Vendor", "labels"]}
    )
    assert jira.call("POST", "issue", {"fields": base}).status_code == 201


def test_field_types_and_searchers_like_jira(jira: Jira, sandbox: Any) -> None:
    """Spec createIssue: textarea custom fields "take Atlassian Document Format content", textfield a string;
    spec POST /field: "If no searcher is provided, the field isn't searchable"."""
    sandbox.options(search_lag_s=0)
    vendor_f = jira.fields["BC Vendor"]
    changed = sandbox.control("POST", "/_sandbox/jira/field", {"field": "BC Vendor", "type": "textarea"})
    assert changed["schema"]["custom"] == "com.atlassian.jira.plugin.system.customfieldtypes:textarea"
    listed = next(f for f in jira.call("GET", "field").json() if f["id"] == vendor_f)
    assert listed["schema"] == changed["schema"]
    assert listed["searchable"] is True
    plain = jira.call(
        "POST",
        "issue",
        {
            "fields": {
                "project": {"key": "FIN"},
                "issuetype": {"name": "Invoice"},
                "summary": "s",
                vendor_f: "x",
            }
        },
    )
    assert plain.status_code == 400
    assert "Atlassian Document" in plain.json()["errors"][vendor_f]
    adf_doc = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "Acme Supplies"}]}],
    }
    made = jira.create(1, **{vendor_f: adf_doc})
    hit = jira.search('project = FIN AND "BC Vendor" ~ "acme"', fields=["key"]).json()["issues"]
    assert [i["key"] for i in hit] == [made["key"]]  # a textarea is searched by its text

    status_f = jira.fields["BC Status"]
    cf = status_f.split("_")[1]
    assert jira.search(f'project = FIN AND cf[{cf}] ~ "open"').status_code == 200
    sandbox.control("POST", "/_sandbox/jira/field", {"field": status_f, "searcher": None})
    listed = next(f for f in jira.call("GET", "field").json() if f["id"] == status_f)
    assert listed["searchable"] is False
    assert listed["clauseNames"] == []
    for jql in (f'project = FIN AND cf[{cf}] ~ "open"', 'project = FIN AND "BC Status" ~ "open"'):
        resp = jira.search(jql)
        assert resp.status_code == 400, jql
        assert "does not exist" in resp.json()["errorMessages"][0], jql
    sandbox.control("POST", "/_sandbox/jira/field", {"field": status_f, "searcher": "textsearcher"})
    assert jira.search(f'project = FIN AND cf[{cf}] ~ "open"').status_code == 200


def test_issue_link_types_and_duplicate_links_on_both_issues(jira: Jira) -> None:
    types = jira.call("GET", "issueLinkType").json()["issueLinkTypes"]
    dup = next(t for t in types if t["name"] == "Duplicate")
    assert (dup["inward"], dup["outward"]) == ("is duplicated by", "duplicates")
    original, copy = jira.create(1), jira.create(2)
    body = {
        "type": {"name": "Duplicate"},
        "inwardIssue": {"key": copy["key"]},
        "outwardIssue": {"id": original["id"]},
    }
    resp = jira.call("POST", "issueLink", body)
    assert resp.status_code == 201
    assert not resp.content
    # the same link again: answered as created, not stored twice (spec of POST /issueLink)
    assert jira.call("POST", "issueLink", body).status_code == 201
    c_links = jira.call("GET", f"issue/{copy['key']}?fields=issuelinks").json()["fields"]["issuelinks"]
    o_links = jira.call("GET", f"issue/{original['key']}?fields=issuelinks").json()["fields"]["issuelinks"]
    assert len(c_links) == len(o_links) == 1
    # the copy reads "duplicates <original>", the original "is duplicated by <copy>"
    assert c_links[0]["outwardIssue"]["key"] == original["key"]
    assert "inwardIssue" not in c_links[0]
    assert o_links[0]["inwardIssue"]["key"] == copy["key"]
    assert o_links[0]["type"]["name"] == "Duplicate"
    link = jira.call("GET", f"issueLink/{c_links[0]['id']}").json()
    assert (link["inwardIssue"]["key"], link["outwardIssue"]["key"]) == (copy["key"], original["key"])
    bad_type = dict(body, type={"name": "Nope"})
    assert jira.call("POST", "issueLink", bad_type).status_code == 404
    missing = dict(body, outwardIssue={"key": "FIN-9999"})
    assert jira.call("POST", "issueLink", missing).status_code == 404
    assert jira.call("GET", "issueLink/424242").status_code == 404


def test_comment_list_pages_and_orders(jira: Jira) -> None:
    a = jira.create(1)
    for i in range(5):
        doc = {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": f"c{i}"}]}],
        }
        assert jira.call("POST", f"issue/{a['key']}/comment", {"body": doc}).status_code == 201

    def texts(page: dict[str, Any]) -> list[str]:
        return [c["body"]["content"][0]["content"][0]["text"] for c in page["comments"]]

    first = jira.call("GET", f"issue/{a['key']}/comment?maxResults=2").json()
    assert texts(first) == ["c0", "c1"]
    assert first["total"] == 5
    assert first["maxResults"] == 2
    newest = jira.call("GET", f"issue/{a['key']}/comment?orderBy=-created&maxResults=2&startAt=1").json()
    assert texts(newest) == ["c3", "c2"]
    assert newest["startAt"] == 1
    assert jira.call("GET", f"issue/{a['key']}/comment?orderBy=summary").status_code == 400


def test_status_category_changed_date_moves_only_between_categories(jira: Jira, sandbox: Any) -> None:
    a = jira.create(1)

    def changed() -> str:
        return jira.call("GET", f"issue/{a['key']}?fields=statuscategorychangedate").json()["fields"][
            "statuscategorychangedate"
        ]

    created = changed()
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 60})
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": a["key"], "to": "Done"})
    done_at = changed()
    assert done_at > created
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 60})
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": a["key"], "to": "Rejected"})
    assert changed() == done_at  # Done -> Rejected stays in the done category
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 60})
    sandbox.control("POST", "/_sandbox/jira/transition", {"issue": a["key"], "to": "To Do"})
    assert changed() > done_at


def test_issue_linking_disabled_answers_404(jira: Jira, sandbox: Any) -> None:
    a, b = jira.create(1), jira.create(2)
    sandbox.control("POST", "/_sandbox/jira/options", {"issue_linking": False})
    try:
        assert jira.call("GET", "issueLinkType").status_code == 404
        body = {
            "type": {"name": "Duplicate"},
            "inwardIssue": {"key": b["key"]},
            "outwardIssue": {"key": a["key"]},
        }
        assert jira.call("POST", "issueLink", body).status_code == 404
    finally:
        sandbox.control("POST", "/_sandbox/jira/options", {"issue_linking": True})
    assert jira.call("GET", "issueLinkType").status_code == 200

"""The Atlassian OAuth and Jira REST v3 sandbox over real HTTP: rotation, search lag, JQL, bulk limits, ADF,
users, signed webhook deliveries with retries and expiry, and spec-valid answers."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bc_jira_sandbox.core import Options, Sandbox
from bc_jira_sandbox.jira import parse_jql, validate_adf
from bc_jira_sandbox.openapi import get_validator

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
    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == c["redirect_uri"] and q["state"] == "s-42"
    body = {
        "grant_type": "authorization_code",
        "client_id": c["atlassian_client_id"],
        "client_secret": c["atlassian_client_secret"],
        "code": q["code"],
        "redirect_uri": c["redirect_uri"],
    }
    tok = requests.post(f"{sandbox.url}/oauth/token", json=body, timeout=10)
    assert tok.status_code == 200 and tok.json()["refresh_token"] and tok.json()["expires_in"] == 3600
    again = requests.post(f"{sandbox.url}/oauth/token", json=body, timeout=10)  # codes are single use
    assert again.status_code == 403 and again.json()["error"] == "invalid_grant"
    res = requests.get(
        f"{sandbox.url}/oauth/token/accessible-resources",
        timeout=10,
        headers={"Authorization": f"Bearer {tok.json()['access_token']}"},
    )
    assert res.json()[0]["id"] == c["cloud_id"] and res.json()[0]["url"] == c["site_url"]
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
    assert late.status_code == 403 and late.json()["error"] == "invalid_grant"
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
    assert wrong.status_code == 401 and wrong.json()["error"] == "access_denied"


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
    assert good.status_code == 200 and good.json()["emailAddress"] == c["jira_email"]
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
    assert (
        field["schema"]["custom"].endswith(":float")
        and f"cf[{field['schema']['customId']}]" in field["clauseNames"]
    )


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
        assert resp.status_code == 400 and resp.json()["errorMessages"], bad


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
    assert len(body["issues"]) == 2 and [e["failedElementNumber"] for e in body["errors"]] == [1, 3]
    assert "summary" in body["errors"][0]["elementErrors"]["errors"]
    all_bad = jira.call("POST", "issue/bulk", {"issueUpdates": [missing]})
    assert all_bad.status_code == 400 and all_bad.json()["issues"] == []
    assert jira.call("POST", "issue/bulk", {"issueUpdates": [ok] * 51}).status_code == 400
    unknown = jira.call("POST", "issue", {"fields": {**ok["fields"], "customfield_1": "x"}})
    assert unknown.status_code == 400 and "customfield_1" in unknown.json()["errors"]


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
    assert sorted(ids) != ids and len(set(ids)) == 12  # all created, answered out of order
    sandbox.options(search_lag_s=60)  # bulkfetch reads the issues themselves, not the lagging index
    asked = [i["id"] for i in reversed(created)] + ["99999999"]  # an unknown id is left out, not an error
    got = jira.call("POST", "issue/bulkfetch", {"issueIdsOrKeys": asked, "fields": [rid]})
    assert got.status_code == 200
    body = got.json()
    assert [int(i["id"]) for i in body["issues"]] == sorted(ids) and body["issueErrors"] == []
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
    assert good.status_code == 201 and good.json()["body"] == ADF
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
    assert everyone and all("accountId" in u for u in everyone)
    bob = jira.call("GET", "user/search", params={"query": "bob"}).json()
    assert len(bob) == 1 and "emailAddress" not in bob[0]
    assert jira.call("GET", "user/search", params={"query": "bob.buyer@"}).json() == []  # hidden: no partial
    assert len(jira.call("GET", "user/search", params={"query": "bob.buyer@example.com"}).json()) == 1
    ids = [u["accountId"] for u in everyone]
    page = jira.call("GET", "user/bulk", params=[("accountId", i) for i in ids] + [("maxResults", 2)]).json()
    assert len(page["values"]) == 2 and page["isLast"] is (len(ids) <= 2) and page["total"] == len(ids)
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
            def do_POST(self) -> None:  # noqa: N802
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
    assert "createdWebhookId" in res[0] and res[1]["errors"] == ["The clause updated is unsupported"]
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
    assert raw1 == raw2 and h1["x-atlassian-webhook-identifier"] == h2["x-atlassian-webhook-identifier"]
    assert "x-atlassian-webhook-retry" not in h1 and h2["x-atlassian-webhook-retry"] == "1"
    expected = hmac.new(sandbox.creds["webhook_secret"].encode(), raw2, hashlib.sha256).hexdigest()
    assert h2["x-hub-signature"] == f"sha256={expected}"
    payload = json.loads(raw2)
    assert payload["webhookEvent"] == "jira:issue_updated" and payload["matchedWebhookIds"] == [wid]
    item = payload["changelog"]["items"][0]
    assert (item["field"], item["fieldId"], item["fromString"], item["toString"]) == (
        "status",
        "status",
        "To Do",
        "Done",
    )
    assert payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "done"
    assert payload["issue"]["key"] == a["key"] and payload["user"]["displayName"] == "Alice Approver"
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


def test_webhook_expiry_refresh_list_delete(jira: Jira, sandbox: Any, receiver: Receiver) -> None:
    wid = jira.call(
        "POST",
        "webhook",
        {"url": receiver.url, "webhooks": [{"events": ["jira:issue_updated"], "jqlFilter": "project = FIN"}]},
    ).json()["webhookRegistrationResult"][0]["createdWebhookId"]
    listed = jira.call("GET", "webhook").json()
    assert listed["total"] == 1 and listed["values"][0]["url"] == receiver.url
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


def test_basic_auth_cannot_register_webhooks(sandbox: Any) -> None:
    c = sandbox.creds
    resp = requests.post(
        f"{sandbox.url}/site/rest/api/3/webhook",
        auth=(c["jira_email"], c["jira_api_token"]),
        json={"url": "http://x", "webhooks": []},
        timeout=10,
    )
    assert resp.status_code == 403 and "OAuth 2.0" in resp.json()["errorMessages"][0]


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

"""JiraCloudHook: narrow unit tests with requests-mock, then the real flows against the sandbox over HTTP.

Every Jira request body the hook sends and every Jira response it receives is validated against the official
OpenAPI document (fixture ``spec_session``), in the unit tests and against the sandbox alike.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bc_jira.hooks.jira import JiraCloudHook, expiration_ms
from bc_jira.hooks.jira_connection import JiraSettings, choose_test_grant
from bc_jira.http import AuthError, ClientError, RetryPolicy
from bc_jira.store import TokenRow
from bc_jira.token_cipher import get_cipher
from bc_jira.tokens import JiraTokenProvider
from bc_jira_sandbox.openapi import SpecViolation, get_validator
from tests.support.token_store import FakeStore

if TYPE_CHECKING:
    from collections.abc import Iterator

SITE = "https://acme.atlassian.net"
API = "https://api.example.test"
AUTH = "https://auth.example.test"
CLOUD = "11111111-2222-4333-8444-555555555555"
BASE = f"{API}/ex/jira/{CLOUD}/rest/api/3"
ADF = {
    "type": "doc",
    "version": 1,
    "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}],
}


class SpecCheck:
    """A ``requests`` response hook validating Jira request and response bodies against the OpenAPI spec."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.checked: list[str] = []

    def __call__(self, resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        req = resp.request
        path = urlsplit(req.url or "").path
        if "/rest/api/3/" not in path or resp.status_code >= 500 or resp.status_code == 429:
            return  # gateway/throttling answers are not described per operation
        v = get_validator()
        try:
            raw = req.body
            if raw:
                v.validate_request(req.method or "GET", path, json.loads(raw))
            body = resp.json() if resp.content else None
            v.validate_response(req.method or "GET", path, resp.status_code, body)
            self.checked.append(f"{req.method} {path} {resp.status_code}")
        except (SpecViolation, KeyError, ValueError) as exc:
            self.violations.append(f"{req.method} {path} -> {resp.status_code}: {exc}")


@pytest.fixture
def spec_session() -> Iterator[requests.Session]:
    check = SpecCheck()
    session = requests.Session()
    session.hooks["response"].append(check)
    session.spec_check = check  # type: ignore[attr-defined]
    yield session
    assert not check.violations, "\n".join(check.violations)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> Iterator[None]:
    JiraTokenProvider._process_cache.clear()
    yield
    JiraTokenProvider._process_cache.clear()


def _retry() -> RetryPolicy:
    return RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0)


def oauth_hook(session: requests.Session, store: Any = None, **over: Any) -> JiraCloudHook:
    settings = JiraSettings(
        auth="oauth2",
        site_url=SITE,
        client_id="cid",
        client_secret="csec",
        auth_url=AUTH,
        api_url=API,
        refresh_token="rt-boot",
        **over,
    )
    return JiraCloudHook(
        settings=settings, store=store or FakeStore(), session=session, retry=_retry(), sleep=lambda s: None
    )


def basic_hook(
    session: requests.Session, site: str = SITE, email: str = "a@example.com", api_token: str = "tok"
) -> JiraCloudHook:
    settings = JiraSettings(auth="basic", site_url=site, email=email, api_token=api_token)
    return JiraCloudHook(settings=settings, session=session, retry=_retry(), sleep=lambda s: None)


def _mock_oauth(m: Any) -> Any:
    tokens = iter(range(1, 100))

    def answer(req: Any, ctx: Any) -> dict[str, Any]:
        n = next(tokens)
        return {
            "access_token": f"at-{n}",
            "refresh_token": f"rt-{n}",
            "expires_in": 3600,
            "token_type": "Bearer",
        }

    m.get(
        f"{API}/oauth/token/accessible-resources",
        json=[
            {"id": "other", "url": "https://other.atlassian.net", "name": "o", "scopes": []},
            {"id": CLOUD, "url": SITE, "name": "acme", "scopes": []},
        ],
    )
    return m.post(f"{AUTH}/oauth/token", json=answer)


# -- unit: requests-mock -------------------------------------------------------------------------------------


def test_no_network_in_init() -> None:
    hook = JiraCloudHook("does_not_exist")  # neither the connection nor the network is touched
    assert hook.jira_conn_id == "does_not_exist"
    assert JiraCloudHook.conn_type == "jira_cloud"
    assert JiraCloudHook.default_conn_name == "jira_default"


def test_oauth_base_url_uses_cloud_id_of_site(requests_mock: Any, spec_session: requests.Session) -> None:
    _mock_oauth(requests_mock)
    store = FakeStore()
    hook = oauth_hook(spec_session, store)
    assert hook.base_url == BASE
    assert store.rows["jira:jira_default"].meta["cloud_id"] == CLOUD
    # A new hook (another task) takes the cloudId from the store without calling accessible-resources.
    calls = requests_mock.call_count
    assert oauth_hook(spec_session, store).base_url == BASE
    assert requests_mock.call_count == calls


def test_search_follows_next_page_token(requests_mock: Any, spec_session: requests.Session) -> None:
    pages = {
        None: {"issues": [{"id": "1", "key": "FIN-1"}], "nextPageToken": "p2", "isLast": False},
        "p2": {"issues": [{"id": "2", "key": "FIN-2"}], "nextPageToken": "p3", "isLast": False},
        "p3": {"issues": [{"id": "3", "key": "FIN-3"}], "isLast": True},
    }
    m = requests_mock.post(
        f"{SITE}/rest/api/3/search/jql", json=lambda req, ctx: pages[req.json().get("nextPageToken")]
    )
    hook = basic_hook(spec_session)
    got = hook.search_jql(
        'project = FIN AND "BC Record Id" ~ "x"',
        ["key", "customfield_10050"],
        reconcile_issues=["10001", 10002],
        max_results=1,
    )
    assert next(got)["key"] == "FIN-1"
    assert m.call_count == 1
    assert [i["key"] for i in got] == ["FIN-2", "FIN-3"]
    bodies = [r.json() for r in m.request_history]
    assert [b.get("nextPageToken") for b in bodies] == [None, "p2", "p3"]
    assert all(
        b["reconcileIssues"] == [10001, 10002] and b["fields"] == ["key", "customfield_10050"] for b in bodies
    )
    with pytest.raises(ValueError, match="at most 50"):
        list(hook.search_jql("project = FIN", reconcile_issues=range(51)))


def test_search_is_retried_after_5xx(requests_mock: Any, spec_session: requests.Session) -> None:
    m = requests_mock.post(
        f"{SITE}/rest/api/3/search/jql",
        [{"status_code": 502, "text": "bad gateway"}, {"json": {"issues": [], "isLast": True}}],
    )
    assert basic_hook(spec_session).search_all("project = FIN") == []
    assert m.call_count == 2


def test_bulk_create_reports_failed_element_by_input_index(
    requests_mock: Any, spec_session: requests.Session
) -> None:
    def answer(req: Any, ctx: Any) -> dict[str, Any]:
        updates = req.json()["issueUpdates"]
        ctx.status_code = 201
        created, errors = [], []
        for i, u in enumerate(updates):
            if "summary" not in u["fields"]:
                errors.append(
                    {
                        "status": 400,
                        "failedElementNumber": i,
                        "elementErrors": {
                            "errorMessages": [],
                            "errors": {"summary": "You must specify a summary of the issue."},
                        },
                    }
                )
            else:
                n = u["fields"]["n"]
                created.append({"id": str(10000 + n), "key": f"FIN-{n}", "self": f"{SITE}/x/{n}"})
        return {"issues": created, "errors": errors}

    m = requests_mock.post(f"{SITE}/rest/api/3/issue/bulk", json=answer)
    items = [{"fields": {"summary": f"s{n}", "n": n}} for n in range(120)]
    del items[57]["fields"]["summary"]  # second chunk, position 7
    result = basic_hook(spec_session).bulk_create_issues(items)
    assert m.call_count == 3
    assert [len(r.json()["issueUpdates"]) for r in m.request_history] == [50, 50, 20]
    assert [f.index for f in result.failed] == [57]
    assert result.failed[0].errors == {"summary": "You must specify a summary of the issue."}
    assert "#57 (400): summary: You must specify a summary" in str(result.failed[0])
    assert len(result.created) == 119
    assert dict(result.created)[58]["key"] == "FIN-58"  # created issues line up with their inputs
    assert dict(result.created)[56]["key"] == "FIN-56"
    assert not result.ok


def test_bulk_create_all_failed_400_is_reported_not_raised(
    requests_mock: Any, spec_session: requests.Session
) -> None:
    requests_mock.post(
        f"{SITE}/rest/api/3/issue/bulk",
        status_code=400,
        json={
            "issues": [],
            "errors": [
                {
                    "status": 400,
                    "failedElementNumber": 0,
                    "elementErrors": {"errorMessages": [], "errors": {"x": "bad"}},
                },
                {
                    "status": 400,
                    "failedElementNumber": 1,
                    "elementErrors": {"errorMessages": ["nope"], "errors": {}},
                },
            ],
        },
    )
    result = basic_hook(spec_session).bulk_create_issues([{"fields": {}}, {"fields": {}}])
    assert [(f.index, f.messages, f.errors) for f in result.failed] == [
        (0, [], {"x": "bad"}),
        (1, ["nope"], {}),
    ]
    assert result.created == []


def test_bulk_create_is_not_retried_after_lost_answer(
    requests_mock: Any, spec_session: requests.Session
) -> None:
    m = requests_mock.post(f"{SITE}/rest/api/3/issue/bulk", exc=requests.exceptions.ReadTimeout)
    with pytest.raises(Exception, match="not retried"):
        basic_hook(spec_session).bulk_create_issues([{"fields": {"summary": "x"}}])
    assert m.call_count == 1  # a retry could create duplicates


def test_401_refreshes_once_then_succeeds(requests_mock: Any, spec_session: requests.Session) -> None:
    token_calls = _mock_oauth(requests_mock)
    seen: list[str] = []

    def fields(req: Any, ctx: Any) -> Any:
        seen.append(req.headers["Authorization"])
        if len(seen) == 1:
            ctx.status_code = 401
            return {"code": 401, "message": "Unauthorized"}
        return [{"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string"}}]

    requests_mock.get(f"{BASE}/field", json=fields)
    hook = oauth_hook(spec_session)
    assert hook.get_fields()[0]["id"] == "summary"
    assert seen == ["Bearer at-1", "Bearer at-2"]
    assert token_calls.call_count == 2  # bootstrap + the one forced refresh
    assert token_calls.last_request.json()["refresh_token"] == "rt-1"  # the rotated token, not the bootstrap


def test_second_401_is_auth_error_without_secrets(requests_mock: Any, spec_session: requests.Session) -> None:
    token_calls = _mock_oauth(requests_mock)
    requests_mock.get(f"{BASE}/myself", status_code=401, json={"code": 401, "message": "Unauthorized"})
    with pytest.raises(AuthError) as err:
        oauth_hook(spec_session).myself()
    assert token_calls.call_count == 2  # exactly one forced refresh, no loop
    assert "at-" not in str(err.value)
    assert "rt-" not in str(err.value)
    assert "csec" not in str(err.value)


def test_edit_comment_transition_users_webhooks_requests(
    requests_mock: Any, spec_session: requests.Session
) -> None:
    b = f"{SITE}/rest/api/3"
    edit = requests_mock.put(f"{b}/issue/FIN-1", status_code=204)
    comment = requests_mock.post(
        f"{b}/issue/FIN-1/comment",
        status_code=201,
        json={"id": "1", "body": ADF, "created": "2026-01-01T00:00:00.000+0000"},
    )
    requests_mock.get(
        f"{b}/issue/FIN-1/transitions",
        json={
            "transitions": [
                {
                    "id": "31",
                    "name": "Approve",
                    "to": {"id": "10001", "name": "Done", "statusCategory": {"id": 3, "key": "done"}},
                }
            ]
        },
    )
    do = requests_mock.post(f"{b}/issue/FIN-1/transitions", status_code=204)
    bulk_users = requests_mock.get(
        f"{b}/user/bulk",
        json={"isLast": True, "startAt": 0, "maxResults": 2, "total": 2, "values": [{"accountId": "a"}]},
    )
    hook = basic_hook(spec_session)
    hook.edit_issue("FIN-1", {"summary": "s"}, update={"labels": [{"add": "x"}]}, notify_users=False)
    assert edit.last_request.qs == {"notifyusers": ["false"]}
    assert edit.last_request.json() == {"fields": {"summary": "s"}, "update": {"labels": [{"add": "x"}]}}
    assert hook.add_comment("FIN-1", ADF)["id"] == "1"
    assert comment.last_request.json() == {"body": ADF}
    assert hook.transition_to("FIN-1", "done") == "Approve"
    assert do.last_request.json() == {"transition": {"id": "31"}}
    assert hook.transition_to("FIN-1", "Nope") is None
    hook.bulk_get_users(["a", "b", "a"])
    assert parse_qs(urlsplit(bulk_users.last_request.url).query)["accountId"] == ["a", "b"]
    assert len(spec_session.spec_check.checked) >= 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1559392950000, 1559392950000),
        ("2019-06-01T12:42:30.000+0000", 1559392950000),  # the spec's example form
        ("2019-06-01T14:42:30.500+0200", 1559392950500),
        ("1559392950000", 1559392950000),
        (None, None),
        ("", None),
        ("soon", None),
    ],
)
def test_expiration_date_read_in_both_documented_forms(value: Any, ms: int | None) -> None:
    assert expiration_ms(value) == ms


def _row(name: str, refresh: str | None = "rt-enc", **meta: Any) -> TokenRow:
    return TokenRow(name, refresh, None, None, dict(meta))


def test_choose_test_grant_never_picks_an_unrelated_or_ambiguous_row() -> None:
    own = "jira:tmpid"
    ours = _row("jira:jira_default", site_url=SITE + "/", client_id="cid")
    assert choose_test_grant(own, [_row(own, site_url="x")], "cid", SITE, has_bootstrap=True) == (own, "")
    assert choose_test_grant(own, [ours], "cid", SITE, has_bootstrap=True) == ("jira:jira_default", "")
    legacy = _row("jira:jira_default", site_url=SITE)  # a row saved before client_id was recorded
    assert choose_test_grant(own, [legacy], "cid", SITE, has_bootstrap=True)[0] == "jira:jira_default"
    for rows in (
        [_row("jira:a", site_url=SITE, client_id="other-app")],  # another OAuth app
        [_row("jira:a", site_url="https://other.atlassian.net", client_id="cid")],  # another site
        [_row("jira:a", refresh=None, site_url=SITE, client_id="cid")],  # no grant in it
        [],
    ):
        name, why = choose_test_grant(own, rows, "cid", SITE, has_bootstrap=True)
        assert name is None
        assert "Not tested" in why
        assert "bc_jira_connect" in why
    name, why = choose_test_grant(own, [], "cid", SITE, has_bootstrap=False)
    assert name is None
    assert "/bc-jira/jira/oauth/start" in why
    two = [_row("jira:a", site_url=SITE, client_id="cid"), _row("jira:b", site_url=SITE, client_id="cid")]
    name, why = choose_test_grant(own, two, "cid", SITE, has_bootstrap=True)
    assert name is None
    assert "jira:a, jira:b" in why
    failed = _row(
        own, refresh=None, last_refresh_error={"code": "invalid_grant", "message": "Unknown token."}
    )
    name, why = choose_test_grant(own, [failed], "cid", SITE, has_bootstrap=True)
    assert name is None
    assert "invalid_grant" in why
    assert "consent again" in why


def test_refresh_webhooks_reads_the_iso_form(requests_mock: Any) -> None:
    _mock_oauth(requests_mock)
    requests_mock.put(f"{BASE}/webhook/refresh", json={"expirationDate": "2019-06-01T12:42:30.000+0000"})
    assert oauth_hook(requests.Session()).refresh_webhooks([10000]) == 1559392950000


def test_comment_pages_and_issue_links_requests(requests_mock: Any, spec_session: requests.Session) -> None:
    b = f"{SITE}/rest/api/3"

    def page(start: int, n: int) -> dict[str, Any]:
        return {
            "startAt": start,
            "maxResults": 2,
            "total": 3,
            "comments": [{"id": str(start + i), "body": ADF} for i in range(n)],
        }

    pages = requests_mock.get(f"{b}/issue/FIN-1/comment", [{"json": page(0, 2)}, {"json": page(2, 1)}])
    hook = basic_hook(spec_session)
    assert [c["id"] for c in hook.iter_comments("FIN-1", page_size=2)] == ["0", "1", "2"]
    assert [parse_qs(urlsplit(r.url).query) for r in pages.request_history] == [
        {"startAt": ["0"], "maxResults": ["2"], "orderBy": ["-created"]},
        {"startAt": ["2"], "maxResults": ["2"], "orderBy": ["-created"]},
    ]
    requests_mock.get(
        f"{b}/issueLinkType",
        json={
            "issueLinkTypes": [
                {"id": "10002", "name": "Duplicate", "inward": "is duplicated by", "outward": "duplicates"}
            ]
        },
    )
    assert hook.get_issue_link_types()[0]["name"] == "Duplicate"
    link = requests_mock.post(
        f"{b}/issueLink", [{"exc": requests.ConnectionError("reset")}, {"status_code": 201}]
    )
    hook.link_issues("Duplicate", "10009", "10002")  # retried after a lost answer: Jira stores a link once
    assert link.call_count == 2
    assert link.last_request.json() == {
        "type": {"name": "Duplicate"},
        "inwardIssue": {"id": "10009"},
        "outwardIssue": {"id": "10002"},
    }


# -- against the sandbox over real HTTP ----------------------------------------------------------------------


def sandbox_oauth_hook(
    sandbox: Any, session: requests.Session, store: Any = None, **over: Any
) -> JiraCloudHook:
    c = sandbox.creds
    kw: dict[str, Any] = {
        "auth": "oauth2",
        "site_url": c["site_url"],
        "client_id": c["atlassian_client_id"],
        "client_secret": c["atlassian_client_secret"],
        "auth_url": sandbox.url,
        "api_url": sandbox.url,
        "refresh_token": c["refresh_token"],
        "redirect_uri": c["redirect_uri"],
    }
    kw.update(over)
    return JiraCloudHook(
        settings=JiraSettings(**kw),
        store=store or FakeStore(),
        session=session,
        retry=_retry(),
        sleep=lambda s: None,
    )


def sandbox_basic_hook(sandbox: Any, session: requests.Session, **over: Any) -> JiraCloudHook:
    c = sandbox.creds
    kw = {
        "auth": "basic",
        "site_url": f"{sandbox.url}/site",
        "email": c["jira_email"],
        "api_token": c["jira_api_token"],
        **over,
    }
    return JiraCloudHook(settings=JiraSettings(**kw), session=session, retry=_retry(), sleep=lambda s: None)


def _refreshes(sandbox: Any) -> int:
    return sandbox.stats()["events"].get("atlassian.token.refresh", 0)


def seeded_store(sandbox: Any, name: str = "jira:jira_default") -> FakeStore:
    """A store holding the sandbox grant's refresh token with an expired access token (a task ran before)."""
    store = FakeStore()
    cipher = get_cipher()
    with store.token_lock(name) as txn:
        txn.save(
            cipher.encrypt(sandbox.creds["refresh_token"]), cipher.encrypt("expired"), time.time() - 10, {}
        )
    return store


def test_sandbox_oauth_end_to_end(sandbox: Any, spec_session: requests.Session) -> None:
    sandbox.control("POST", "/_sandbox/jira/options", {"validate": True})
    store = FakeStore()
    hook = sandbox_oauth_hook(sandbox, spec_session, store)
    before = _refreshes(sandbox)
    ok, msg = hook.test_connection()  # nothing stored yet: the one-time bootstrap token is not spent
    assert not ok
    assert "Not tested" in msg
    assert "bc_jira_connect" in msg
    assert "/bc-jira/jira/oauth/start" in msg
    assert _refreshes(sandbox) == before
    assert store.rows == {}
    hook = sandbox_oauth_hook(sandbox, spec_session, store)
    assert hook.myself()["accountId"]  # a task exchanges it, under the lock
    ok, msg = hook.test_connection()
    assert ok, msg
    assert sandbox.creds["cloud_id"] in msg
    assert "BC Connector" in msg
    ids = hook.field_ids_by_name()
    rec_f, amt_f = ids["BC Record Id"], ids["BC Amount"]
    assert rec_f.startswith("customfield_")
    assert amt_f.startswith("customfield_")
    assert {t["name"] for t in hook.get_project_issue_types("FIN")} >= {"Invoice", "Vendor", "Purchase Order"}
    statuses = {
        s["name"]: s["statusCategory"]["key"] for t in hook.get_project_statuses("FIN") for s in t["statuses"]
    }
    assert statuses["Done"] == "done"
    assert statuses["Rejected"] == "done"
    assert statuses["To Do"] == "new"

    def upd(n: int) -> dict[str, Any]:
        return {
            "fields": {
                "project": {"key": "FIN"},
                "issuetype": {"name": "Invoice"},
                "summary": f"Invoice {n}",
                rec_f: f"rec-{n}",
                amt_f: 100.5 + n,
                "description": ADF,
                "labels": ["bc-jira"],
            }
        }

    items = [upd(n) for n in range(53)]
    del items[51]["fields"]["summary"]
    result = hook.bulk_create_issues(items)
    assert [f.index for f in result.failed] == [51]
    assert "summary" in result.failed[0].errors
    assert len(result.created) == 52
    by_index = dict(result.created)
    jql = 'project = FIN AND "BC Record Id" in ("rec-0", "rec-52")'
    # Search lags writes: without reconcileIssues the new issues are not there yet; with it, they are.
    assert hook.search_all(jql) == []
    found = hook.search_all(jql, ["key", rec_f], reconcile_issues=[by_index[0]["id"], by_index[52]["id"]])
    assert sorted(i["fields"][rec_f] for i in found) == ["rec-0", "rec-52"]
    # bulk fetch reads the issues themselves (no search lag), in chunks (100 in production; 20 here)
    created_ids = [issue["id"] for _, issue in result.created]
    calls_before = sandbox.stats()["calls"].get("POST /ex/jira/{cloudId}/rest/api/3/issue/bulkfetch", 0)
    with mock.patch("bc_jira.hooks.jira.BULK_FETCH_MAX", 20):
        fetched = hook.bulk_fetch_issues(created_ids + ["99999999"], [rec_f])
    assert sorted(i["fields"][rec_f] for i in fetched) == sorted(f"rec-{n}" for n in range(53) if n != 51)
    calls_after = sandbox.stats()["calls"]["POST /ex/jira/{cloudId}/rest/api/3/issue/bulkfetch"]
    assert calls_after - calls_before == 3  # 53 ids: 20 + 20 + 13; the unknown id is left out
    key = by_index[0]["key"]
    hook.edit_issue(key, {"summary": "Invoice 0 (edited)"}, update={"labels": [{"add": "edited"}]})
    issue = hook.get_issue(key, ["summary", "labels", "status"])
    assert issue["fields"]["summary"] == "Invoice 0 (edited)"
    assert "edited" in issue["fields"]["labels"]
    assert hook.transition_to(key, "Done") == "Done"
    assert hook.get_issue(key, ["status"])["fields"]["status"]["statusCategory"]["key"] == "done"
    hook.add_comment(key, ADF)
    with pytest.raises(ClientError) as err:
        hook.add_comment(key, {"type": "doc", "version": 1, "content": [{"type": "text", "text": "bare"}]})
    assert err.value.status == 400
    # Paging over the sandbox with small pages.
    time.sleep(1.1)  # search lag in tests is 1 s
    keys = [i["key"] for i in hook.search_jql("project = FIN ORDER BY key ASC", ["key"], max_results=7)]
    assert len(keys) == 52
    assert len(set(keys)) == 52
    users = hook.search_users("a")
    hidden = hook.search_users("bob")
    assert hidden
    assert "emailAddress" not in hidden[0]
    assert {u["accountId"] for u in hook.bulk_get_users([u["accountId"] for u in users])} == {
        u["accountId"] for u in users
    }
    # Webhooks: register (one bad JQL reported per entry), list, refresh, delete.
    res = hook.register_webhooks(
        "http://127.0.0.1:9/bc-jira/jira/webhook",
        [
            {"events": ["jira:issue_updated"], "jqlFilter": "project = FIN", "fieldIdsFilter": ["status"]},
            {"events": ["jira:issue_updated"], "jqlFilter": "summary ~ x"},
        ],
    )
    assert "createdWebhookId" in res[0]
    assert res[1]["errors"]
    wid = res[0]["createdWebhookId"]
    listed = hook.list_webhooks()
    assert [w["id"] for w in listed] == [wid]
    assert hook.refresh_webhooks([wid]) >= listed[0]["expirationDate"]
    hook.delete_webhooks([wid])
    assert hook.list_webhooks() == []
    assert sandbox.stats()["events"].get("jira.spec_violations", 0) == 0
    assert len(spec_session.spec_check.checked) > 20  # type: ignore[attr-defined]


def test_sandbox_refresh_rotation(sandbox: Any, spec_session: requests.Session) -> None:
    store = FakeStore()
    hook = sandbox_oauth_hook(sandbox, spec_session, store)
    before = _refreshes(sandbox)
    hook.myself()
    first_rt = store.rows[hook.token_name].refresh_token_enc
    assert _refreshes(sandbox) == before + 1
    for _ in range(3):
        hook.myself()
    assert _refreshes(sandbox) == before + 1  # cached access token reused
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})  # the access token expires
    JiraTokenProvider._process_cache.clear()
    hook2 = sandbox_oauth_hook(sandbox, spec_session, store)
    hook2.myself()
    assert _refreshes(sandbox) == before + 2
    assert store.rows[hook.token_name].refresh_token_enc != first_rt  # the rotated token was saved
    # The connection's bootstrap token was rotated away long ago. Testing the connection from elsewhere
    # (another store, another id) does not spend it...
    before_test = _refreshes(sandbox)
    ok, msg = sandbox_oauth_hook(sandbox, spec_session, FakeStore()).test_connection()
    assert not ok
    assert "Not tested" in msg
    assert _refreshes(sandbox) == before_test
    # ...but a process that does reuse it (a second deployment with its own store) revokes the grant.
    with pytest.raises(AuthError) as err:
        sandbox_oauth_hook(sandbox, spec_session, FakeStore()).myself()
    assert "revoked" in str(err.value)
    assert "consent again" in str(err.value)
    JiraTokenProvider._process_cache.clear()
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})
    ok, msg = sandbox_oauth_hook(sandbox, spec_session, store).test_connection()
    assert not ok
    assert "invalid_grant" in msg
    assert store.rows[hook.token_name].meta["last_refresh_error"]["code"] == "invalid_grant"  # health sees it


def test_sandbox_basic_auth(sandbox: Any, spec_session: requests.Session) -> None:
    hook = sandbox_basic_hook(sandbox, spec_session)
    ok, msg = hook.test_connection()
    assert ok, msg
    assert "basic auth" in msg, msg
    created = hook.create_issue({"project": {"key": "FIN"}, "issuetype": {"name": "Vendor"}, "summary": "V1"})
    assert created["key"].startswith("FIN-")
    assert hook.get_transitions(created["key"])
    assert hook.base_url == f"{sandbox.url}/site/rest/api/3"
    with pytest.raises(AuthError) as err:
        hook.register_webhooks("http://x", [{"events": ["jira:issue_updated"], "jqlFilter": "project = FIN"}])
    assert err.value.status == 403  # REST webhooks are for OAuth/Connect apps only


@pytest.mark.parametrize("case", ["bad_secret", "revoked", "site", "bad_api_token"])
def test_sandbox_test_connection_false(case: str, sandbox: Any, spec_session: requests.Session) -> None:
    store = seeded_store(sandbox)
    if case == "bad_secret":
        hook = sandbox_oauth_hook(sandbox, spec_session, store, client_secret="BAD-SECRET-1")
        ok, msg = hook.test_connection()
        assert "client id/secret" in msg
    elif case == "revoked":
        sandbox.control("POST", "/_sandbox/atlassian/revoke")
        ok, msg = sandbox_oauth_hook(sandbox, spec_session, store).test_connection()
        assert "revoked" in msg
        assert "consent again" in msg
    elif case == "site":
        ok, msg = sandbox_oauth_hook(
            sandbox, spec_session, store, site_url="https://elsewhere.atlassian.net"
        ).test_connection()
        assert "No access to the Jira site" in msg
        assert sandbox.creds["site_url"] in msg
    else:
        ok, msg = sandbox_basic_hook(sandbox, spec_session, api_token="BAD-TOKEN-1").test_connection()
        assert "API token" in msg
    assert not ok
    for secret in (
        "BAD-SECRET-1",
        "BAD-TOKEN-1",
        sandbox.creds["atlassian_client_secret"],
        sandbox.creds["refresh_token"],
        sandbox.creds["jira_api_token"],
    ):
        assert secret not in msg


def test_sandbox_test_connection_checks_the_typed_secret_while_the_token_is_fresh(
    sandbox: Any, spec_session: requests.Session
) -> None:
    """The reported failure: a wrong client secret passed Test while the stored access token was valid (the
    secret is only sent on a refresh). Test now refreshes the stored grant with the typed secret, at once."""
    store = FakeStore()
    dag_hook = sandbox_oauth_hook(sandbox, spec_session, store)
    assert dag_hook.myself()["accountId"]  # a task exchanged the bootstrap token: a fresh access token
    row = store.get_token(dag_hook.token_name)
    assert row.expires_at > time.time() + 3000
    refreshes = _refreshes(sandbox)
    ok, msg = sandbox_oauth_hook(sandbox, spec_session, store, client_secret="BAD-SECRET-2").test_connection()
    assert not ok
    assert msg.startswith("Atlassian rejected the OAuth client id/secret"), msg
    assert "BAD-SECRET-2" not in msg
    assert sandbox.creds["atlassian_client_secret"] not in msg
    assert _refreshes(sandbox) == refreshes + 1  # asked Atlassian, which refused the client
    assert store.get_token(dag_hook.token_name) is row  # nothing spent, nothing recorded
    ok, msg = sandbox_oauth_hook(sandbox, spec_session, store).test_connection()
    assert ok, msg
    assert _refreshes(sandbox) == refreshes + 2
    after = store.get_token(dag_hook.token_name)
    assert after.refresh_token_enc != row.refresh_token_enc  # the rotation is stored as any refresh's
    assert "last_refresh_error" not in after.meta
    events = sandbox.stats()["events"]
    assert events.get("atlassian.token.reuse_in_leeway", 0) == events.get("atlassian.grant.revoked", 0) == 0
    JiraTokenProvider._process_cache.clear()
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})  # the DAGs carry on from the stored grant
    assert sandbox_oauth_hook(sandbox, spec_session, store).myself()["accountId"]


def test_hook_from_airflow_connection(airflow_conns: dict[str, str], sandbox: Any) -> None:
    """The connection printed by ``airflow-env`` (oauth2 flavour) works as is."""
    hook = JiraCloudHook(store=seeded_store(sandbox))
    assert hook.settings.auth == "oauth2"
    assert hook.settings.site_url == sandbox.creds["site_url"]
    assert "password" not in repr(hook.settings)
    assert sandbox.creds["atlassian_client_secret"] not in repr(hook.settings)
    ok, msg = hook.test_connection()
    assert ok, msg


def test_ui_test_under_a_transient_id_uses_the_dags_grant(
    airflow_conns: dict[str, str], sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported failure: Airflow's Test button (a copy of the connection under a random id) spent the
    rotated-away bootstrap token and Atlassian revoked the grant. Now it uses the DAGs' row, under its
    lock."""
    from airflow.models.connection import Connection

    dag_hook = JiraCloudHook()  # the default state store, as tasks use it
    assert dag_hook.myself()["accountId"]  # a task exchanged the bootstrap token
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 3600})  # far outside the 10-minute leeway
    JiraTokenProvider._process_cache.clear()
    transient = "qzxwvkrt"  # what the api-server's test route does: env var under a random id, then test
    monkeypatch.setenv(f"AIRFLOW_CONN_{transient.upper()}", airflow_conns["AIRFLOW_CONN_JIRA_DEFAULT"])
    ok, msg = Connection.get_connection_from_secrets(transient).test_connection()
    assert ok, msg
    events = sandbox.stats()["events"]
    assert events.get("atlassian.grant.revoked", 0) == 0
    assert events.get("atlassian.token.reuse_in_leeway", 0) == 0
    assert dag_hook.store.get_token(f"jira:{transient}") is None  # nothing stored under the copy's id
    JiraTokenProvider._process_cache.clear()
    assert JiraCloudHook().myself()["accountId"]  # the DAGs' grant is alive


def test_sandbox_cloud_id_cached_in_real_store(
    sandbox: Any, sqlite_url: str, spec_session: requests.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from bc_jira.store import StateStore

    monkeypatch.setenv("BC_JIRA_FERNET_KEYS", Fernet.generate_key().decode())
    store = StateStore.from_url(sqlite_url)
    hook = sandbox_oauth_hook(sandbox, spec_session, store)
    assert hook.myself()["accountId"]
    assert hook.test_connection()[0]
    row = store.get_token(hook.token_name)
    assert row.meta["cloud_id"] == sandbox.creds["cloud_id"]
    assert row.meta["site_url"] == sandbox.creds["site_url"]
    assert row.meta["client_id"] == sandbox.creds["atlassian_client_id"]
    assert row.meta["consent_estimated"]
    before = sandbox.stats()["calls"].get("GET /oauth/token/accessible-resources", 0)
    JiraTokenProvider._process_cache.clear()
    again = sandbox_oauth_hook(sandbox, spec_session, StateStore.from_url(sqlite_url))
    assert again.myself()["accountId"]
    assert sandbox.stats()["calls"].get("GET /oauth/token/accessible-resources", 0) == before
    assert sandbox.creds["refresh_token"] not in store.dump_text()

"""The sandbox Jira's pages over real HTTP: the site URL answers, the board and issue page render (escaped),
and the Done button is a Jira user's transition (same change, same webhook as the REST/control route)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.support.receiver import Receiver

if TYPE_CHECKING:
    from collections.abc import Iterator

EVIL = '<script>alert("x")</script> & <b>bold</b>'
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Site:
    """The sandbox's Jira site, as the connector's basic-auth client and a browser see it."""

    def __init__(self, sandbox: Any) -> None:
        c = sandbox.creds
        self.sb = sandbox
        self.url = c["site_url"]
        self.auth = (c["jira_email"], c["jira_api_token"])
        fields = requests.get(f"{self.url}/rest/api/3/field", auth=self.auth, timeout=10).json()
        self.ids = {f["name"]: f["id"] for f in fields}

    def create(self, summary: str, issue_type: str = "Invoice", **custom: Any) -> str:
        doc = {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [
                        {"type": "text", "text": EVIL},
                        {
                            "type": "text",
                            "text": "Open in Business Central",
                            "marks": [{"type": "link", "attrs": {"href": f"{self.sb.url}/bc-web?page=27"}}],
                        },
                        {
                            "type": "text",
                            "text": "bad link",
                            "marks": [{"type": "link", "attrs": {"href": "javascript:alert(1)"}}],
                        },
                    ],
                }
            ],
        }
        fields = {
            "project": {"key": "FIN"},
            "issuetype": {"name": issue_type},
            "summary": summary,
            "description": doc,
            **{self.ids[k]: v for k, v in custom.items()},
        }
        resp = requests.post(
            f"{self.url}/rest/api/3/issue", json={"fields": fields}, auth=self.auth, timeout=10
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["key"]

    def page(self, path: str) -> requests.Response:
        return requests.get(f"{self.url}{path}", timeout=10)

    def press(self, key: str, **form: str) -> requests.Response:
        return requests.post(
            f"{self.url}/browse/{key}/transitions", data=form, headers=FORM, allow_redirects=False, timeout=10
        )

    def issue(self, key: str) -> dict[str, Any]:
        return next(i for i in self.sb.control("GET", "/_sandbox/jira/issues") if i["key"] == key)


@pytest.fixture
def site(sandbox: Any) -> Site:
    sandbox.reset(vendors=3, invoices=3, orders=0)
    return Site(sandbox)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _column(html: str, status: str) -> str:
    m = re.search(
        rf'<div class="col" data-status="{status}">(.*?)</div></div>(?=<div class="col"|</div></main>)', html
    )
    assert m, f"no {status} column"
    return m.group(1)


def test_the_site_url_is_the_sandbox_and_accessible_resources_names_it(sandbox: Any) -> None:
    c = sandbox.creds
    assert c["site_url"] == f"{sandbox.url}/site"
    tok = requests.post(
        f"{sandbox.url}/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": c["atlassian_client_id"],
            "client_secret": c["atlassian_client_secret"],
            "refresh_token": c["refresh_token"],
        },
        timeout=10,
    ).json()
    res = requests.get(
        f"{sandbox.url}/oauth/token/accessible-resources",
        headers={"Authorization": f"Bearer {tok['access_token']}"},
        timeout=10,
    ).json()
    assert [(r["id"], r["url"]) for r in res] == [(c["cloud_id"], c["site_url"])]
    root = requests.get(c["site_url"], timeout=10)
    assert root.status_code == 200
    assert root.url == f"{c['site_url']}/jira/core/projects/FIN/board"


def test_board_shows_issues_by_status_with_bc_fields_all_escaped(site: Site) -> None:
    a = site.create(EVIL, **{"BC Document No.": "1001", "BC Vendor": "V1 <Acme & Co>", "BC Amount": 1250.5})
    b = site.create("Vendor V2 blocked", "Vendor", **{"BC Status": "All"})
    assert site.sb.control("POST", "/_sandbox/jira/transition", {"issue": b, "to": "In Progress"})
    resp = site.page("/jira/core/projects/FIN/board")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "script-src" not in resp.headers["content-security-policy"]  # default-src 'none': no script runs
    html = resp.text
    assert "<script>" not in html
    assert "<b>bold</b>" not in html
    todo, doing = _column(html, "To Do"), _column(html, "In Progress")
    assert f'data-key="{a}"' in todo
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in todo
    assert "BC Vendor: V1 &lt;Acme &amp; Co&gt;" in todo
    assert "BC Document No.: 1001" in todo
    assert "BC Amount: 1250.5" in todo
    assert f'data-key="{b}"' in doing
    assert "BC Status: All" in doing
    assert f'action="/site/browse/{a}/transitions"' in todo  # a Done button on each card not yet done
    # the type tabs keep one kind of issue
    vendors = site.page("/jira/core/projects/FIN/board?type=Vendor").text
    assert f'data-key="{b}"' in vendors
    assert f'data-key="{a}"' not in vendors
    assert site.page("/jira/core/projects/FIN/board?type=Nope").status_code == 404
    assert site.page("/jira/core/projects/ZZZ/board").status_code == 404


def test_issue_page_shows_fields_description_links_only_http_and_comments(site: Site) -> None:
    key = site.create("Invoice 1001", **{"BC Document No.": "1001"})
    comment = {
        "body": {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": "posted <ok>"}]}],
        }
    }
    resp = requests.post(
        f"{site.url}/rest/api/3/issue/{key}/comment", json=comment, auth=site.auth, timeout=10
    )
    assert resp.status_code == 201, resp.text
    page = site.page(f"/browse/{key}")
    assert page.status_code == 200
    html = page.text
    assert f"<title>{key}: Invoice 1001</title>" in html
    assert "<th>BC Document No.</th><td>1001</td>" in html
    assert "<th>Status</th><td>To Do</td>" in html
    assert f'<a href="{site.sb.url}/bc-web?page=27" rel="noreferrer">Open in Business Central</a>' in html
    assert "javascript:" not in html  # a link Jira would not render is shown as text
    assert "bad link" in html
    assert "&lt;script&gt;" in html
    assert "Comments (1)" in html
    assert "posted &lt;ok&gt;" in html
    assert "BC Connector" in html  # the comment's author (the basic-auth user)
    for name in ("In Progress", "Done", "Rejected"):  # one button per available transition
        assert f'<button type="submit">{name}</button>' in html
    assert site.page("/browse/FIN").url.endswith("/site/jira/core/projects/FIN/board")
    missing = site.page("/browse/FIN-999")
    assert missing.status_code == 404
    assert "FIN-999 does not exist" in missing.text


def test_done_button_is_a_jira_users_transition_and_fires_the_same_webhook(
    site: Site, receiver: Receiver
) -> None:
    sb = site.sb
    sb.control(
        "POST",
        "/_sandbox/jira/admin-webhooks",
        {"url": f"{receiver.base}/hook", "events": ["jira:issue_updated"]},
    )
    by_page, by_route = site.create("Invoice A"), site.create("Invoice B")

    resp = site.press(by_page, transition="31", back="board", type="Invoice")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/site/jira/core/projects/FIN/board?type=Invoice"
    assert site.issue(by_page)["fields"]["status"]["name"] == "Done"
    board = site.page("/jira/core/projects/FIN/board").text
    assert f'data-key="{by_page}"' in _column(board, "Done")
    sb.control("POST", "/_sandbox/jira/transition", {"issue": by_route, "to": "Done"})

    def delivery(key: str) -> dict[str, Any]:
        return receiver.wait("/hook", lambda b: b["issue"]["key"] == key)

    page_hook, route_hook = delivery(by_page), delivery(by_route)
    for hook in (page_hook, route_hook):
        assert hook["webhookEvent"] == "jira:issue_updated"
        assert hook["user"]["displayName"] == "Alice Approver"
        assert hook["issue"]["fields"]["status"]["name"] == "Done"
        assert [(i["field"], i["fromString"], i["toString"]) for i in hook["changelog"]["items"]] == [
            ("status", "To Do", "Done")
        ]
    assert set(page_hook) == set(route_hook)
    assert page_hook["issue_event_type_name"] == route_hook["issue_event_type_name"]
    # the issue page's buttons go back to the issue; Done is no longer offered there
    back = site.press(by_page, transition="21", back="issue")
    assert (back.status_code, back.headers["location"]) == (303, f"/site/browse/{by_page}")
    assert site.issue(by_page)["fields"]["status"]["name"] == "In Progress"


def test_bad_presses_are_4xx_and_change_nothing(site: Site) -> None:
    key = site.create("Invoice C")
    assert site.press(key, transition="999").status_code == 400
    assert site.press(key, transition="11").status_code == 400  # already To Do: not a transition from here
    assert site.press(key).status_code == 400
    assert site.press("FIN-999", transition="31").status_code == 404
    as_json = requests.post(f"{site.url}/browse/{key}/transitions", json={"transition": "31"}, timeout=10)
    assert as_json.status_code == 400
    huge = requests.post(
        f"{site.url}/browse/{key}/transitions",
        data={"transition": "31", "x": "y" * 9000},
        headers=FORM,
        timeout=10,
    )
    assert huge.status_code == 400
    assert site.issue(key)["fields"]["status"]["name"] == "To Do"


def test_pages_bypass_faults_rate_limits_and_api_stats(site: Site) -> None:
    key = site.create("Invoice D")
    sb = site.sb
    sb.control("POST", "/_sandbox/stats/reset")
    sb.faults(**{"500": 1.0})
    try:
        assert (
            requests.get(f"{site.url}/rest/api/3/issue/{key}", auth=site.auth, timeout=10).status_code == 500
        )
        assert site.page(f"/browse/{key}").status_code == 200
        assert site.page("/jira/core/projects/FIN/board").status_code == 200
        assert site.press(key, transition="31").status_code == 303
        assert requests.get(f"{sb.url}/bc-web?page=27", timeout=10).status_code == 200
    finally:
        sb.faults()
    calls = sb.stats()["calls"]
    assert not [k for k in calls if "/browse/" in k or "/board" in k or "/bc-web" in k], calls

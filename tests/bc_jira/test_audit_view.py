"""The audit page over a real SQLite state store, through FastAPI's TestClient (as the plugin mounts it)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bc_jira import audit_view
from bc_jira.store import AuditRow, Link, StateStore

SITE = "https://acme.atlassian.net"
RUN = "scheduled__2026-11-24T10:00:00+00:00"
INV = "bc_purchase_invoices_to_jira"


class _Table(HTMLParser):
    """Cells of the page's table body, one list per row (text only), plus every link."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: list[dict[str, str]] = []
        self._in_body = self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
        elif tag == "td" and self._in_body:
            self.rows[-1].append("")
            self._in_cell = True
        elif tag == "a":
            self.links.append({k: v or "" for k, v in attrs})

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.rows[-1][-1] += data


def parse(html: str) -> _Table:
    t = _Table()
    t.feed(html)
    return t


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    st = StateStore.from_url(sqlite_url)
    st.upsert_link(Link("purchase_invoices", "id-1", "PI-1001", "10001", "FIN-1", state="linked"))
    st.upsert_link(Link("purchase_invoices", "id-2", "PI-1002", "10002", "FIN-2", state="resolved"))
    st.upsert_link(Link("vendors", "v-9", "V-0009", None, None, state="failed"))
    st.audit([
        AuditRow("purchase_invoices", "id-1", "create", "PI-1001", "FIN-1", dag_id=INV,
                 run_id=RUN, task_id="upsert", map_index=0, try_number=1),
        AuditRow("purchase_invoices", "id-2", "create", "PI-1002", "FIN-2", dag_id=INV,
                 run_id=RUN, task_id="upsert", map_index=1, try_number=1),
        AuditRow("purchase_invoices", "id-2", "writeback_post", "PI-1002", "FIN-2", reason="issue done",
                 dag_id="jira_transitions_to_bc", run_id="manual__x", task_id="write_back", try_number=2),
        AuditRow("vendors", "v-9", "create_failed", "V-0009", None,
                 error="Jira POST /issue/bulk -> 400: <script>alert(1)</script> field 'BC Vendor' unknown",
                 dag_id="bc_vendors_to_jira", run_id=RUN, task_id="upsert", map_index=3, try_number=2),
    ])
    return st


@pytest.fixture
def client(store: StateStore) -> TestClient:
    app = FastAPI()
    app.include_router(audit_view.router)
    app.dependency_overrides[audit_view.get_store] = lambda: store
    app.dependency_overrides[audit_view.jira_site_url] = lambda: SITE
    app.dependency_overrides[audit_view.get_user] = lambda: object()
    return TestClient(app)


def get(client: TestClient, **params: Any) -> _Table:
    resp = client.get("/audit", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    assert "<script" not in resp.text.lower(), "no JavaScript, and stored text is escaped"
    return parse(resp.text)


def test_one_row_per_record_with_latest_action_status_and_links(client: TestClient) -> None:
    page = get(client)
    by_doc = {r[0].split(" ")[0].split("Purchase")[0].split("Vendor")[0]: r for r in page.rows}
    assert set(by_doc) == {"PI-1001", "PI-1002", "V-0009"}
    doc, issue, action, status, error, _when, replay = by_doc["PI-1002"]
    assert issue == "FIN-2" and action.startswith("writeback_post") and "issue done" in action
    assert status == "resolved" and error == ""
    assert "jira_transitions_to_bc / manual__x / write_back" in replay and "[" not in replay
    assert by_doc["PI-1001"][3] == "linked"
    hrefs = [a["href"] for a in page.links]
    assert f"{SITE}/browse/FIN-1" in hrefs and f"{SITE}/browse/FIN-2" in hrefs
    jira = next(a for a in page.links if a["href"].endswith("/browse/FIN-1"))
    assert jira["target"] == "_blank" and "noopener" in jira["rel"]


def test_error_row_is_escaped_and_points_at_the_mapped_task_to_clear(client: TestClient) -> None:
    resp = client.get("/audit")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    page = parse(resp.text)
    row = next(r for r in page.rows if r[0].startswith("V-0009"))
    assert row[1] == "-" and row[3] == "error" and "field 'BC Vendor' unknown" in row[4]
    assert f"bc_vendors_to_jira / {RUN} / upsert [3]" in row[6] and "try 2" in row[6]
    link = next(a for a in page.links if "/tasks/upsert/mapped/3" in a["href"])
    assert link["href"] == ("../dags/bc_vendors_to_jira/runs/scheduled__2026-11-24T10%3A00%3A00%2B00%3A00"
                            "/tasks/upsert/mapped/3")
    assert link["target"] == "_top"


def test_text_filter_and_errors_only(client: TestClient) -> None:
    assert [r[0][:7] for r in get(client, q="fin-1").rows] == ["PI-1001"]
    assert [r[0][:6] for r in get(client, errors="true").rows] == ["V-0009"]
    assert [r[0][:6] for r in get(client, q="BC Vendor", errors="true").rows] == ["V-0009"]
    empty = get(client, q="no-such-thing")
    assert len(empty.rows) == 1 and "No synced records match" in empty.rows[0][0]
    # the form keeps the filter the user typed (escaped)
    text = client.get("/audit", params={"q": '"><b>x', "errors": "true"}).text
    assert 'value="&quot;&gt;&lt;b&gt;x"' in text and re.search(r'name="errors" value="true" checked', text)


def test_limit_is_bounded(client: TestClient) -> None:
    assert len(get(client, limit=1).rows) == 1
    assert client.get("/audit", params={"limit": audit_view.MAX_LIMIT + 1}).status_code == 422


def test_without_site_url_issue_keys_are_plain_text(client: TestClient) -> None:
    client.app.dependency_overrides[audit_view.jira_site_url] = lambda: None
    page = get(client)
    assert not [a for a in page.links if "/browse/" in a["href"]]
    assert any(r[1] == "FIN-1" for r in page.rows)


def test_requires_an_airflow_user(store: StateStore) -> None:
    app = FastAPI()
    app.include_router(audit_view.router)
    app.dependency_overrides[audit_view.get_store] = lambda: store
    resp = TestClient(app).get("/audit")
    assert resp.status_code == 401


def test_site_url_from_the_jira_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    audit_view._SITE_CACHE.clear()
    monkeypatch.setenv("AIRFLOW_CONN_JIRA_DEFAULT",
                       '{"conn_type": "jira_cloud", "extra": {"auth": "oauth2", "site_url": "https://x.atlassian.net/"}}')
    assert audit_view.jira_site_url() == "https://x.atlassian.net"
    audit_view._SITE_CACHE.clear()
    monkeypatch.setenv("AIRFLOW_CONN_JIRA_DEFAULT",
                       '{"conn_type": "jira_cloud", "host": "y.atlassian.net", "extra": {"auth": "basic"}}')
    assert audit_view.jira_site_url() == "https://y.atlassian.net"
    audit_view._SITE_CACHE.clear()
    monkeypatch.delenv("AIRFLOW_CONN_JIRA_DEFAULT")
    assert audit_view.jira_site_url() is None
    audit_view._SITE_CACHE.clear()

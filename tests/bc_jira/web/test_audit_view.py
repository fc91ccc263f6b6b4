"""The audit page over a real SQLite state store, through FastAPI's TestClient (as the plugin mounts it)."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bc_jira.store import AuditRow, Link, StateStore
from bc_jira.web import audit_view
from tests.conftest import REPO
from tests.support.api_server import ApiServer, conn_env
from tests.support.webdriver import Browser, need_browser

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
    st.audit(
        [
            AuditRow(
                "purchase_invoices",
                "id-1",
                "create",
                "PI-1001",
                "FIN-1",
                dag_id=INV,
                run_id=RUN,
                task_id="upsert",
                map_index=0,
                try_number=1,
            ),
            AuditRow(
                "purchase_invoices",
                "id-2",
                "create",
                "PI-1002",
                "FIN-2",
                dag_id=INV,
                run_id=RUN,
                task_id="upsert",
                map_index=1,
                try_number=1,
            ),
            AuditRow(
                "purchase_invoices",
                "id-2",
                "writeback_post",
                "PI-1002",
                "FIN-2",
                reason="issue done",
                dag_id="jira_transitions_to_bc",
                run_id="manual__x",
                task_id="write_back",
                try_number=2,
            ),
            AuditRow(
                "vendors",
                "v-9",
                "create_failed",
                "V-0009",
                None,
                error="Jira POST /issue/bulk -> 400: <script>alert(1)</script> field 'BC Vendor' unknown",
                dag_id="bc_vendors_to_jira",
                run_id=RUN,
                task_id="upsert",
                map_index=3,
                try_number=2,
            ),
        ]
    )
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
    scripts = re.findall(r"<script[^>]*>", resp.text, flags=re.IGNORECASE)
    assert scripts == ['<script src="audit.js" defer>'], "only the link script; stored text is escaped"
    return parse(resp.text)


def test_batch_view_shows_the_rows_one_task_instance_wrote(client: TestClient) -> None:
    """The upsert's extra link: one mapped task instance of one run (``bc_jira.sync.links``)."""
    page = get(client, dag=INV, run=RUN, task="upsert", map_index=1)
    assert [r[0][:7] for r in page.rows] == ["PI-1002"]
    assert page.rows[0][2].startswith("create")  # not the later write-back row of the same record
    assert get(client, dag=INV, run=RUN, task="upsert", map_index=2).rows[0][0].startswith("No audit rows")
    both = get(client, dag=INV, run=RUN, task="upsert")  # no map index: every batch of the run
    assert sorted(r[0][:7] for r in both.rows) == ["PI-1001", "PI-1002"]
    assert client.get("/audit", params={"run": RUN}).status_code == 422


def test_one_row_per_record_with_latest_action_status_and_links(client: TestClient) -> None:
    page = get(client)
    by_doc = {r[0].split(" ")[0].split("Purchase")[0].split("Vendor")[0]: r for r in page.rows}
    assert set(by_doc) == {"PI-1001", "PI-1002", "V-0009"}
    doc, issue, action, status, error, _when, replay = by_doc["PI-1002"]
    assert issue == "FIN-2"
    assert action.startswith("writeback_post")
    assert "issue done" in action
    assert status == "resolved"
    assert error == ""
    assert "jira_transitions_to_bc / manual__x / write_back" in replay
    assert "[" not in replay
    assert by_doc["PI-1001"][3] == "linked"
    hrefs = [a["href"] for a in page.links]
    assert f"{SITE}/browse/FIN-1" in hrefs
    assert f"{SITE}/browse/FIN-2" in hrefs
    jira = next(a for a in page.links if a["href"].endswith("/browse/FIN-1"))
    assert jira["target"] == "_blank"
    assert "noopener" in jira["rel"]


def test_error_row_is_escaped_and_points_at_the_mapped_task_to_clear(client: TestClient) -> None:
    resp = client.get("/audit")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
    page = parse(resp.text)
    row = next(r for r in page.rows if r[0].startswith("V-0009"))
    assert row[1] == "-"
    assert row[3] == "error"
    assert "field 'BC Vendor' unknown" in row[4]
    assert f"bc_vendors_to_jira / {RUN} / upsert [3]" in row[6]
    assert "try 2" in row[6]
    link = next(a for a in page.links if "/tasks/upsert/mapped/3" in a["href"])
    assert link["href"] == (
        "../dags/bc_vendors_to_jira/runs/scheduled__2026-11-24T10%3A00%3A00%2B00%3A00/tasks/upsert/mapped/3"
    )
    assert link["target"] == "_top"


def test_text_filter_and_errors_only(client: TestClient) -> None:
    assert [r[0][:7] for r in get(client, q="fin-1").rows] == ["PI-1001"]
    assert [r[0][:6] for r in get(client, errors="true").rows] == ["V-0009"]
    assert [r[0][:6] for r in get(client, q="BC Vendor", errors="true").rows] == ["V-0009"]
    empty = get(client, q="no-such-thing")
    assert len(empty.rows) == 1
    assert "No synced records match" in empty.rows[0][0]
    # the form keeps the filter the user typed (escaped)
    text = client.get("/audit", params={"q": '"><b>x', "errors": "true"}).text
    assert 'value="&quot;&gt;&lt;b&gt;x"' in text
    assert re.search(r'name="errors" value="true" checked', text)


def test_entity_filter(client: TestClient) -> None:
    assert [r[0][:6] for r in get(client, entity="vendors").rows] == ["V-0009"]
    assert sorted(r[0][:7] for r in get(client, entity="purchase_invoices").rows) == ["PI-1001", "PI-1002"]
    assert "No synced records match" in get(client, entity="purchase_orders").rows[0][0]
    assert len(get(client, q="", entity="").rows) == 3  # the form's "all entities"
    assert client.get("/audit", params={"entity": "customers"}).status_code == 422
    text = client.get("/audit", params={"entity": "vendors"}).text
    assert '<option value="vendors" selected>' in text


def test_pages_past_the_first_page_with_the_older_link(store: StateStore, client: TestClient) -> None:
    store.audit([AuditRow("purchase_orders", f"po-{i}", "create", f"PO{i:04d}", None) for i in range(1203)])
    seen: list[str] = []
    params: dict[str, Any] = {}
    pages = 0
    while True:
        resp = client.get("/audit", params=params)
        page = parse(resp.text)
        pages += 1
        seen += [r[0].split("Purchase")[0] for r in page.rows]
        older = [a["href"] for a in page.links if a.get("class") == "older"]
        if not older:
            break
        assert len(page.rows) == 500
        assert "(a page of 500; older ones below)" in resp.text
        params = dict(p.split("=", 1) for p in older[0].lstrip("?").split("&"))
        assert any(a.get("class") == "newest" for a in parse(client.get("/audit", params=params).text).links)
    assert pages == 3
    assert len(seen) == 1206 == len(set(seen))
    assert seen[0] == "PO1202"
    assert seen[-1] == "PI-1001"


def test_record_history_lists_every_attempt(client: TestClient) -> None:
    page = get(client)
    hist = next(a["href"] for a in page.links if a.get("class") == "hist" and "id-2" in a["href"])
    assert hist == "?entity=purchase_invoices&record=id-2"
    resp = client.get("/audit" + hist)
    assert "History of Purchase invoice <code>id-2</code>" in resp.text
    rows = parse(resp.text).rows
    assert [r[2].split("issue")[0] for r in rows] == ["writeback_post", "create"]  # newest first
    assert "jira_transitions_to_bc / manual__x / write_back" in rows[0][6]
    assert "try 2" in rows[0][6]
    assert f"{INV} / {RUN} / upsert [1]" in rows[1][6]
    assert [r[3] for r in rows] == ["ok", "ok"]
    failed = parse(client.get("/audit", params={"entity": "vendors", "record": "v-9"}).text).rows
    assert [r[3] for r in failed] == ["error"]
    assert "field 'BC Vendor' unknown" in failed[0][4]
    assert client.get("/audit", params={"record": "id-2"}).status_code == 422  # the entity is needed


def test_link_script_is_served(client: TestClient) -> None:
    resp = client.get("/audit.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/javascript")
    assert "window.top.document" in resp.text
    assert 'proxy.target = a.target === "_blank"' in resp.text


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
    monkeypatch.setenv(
        "AIRFLOW_CONN_JIRA_DEFAULT",
        '{"conn_type": "jira_cloud", "extra": {"auth": "oauth2", "site_url": "https://x.atlassian.net/"}}',
    )
    assert audit_view.jira_site_url() == "https://x.atlassian.net"
    audit_view._SITE_CACHE.clear()
    monkeypatch.setenv(
        "AIRFLOW_CONN_JIRA_DEFAULT",
        '{"conn_type": "jira_cloud", "host": "y.atlassian.net", "extra": {"auth": "basic"}}',
    )
    assert audit_view.jira_site_url() == "https://y.atlassian.net"
    audit_view._SITE_CACHE.clear()
    monkeypatch.delenv("AIRFLOW_CONN_JIRA_DEFAULT")
    assert audit_view.jira_site_url() is None
    audit_view._SITE_CACHE.clear()


# -- in a real api-server, seen by a real browser ------------------------------------------------------------

DOCS = REPO / "docs"


def _seed_realistic(st: StateStore, run1: str = "scheduled__2026-11-24T09:45:00+00:00") -> None:
    """What a few runs leave behind: creates, an edit, a write-back, a refused create, a lost answer."""
    inv, ven = "bc_purchase_invoices_to_jira", "bc_vendors_to_jira"
    run2 = "asset_triggered__2026-11-24T09:52:31+00:00"
    vendors = ["Fabrikam, Inc.", "Litware, Inc.", "Coho Winery", "Wide World Importers", "Trey Research"]
    links, rows = [], []
    for i in range(12):
        bc_id = f"5e1c{i:04d}-0c3d-ef11-9f8a-6045bdc8c1{i:02d}"
        doc, key = f"108{i:03d}", f"FIN-{101 + i}"
        state = "resolved" if i in (2, 7) else "linked"
        links.append(Link("purchase_invoices", bc_id, doc, str(10100 + i), key, state=state))
        rows.append(
            AuditRow(
                "purchase_invoices",
                bc_id,
                "create",
                doc,
                key,
                reason=f"draft invoice, {vendors[i % 5]}",
                dag_id=inv,
                run_id=run1,
                task_id="upsert",
                map_index=i // 5,
                try_number=1,
            )
        )
    rows.append(
        AuditRow(
            "purchase_invoices",
            links[4].bc_id,
            "edit",
            "108004",
            "FIN-105",
            reason="amount changed in BC",
            dag_id=inv,
            run_id=run2,
            task_id="upsert",
            map_index=0,
            try_number=1,
        )
    )
    for i in (2, 7):
        rows.append(
            AuditRow(
                "purchase_invoices",
                links[i].bc_id,
                "writeback_post",
                links[i].document_number,
                links[i].issue_key,
                reason="issue Done: invoice posted in BC",
                dag_id="jira_transitions_to_bc",
                run_id="asset_triggered__2026-11-24T10:03:12",
                task_id="write_back",
                try_number=1,
            )
        )
    links.append(Link("vendors", "v-30000", "30000", None, None, state="failed"))
    rows.append(
        AuditRow(
            "vendors",
            "v-30000",
            "create_failed",
            "30000",
            None,
            error="Jira POST /rest/api/3/issue/bulk -> 400 INVALID_INPUT: Field "
            "'customfield_10042' cannot be set. It is not on the appropriate screen, "
            "or unknown.",
            dag_id=ven,
            run_id=run1,
            task_id="upsert",
            map_index=0,
            try_number=3,
        )
    )
    links.append(Link("vendors", "v-40000", "40000", "10200", "FIN-150", state="linked"))
    rows.append(
        AuditRow(
            "vendors",
            "v-40000",
            "create",
            "40000",
            "FIN-150",
            reason="blocked: Payment",
            dag_id=ven,
            run_id=run1,
            task_id="upsert",
            map_index=0,
            try_number=3,
        )
    )
    st.upsert_links(links)
    st.audit(rows)


REPLAY_DAG = '''
"""Test-only DAG with the connector's DAG id: its mapped ``upsert`` task instances are what the audit page
names, so the replay link lands on a real task instance page."""
import pendulum
from airflow.sdk import dag, task


@dag(schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def bc_purchase_invoices_to_jira():
    @task
    def upsert(batch: int) -> int:
        return batch

    upsert.expand(batch=[0, 1, 2])


bc_purchase_invoices_to_jira()
'''
JIRA_SITE = "https://contoso-finance.atlassian.net"


def _replay_target_run(server: ApiServer, dags: Path) -> str:
    """Run the test DAG once (``airflow dags test``): the run and its task instances exist in the UI."""
    airflow = str(Path(sys.executable).parent / "airflow")
    res = subprocess.run(
        [airflow, "dags", "test", INV, "2026-11-24T09:45:00+00:00"],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    with contextlib.closing(sqlite3.connect(server.home / "airflow.db")) as db:
        (run_id,) = db.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (INV,)).fetchone()
    return run_id


def _in_audit_frame(browser: Browser) -> None:
    browser.frame(None)
    browser.frame(browser.find(f'iframe[title="{audit_view.EXTERNAL_VIEW["name"]}"]', timeout=60))


def _frame_rows(browser: Browser) -> _Table:
    browser.find("table tbody tr")
    return parse(browser.run("return document.documentElement.outerHTML"))


@pytest.mark.slow
def test_audit_page_links_clicked_inside_the_airflow_ui(tmp_path: Path) -> None:
    """In Airflow's sandboxed iframe: the replay link opens the task instance page, the Jira link a window."""
    need_browser()
    home, dags = tmp_path / "airflow", tmp_path / "dags"
    dags.mkdir()
    (dags / "replay_target.py").write_text(REPLAY_DAG)
    state = tmp_path / "state.db"
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        **conn_env("bc_jira_db", {"conn_type": "sqlite", "host": str(state)}),
        **conn_env(
            "jira_default", {"conn_type": "jira_cloud", "extra": {"auth": "oauth2", "site_url": JIRA_SITE}}
        ),
    }
    server = ApiServer(home, env, plugins=REPO / "plugins")
    browser: Browser | None = None
    try:
        run_id = _replay_target_run(server, dags)
        _seed_realistic(StateStore.from_url(f"sqlite:///{state}"), run1=run_id)
        views = [
            v
            for p in requests.get(f"{server.url}/api/v2/plugins", timeout=10).json()["plugins"]
            for v in p["external_views"]
        ]
        assert audit_view.EXTERNAL_VIEW in [
            {k: v[k] for k in audit_view.EXTERNAL_VIEW if k in v} for v in views
        ]

        browser = Browser(tmp_path / "profile")
        ui = f"{server.url}/plugin/{audit_view.EXTERNAL_VIEW['url_route']}"
        browser.get(ui)
        _in_audit_frame(browser)
        sandbox = browser.run("return window.frameElement.getAttribute('sandbox')")
        assert "allow-top-navigation" not in sandbox, sandbox
        assert "allow-popups" not in sandbox, sandbox
        page = _frame_rows(browser)
        assert len(page.rows) == 14, [r[:2] for r in page.rows]
        err = next(r for r in page.rows if r[3] == "error")
        assert err[0].startswith("30000")
        assert "customfield_10042" in err[4]
        if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1":
            browser.frame(None)
            time.sleep(1)
            browser.screenshot(DOCS / "audit-view-in-airflow-ui.png")
            _in_audit_frame(browser)

        # the Jira link (target=_blank): a click opens the issue in a new window
        before = set(browser.windows)
        main = browser.window
        browser.click(browser.find(f'a[href="{JIRA_SITE}/browse/FIN-105"]'))
        new = browser.wait(lambda: set(browser.windows) - before, what="the Jira window")
        browser.switch_window(new.pop())
        assert browser.wait(lambda: browser.url.startswith(JIRA_SITE) and browser.url, what="Jira URL") == (
            f"{JIRA_SITE}/browse/FIN-105"
        )
        browser._call("DELETE", "/window")
        browser.switch_window(main)

        # the entity filter and the record history, clicked in the iframe; the UI's URL follows
        _in_audit_frame(browser)
        browser.run("document.querySelector('select[name=entity]').value = 'vendors'")
        browser.click(browser.find('button[type="submit"]'))
        browser.wait(lambda: "entity=vendors" in browser.run("return location.search"), what="filtered page")
        vendors = _frame_rows(browser)
        assert sorted(r[0][:5] for r in vendors.rows) == ["30000", "40000"]
        browser.frame(None)
        assert browser.url.endswith("/plugin/bc-jira-audit/bc-jira/audit?q=&entity=vendors"), browser.url
        _in_audit_frame(browser)
        browser.run("document.querySelector('select[name=entity]').value = ''")
        browser.click(browser.find('button[type="submit"]'))
        browser.wait(lambda: browser.run("return location.search") == "?q=&entity=", what="unfiltered page")
        edited = "5e1c0004-0c3d-ef11-9f8a-6045bdc8c104"
        _in_audit_frame(browser)
        browser.click(browser.find(f'a.hist[href*="{edited}"]'))
        browser.wait(lambda: "record=" in browser.run("return location.search"), what="history page")
        _in_audit_frame(browser)
        history = _frame_rows(browser)
        assert [r[2].split("amount")[0].split("draft")[0] for r in history.rows] == ["edit", "create"]
        assert f"{INV} / {run_id} / upsert [0]" in history.rows[1][6]
        if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1":
            browser.frame(None)
            browser.screenshot(DOCS / "audit-history-in-airflow-ui.png")
            _in_audit_frame(browser)

        # the replay link (target=_top): a click lands on the task instance page of the UI, with Clear
        browser.click(browser.find(f'a[href$="/runs/{quote(run_id, safe="")}/tasks/upsert/mapped/0"]'))
        browser.frame(None)
        want = f"{server.url}/dags/{INV}/runs/{quote(run_id, safe='')}/tasks/upsert/mapped/0"
        browser.wait(lambda: browser.url == want, what=f"top page at {want} (now {browser.url})")
        try:
            clear = browser.wait(
                lambda: browser.run(
                    "return [...document.querySelectorAll('button')].filter("
                    "b => /clear/i.test(b.innerText + ' ' + (b.getAttribute('aria-label') || ''))).length"
                ),
                timeout=40,
                what="the task instance page with its Clear button",
            )
        except AssertionError:
            browser.screenshot(tmp_path / "ti-page.png")
            (tmp_path / "ti-page.txt").write_text(browser.run("return document.body.innerHTML"))
            raise
        assert clear
        assert "upsert" in browser.run("return document.body.innerText")
        assert not browser.run("return document.querySelector('iframe')")  # the UI's own page, not embedded
    finally:
        if browser is not None:
            browser.close()
        server.stop()


# -- several companies ---------------------------------------------------------------------------------------

K1, K2 = "1111aaaa", "2222bbbb"


def _two_company_app(store: StateStore) -> FastAPI:
    """The default company (store key "") and CRONUS US (store key K2), each with a record of the same id."""
    from bc_jira.edges.health import CompanyInfo

    us = store.for_company(K2)
    us.upsert_link(Link("purchase_invoices", "id-1", "US-1001", "20001", "US-1", state="linked"))
    us.audit([AuditRow("purchase_invoices", "id-1", "create", "US-1001", "US-1", reason="in the US")])
    us.audit([AuditRow("purchase_invoices", "id-1", "edit", "US-1001", "US-1", reason="US edit")])
    app = FastAPI()
    app.include_router(audit_view.router)
    app.dependency_overrides[audit_view.get_store] = lambda: store
    app.dependency_overrides[audit_view.jira_site_url] = lambda: SITE
    app.dependency_overrides[audit_view.get_user] = lambda: object()
    app.dependency_overrides[audit_view.get_companies] = lambda: [
        CompanyInfo("", "c-1", "CRONUS DK", ident=K1),
        CompanyInfo(K2, "c-2", "CRONUS US", ident=K2),
    ]
    return app


def test_company_filter_rows_and_history_per_company(store: StateStore) -> None:
    client = TestClient(_two_company_app(store))
    every = get(client)
    assert len(every.rows) == 4
    assert sum("CRONUS US" in r[0] for r in every.rows) == 1  # each row names its company
    assert sum("CRONUS DK" in r[0] for r in every.rows) == 3
    us = get(client, company=K2)
    assert [r[0][:7] for r in us.rows] == ["US-1001"]
    dk = get(client, company=K1)
    assert sorted(r[0][:6] for r in dk.rows) == ["PI-100", "PI-100", "V-0009"]
    text = client.get("/audit", params={"company": K2}).text
    assert f'<option value="{K2}" selected>CRONUS US</option>' in text
    # the history of (company, record): the same record id in the other company is not mixed in
    hist = next(a["href"] for a in us.links if a.get("class") == "hist")
    assert hist == f"?entity=purchase_invoices&record=id-1&company={K2}"
    rows = parse(client.get("/audit" + hist).text).rows
    assert [r[2].split(" ")[0].split("US")[0].split("in")[0] for r in rows] == ["edit", "create"]
    assert all(r[1] == "US-1" for r in rows)
    dk_hist = get(client, entity="purchase_invoices", record="id-1", company=K1)
    assert [r[1] for r in dk_hist.rows] == ["FIN-1"]
    assert client.get("/audit", params={"company": "9999ffff"}).status_code == 422
    assert client.get("/audit", params={"company": "x"}).status_code == 422


def test_one_company_has_no_company_filter(client: TestClient) -> None:
    text = client.get("/audit").text
    assert 'name="company"' not in text


@pytest.mark.slow
def test_company_filter_chosen_in_a_browser(store: StateStore, tmp_path: Path) -> None:
    """The page under uvicorn, a real browser picks CRONUS US in the filter and sees only its rows."""
    from tests.support.plugin_server import PluginServer

    need_browser()
    server = PluginServer(None, None, app=_two_company_app(store))
    browser: Browser | None = None
    try:
        browser = Browser(tmp_path / "profile")
        browser.get(f"{server.url}/bc-jira/audit")
        assert len(_frame_rows(browser).rows) == 4
        browser.run(f"document.querySelector('select[name=company]').value = '{K2}'")
        browser.click(browser.find('button[type="submit"]'))
        browser.wait(lambda: f"company={K2}" in browser.run("return location.search"), what="filtered page")
        page = _frame_rows(browser)
        assert [r[0][:7] for r in page.rows] == ["US-1001"]
        assert "CRONUS US" in page.rows[0][0]
        assert browser.run("return document.querySelector('select[name=company]').value") == K2
        browser.click(browser.find("a.hist"))
        browser.wait(lambda: "record=id-1" in browser.run("return location.search"), what="history page")
        history = _frame_rows(browser)
        assert [r[1] for r in history.rows] == ["US-1", "US-1"]
        assert "in CRONUS US" in browser.run("return document.querySelector('h1').innerText")
    finally:
        if browser is not None:
            browser.close()
        server.stop()

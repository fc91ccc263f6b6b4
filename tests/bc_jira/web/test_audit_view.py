"""The audit page over a real SQLite state store, through FastAPI's TestClient (as the plugin mounts it)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bc_jira.store import AuditRow, Link, StateStore
from bc_jira.web import audit_view
from tests.conftest import IN_CI, REPO

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
    assert "<script" not in resp.text.lower(), "no JavaScript, and stored text is escaped"
    return parse(resp.text)


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

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS = REPO / "docs"
TEST_PLUGIN = '''
"""Test-only plugin: the audit router and its external view, as the bc-jira plugin mounts them."""
from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI

from bc_jira.web import audit_view

app = FastAPI()
app.include_router(audit_view.router)


class AuditOnlyPlugin(AirflowPlugin):
    name = "bc_jira_audit_only"
    fastapi_apps = [{"app": app, "url_prefix": "/bc-jira", "name": "bc-jira audit"}]
    external_views = [audit_view.EXTERNAL_VIEW]
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed_realistic(st: StateStore) -> None:
    """What a few runs leave behind: creates, an edit, a write-back, a refused create, a lost answer."""
    inv, ven = "bc_purchase_invoices_to_jira", "bc_vendors_to_jira"
    run1, run2 = "scheduled__2026-11-24T09:45:00+00:00", "asset_triggered__2026-11-24T09:52:31+00:00"
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


def _chromium(*args: str, profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_audit_page_in_a_real_api_server_and_headless_chromium(tmp_path: Path) -> None:
    if CHROMIUM is None:
        reason = "chromium not installed (`make services` runs apt-get install -y chromium chromium-driver)"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: the browser test must not skip)")
        pytest.skip(reason)
    home, plugins = tmp_path / "airflow", tmp_path / "plugins"
    home.mkdir()
    plugins.mkdir()
    repo_plugin = REPO / "plugins" / "bc_jira_plugin.py"
    if repo_plugin.exists() and "audit_view" in repo_plugin.read_text():
        plugins = REPO / "plugins"  # the real plugin mounts the page: test that
    else:
        (plugins / "bc_jira_audit_only.py").write_text(TEST_PLUGIN)
    state = home / "state.db"
    _seed_realistic(StateStore.from_url(f"sqlite:///{state}"))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "no-dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API_AUTH__JWT_SECRET": "audit-view-test-" + "x" * 64,
            "AIRFLOW_CONN_BC_JIRA_DB": json.dumps({"conn_type": "sqlite", "host": str(state)}),
            "AIRFLOW_CONN_JIRA_DEFAULT": json.dumps(
                {
                    "conn_type": "jira_cloud",
                    "extra": {"auth": "oauth2", "site_url": "https://contoso-finance.atlassian.net"},
                }
            ),
        }
    )
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [str(bin_dir / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=120
    )
    log = open(home / "api-server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(bin_dir / "airflow"), "api-server", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (home / "api-server.log").read_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{base}/api/v2/version", timeout=2).ok:
                    break
            assert time.monotonic() < deadline, "api-server did not answer in 60 s"
            time.sleep(0.3)
        # the external view is registered where the UI looks for nav entries
        views = [
            v
            for p in requests.get(f"{base}/api/v2/plugins", timeout=10).json()["plugins"]
            for v in p["external_views"]
        ]
        ours = [{k: v[k] for k in audit_view.EXTERNAL_VIEW if k in v} for v in views]
        assert audit_view.EXTERNAL_VIEW in ours, views
        # the browser sees the table the server rendered
        profile = tmp_path / "chromium-profile"
        dom = _chromium("--dump-dom", f"{base}/bc-jira/audit", profile=profile)
        assert dom.returncode == 0, dom.stderr[-2000:]
        page = parse(dom.stdout)
        assert len(page.rows) == 14, [r[:2] for r in page.rows]
        err = next(r for r in page.rows if r[3] == "error")
        assert err[0].startswith("30000")
        assert "customfield_10042" in err[4]
        assert "upsert [0]" in err[6]
        assert "https://contoso-finance.atlassian.net/browse/FIN-105" in [a["href"] for a in page.links]
        filtered = parse(_chromium("--dump-dom", f"{base}/bc-jira/audit?errors=true", profile=profile).stdout)
        assert [r[3] for r in filtered.rows] == ["error"]
        # screenshots: the page itself, and the page inside the Airflow UI (nav entry -> iframe)
        shot = tmp_path / "audit-view.png"
        res = _chromium(
            f"--screenshot={shot}", "--window-size=1400,820", f"{base}/bc-jira/audit", profile=profile
        )
        assert res.returncode == 0, res.stderr[-2000:]
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", res.stderr[-2000:]
        assert shot.stat().st_size > 30_000, "a table with data, not a blank page"
        in_ui = tmp_path / "audit-view-in-airflow-ui.png"
        _chromium(
            f"--screenshot={in_ui}",
            "--window-size=1400,820",
            "--virtual-time-budget=15000",
            f"{base}/plugin/{audit_view.EXTERNAL_VIEW['url_route']}",
            profile=profile,
        )
        if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1":
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / shot.name)
            if in_ui.exists():
                shutil.copy(in_ui, DOCS / in_ui.name)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()

"""A person in a real browser (headless Chromium): from the connector's audit page to the sandbox Jira issue
it links, from the issue's "Open in Business Central" link to the BC record, Done on the board, a new draft
invoice in BC. The issues are the connector's own (``bc_vendors_to_jira`` and ``bc_purchase_invoices_to_jira``
run with ``dag.test()``), so every link followed is one the connector wrote."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import REPO
from tests.support.outbound import prepare_outbound, run_dag
from tests.support.receiver import Receiver
from tests.support.webdriver import Browser, need_browser

if TYPE_CHECKING:
    from pathlib import Path

DOCS = REPO / "docs"
DAGS = ("bc_vendors_to_jira", "bc_purchase_invoices_to_jira")


def _connector_issues(sandbox: Any, airflow_conns: dict[str, str], monkeypatch: Any, tmp_path: Path) -> None:
    """Run the two sync DAGs against a freshly seeded sandbox (fresh state store, watermarks, field ids)."""
    from airflow.utils.state import DagRunState

    # batch_size=None: the config's own (200), one batch per sync, as before the setup moved to support
    prepare_outbound(
        sandbox, airflow_conns, monkeypatch, tmp_path, batch_size=None, vendors=12, invoices=10, orders=4
    )
    for dag_id in DAGS:
        assert run_dag(dag_id).state == DagRunState.SUCCESS


def _audit_page(tmp_path: Path) -> Path:
    """The connector's audit page for this state store, rendered by its own code with its own site URL."""
    from bc_jira.store import StateStore
    from bc_jira.web import audit_view

    audit_view._SITE_CACHE.clear()
    site = audit_view.jira_site_url()
    path = tmp_path / "audit.html"
    path.write_text(audit_view.render_page(StateStore.from_airflow().latest_per_record(), site_url=site))
    return path


def _shot(browser: Browser, name: str, tmp_path: Path) -> None:
    """Screenshots go into docs/ when BC_JIRA_UPDATE_SCREENSHOTS=1 (look at them before committing)."""
    folder = DOCS if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1" else tmp_path
    time.sleep(0.5)
    browser.screenshot(folder / name)


@pytest.mark.slow
def test_a_person_follows_the_connectors_links_and_presses_the_buttons(
    sandbox: Any, airflow_conns: dict[str, str], airflow_db: Path, monkeypatch: Any, tmp_path: Path
) -> None:
    need_browser()
    _connector_issues(sandbox, airflow_conns, monkeypatch, tmp_path)
    issues = sandbox.control("GET", "/_sandbox/jira/issues")
    vendor_issue = next(i for i in issues if i["fields"]["issuetype"]["name"] == "Vendor")
    assert any(i["fields"]["issuetype"]["name"] == "Invoice" for i in issues)
    key, site = vendor_issue["key"], sandbox.creds["site_url"]
    vendor = next(
        v
        for v in sandbox.control("GET", "/_sandbox/bc/records/vendors")["value"]
        if v["number"] in vendor_issue["fields"]["summary"]
    )
    receiver = Receiver()
    sandbox.control("POST", "/_sandbox/jira/admin-webhooks", {"url": f"{receiver.base}/hook"})
    browser = Browser(tmp_path / "profile")
    try:
        # 1. the audit page's issue link (target=_blank) opens the sandbox Jira's issue page
        browser.get(_audit_page(tmp_path).as_uri())
        before = set(browser.windows)
        browser.click(browser.find(f'a[href="{site}/browse/{key}"]'))
        new = browser.wait(lambda: set(browser.windows) - before, what="the Jira window")
        browser.switch_window(new.pop())
        browser.wait(lambda: browser.url == f"{site}/browse/{key}", what=f"{key} page (now {browser.url})")
        assert browser.run("return document.querySelector('h1').innerText").startswith(f"{key}: ")
        text = browser.run("return document.body.innerText")
        assert vendor["number"] in text
        assert "Vendor" in text

        # 2. the description's "Open in Business Central" link lands on that vendor's card
        bc_link = browser.run(
            "return [...document.querySelectorAll('a')].find(a => a.innerText === 'Open in Business Central')"
            ".getAttribute('href')"
        )
        assert bc_link.startswith(f"{sandbox.url}/bc-web?page=26&")
        browser.click(browser.find(f'a[href="{bc_link}"]'))
        browser.wait(lambda: "/bc-web?page=26" in browser.url, what=f"the vendor card (now {browser.url})")
        assert (
            browser.run("return document.querySelector('h1').innerText") == f"Vendor Card {vendor['number']}"
        )
        assert vendor["displayName"] in browser.run("return document.body.innerText")

        # 3. Done on the board: the issue moves to the Done column and the Jira webhook fires
        browser.get(f"{site}/jira/core/projects/FIN/board")
        browser.click(browser.find(f'div.card[data-key="{key}"] button'))
        browser.find(f'div.col[data-status="Done"] div.card[data-key="{key}"]')
        _shot(browser, "sandbox-jira-board.png", tmp_path)
        done = next(i for i in sandbox.control("GET", "/_sandbox/jira/issues") if i["key"] == key)
        assert done["fields"]["status"]["name"] == "Done"
        hook = receiver.wait("/hook", lambda b: b["issue"]["key"] == key)
        assert hook["changelog"]["items"][0]["toString"] == "Done"

        # 4. BC: New draft invoice on the Purchase Invoices list opens the new draft's card
        browser.get(f"{sandbox.url}/bc-web?page=9308")
        _shot(browser, "sandbox-bc-invoices.png", tmp_path)
        n0 = len(sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"])
        browser.click(browser.find("form[action='/bc-web/purchase-invoices/new'] button"))
        browser.wait(lambda: "page=51" in browser.url, what=f"the new invoice's card (now {browser.url})")
        invoices = sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        assert len(invoices) == n0 + 1
        newest = max(invoices, key=lambda r: r["lastModifiedDateTime"])
        assert (
            browser.run("return document.querySelector('h1').innerText")
            == f"Purchase Invoice {newest['number']}"
        )
        assert newest["status"] == "Draft"
    finally:
        browser.close()
        receiver.close()
    assert requests.get(f"{site}/browse/{key}", timeout=10).status_code == 200

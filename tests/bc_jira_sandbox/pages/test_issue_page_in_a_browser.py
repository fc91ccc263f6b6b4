"""An AP clerk opens an invoice issue the connector made (``bc_purchase_invoices_to_jira`` run with
``dag.test()``) on the sandbox Jira site in a real browser: the description carries the invoice's lines as a
table, and the vendor's document from BC is attached to the issue and downloads as the same bytes."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import REPO
from tests.support.outbound import prepare_outbound, run_dag
from tests.support.webdriver import Browser, need_browser

if TYPE_CHECKING:
    from pathlib import Path

DOCS = REPO / "docs"


def _draft_with_lines(sandbox: Any) -> dict[str, Any]:
    drafts = [
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    ]
    return drafts[0]


@pytest.mark.slow
def test_an_invoice_issue_page_shows_its_lines_and_the_vendors_document(
    sandbox: Any, airflow_conns: dict[str, str], airflow_db: Path, monkeypatch: Any, tmp_path: Path
) -> None:
    from airflow.utils.state import DagRunState

    from tests.support.bc_hook import sandbox_bc_hook

    need_browser()
    env = prepare_outbound(sandbox, airflow_conns, monkeypatch, tmp_path, vendors=6, invoices=8, orders=2)
    inv = _draft_with_lines(sandbox)
    sandbox.control(  # the vendor's scanned invoice, attached in BC as a user would
        "POST", "/_sandbox/bc/attachments", {"invoice": inv["id"], "fileName": "Vendor invoice.pdf"}
    )
    sandbox.control(
        "POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "id": inv["id"], "add_lines": 2}
    )
    assert run_dag("bc_purchase_invoices_to_jira").state == DagRunState.SUCCESS

    rid = env["fields"]["BC Record Id"]
    issue = next(
        i for i in sandbox.control("GET", "/_sandbox/jira/issues") if i["fields"].get(rid) == inv["id"]
    )
    lines = sorted(
        sandbox_bc_hook(sandbox).list_lines("purchaseInvoices", inv["id"]), key=lambda ln: ln["sequence"]
    )
    assert len(lines) >= 3
    held = sandbox.control("GET", f"/_sandbox/bc/attachments/{inv['id']}")
    bc_files = [f for f in held if f["set"] == "documentAttachments"]  # the default attachments.source
    site = sandbox.creds["site_url"]

    browser = Browser(tmp_path / "profile", height=2300)  # tall: the whole issue page in one screenshot
    try:
        browser.get(f"{site}/browse/{issue['key']}")
        browser.find("h1")
        # the description's line table (the page's other tables hold the issue's and the document's facts)
        tables = browser.run(
            "return [...document.querySelectorAll('table')].map(t => [...t.querySelectorAll('tr')]"
            ".map(r => [...r.children].map(c => c.innerText.trim())));"
        )
        rows = next(t for t in tables if t and t[0][:2] == ["Type", "No."])
        assert rows[0][:6] == ["Type", "No.", "Description", "Quantity", "Unit cost", "Line amount"]
        assert [r[2] for r in rows[1:]] == [ln["description"] for ln in lines]
        assert [r[5] for r in rows[1:]] == [f"{ln['amountExcludingTax']:,.2f}" for ln in lines]
        # every BC file is on the issue once, under its stable name, and downloads as BC's bytes
        links = browser.run(
            "return [...document.querySelectorAll('a[href*=\"/secure/attachment/\"]')]"
            ".map(a => [a.innerText.trim(), a.href]);"
        )
        assert len(links) == len(bc_files) >= 1
        for f in bc_files:
            stem = f["fileName"].rsplit(".", 1)[0]
            name, href = next((n, h) for n, h in links if n.startswith(stem) and f"[bc-{f['id']}]" in n)
            got = requests.get(href, timeout=10)
            assert got.status_code == 200, name
            assert len(got.content) == f["byteSize"], name
        if os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1":
            time.sleep(0.5)
            browser.screenshot(DOCS / "sandbox-issue-lines-attachments.png")
    finally:
        browser.close()

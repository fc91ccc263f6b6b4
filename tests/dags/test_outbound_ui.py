"""Two user paths walked in the real Airflow 3.3 UI with a real browser, after real runs of the invoice sync.

1. The upsert batch's extra links: the mapped task list shows each batch's label; on the task instance page
   the "Jira: batch issues" button lands on the Jira issue navigator listing exactly the batch's issues, and
   "bc-jira audit: batch" on the audit page of that batch.
2. A replay with the UI's default Clear (issue 9's "replay never moves data backwards", walked the way an
   operator does it): a real scheduler re-runs what the dialog cleared, and nothing moves backwards.

The runs are ``dag.test()`` in this process; the api-server (and the scheduler) share its metadata DB.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import pytest
import requests

from tests.conftest import REPO
from tests.support.api_server import ApiServer, conn_env
from tests.support.outbound import run_dag
from tests.support.scheduler import Scheduler
from tests.support.webdriver import Browser, need_browser

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.conftest import SandboxProcess

pytestmark = pytest.mark.slow

# the task instance header's Clear button: "Clear Task Instance", or its shortcut hint where the page's
# hotkeys are on (``dags:runAndTaskActions.clear.button`` / ``.buttonTooltip`` of the 3.3.2 UI)
CLEAR_BUTTON = ("Clear Task Instance", "Press shift+c to clear")

INV = "bc_purchase_invoices_to_jira"
ENTITY = "purchase_invoices"
WATERMARK = "bc_jira_watermark_purchase_invoices"
DOCS = REPO / "docs"
SCREENSHOTS = os.environ.get("BC_JIRA_UPDATE_SCREENSHOTS") == "1"
# Jira routes that are called with POST but only read (the sandbox's per-route call counts)
READ_POSTS = (
    "POST /ex/jira/{cloudId}/rest/api/3/search/jql",
    "POST /ex/jira/{cloudId}/rest/api/3/issue/bulkfetch",
)


def jira_writes(sandbox: SandboxProcess) -> dict[str, int]:
    """Every Jira call that can change something: POST/PUT/DELETE on the Jira API, except the reads above."""
    return {
        k: int(v)
        for k, v in sandbox.stats()["calls"].items()
        if k.split(" ")[0] in ("POST", "PUT", "DELETE") and "/ex/jira/" in k and k not in READ_POSTS
    }


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    need_browser()
    b = Browser(tmp_path / "profile", width=1440, height=900)
    yield b
    b.close()


def ui_server(home: Path, state_db: dict[str, Any]) -> ApiServer:
    """The api-server on this process's metadata DB, with the connector's connections and Variables."""
    passed = {k: v for k, v in os.environ.items() if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))}
    env = {
        **passed,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        **conn_env("bc_jira_db", state_db),
    }
    return ApiServer(home, env)


def ti_path(run_id: str, map_index: int | None = None) -> str:
    base = f"/dags/{INV}/runs/{quote(run_id, safe='')}/tasks/upsert/mapped"
    return base if map_index is None else f"{base}/{map_index}"


def open_new_window(browser: Browser, element: str) -> str:
    """Click a ``target=_blank`` link and switch to the window it opened; returns the previous window."""
    main, before = browser.window, set(browser.windows)
    browser.click(element)
    new = browser.wait(lambda: set(browser.windows) - before, what="the new window")
    browser.switch_window(new.pop())
    return main


def close_window(browser: Browser, back_to: str) -> None:
    browser._call("DELETE", "/window")
    browser.switch_window(back_to)


def jira_keys_on_page(browser: Browser) -> list[str]:
    return browser.run(
        "return [...document.querySelectorAll('tbody td:first-child a')].map(a => a.innerText.trim())"
    )


@contextlib.contextmanager
def evidence_on_failure(browser: Browser, where: Path) -> Iterator[None]:
    """On a failed step: the page's screenshot and text next to the test's files (named in the error)."""
    try:
        yield
    except BaseException as exc:
        with contextlib.suppress(Exception):
            browser.screenshot(where / "failed-page.png")
            (where / "failed-page.txt").write_text(f"{browser.url}\n{browser.text}")
        exc.add_note(f"browser evidence: {where}/failed-page.png, failed-page.txt")
        raise


def batch_facts(store: Any, run_id: str) -> list[dict[str, Any]]:
    """Per map index: its records, the issue keys it created, its UI label."""
    from bc_jira.store import BatchKey

    ids = store.batch_ids(ENTITY, run_id)
    out = []
    for i, bid in enumerate(ids):
        records = store.load_batch(bid)
        rows = store.query_audit(batch=BatchKey(INV, run_id, "upsert", i), limit=1000)
        created = sorted((r.issue_key for r in rows if r.action == "create"), key=lambda k: int(k[4:]))
        label = f"batch {i + 1}/{len(ids)} · {len(records)} record{'s' if len(records) != 1 else ''}"
        out.append({"records": records, "created": created, "label": label})
    return out


def test_upsert_extra_links_clicked_in_the_airflow_ui(
    sandbox: SandboxProcess, outbound: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    """Mapped task list labels; the task instance's extra-link buttons, found by their text and clicked."""
    from airflow.utils.state import DagRunState

    from bc_jira.store import StateStore
    from bc_jira.sync.links import AUDIT_LINK_NAME, JIRA_LINK_NAME

    t0 = time.monotonic()
    dr = run_dag(INV)
    assert dr.state == DagRunState.SUCCESS
    batches = batch_facts(StateStore.from_airflow(), dr.run_id)
    assert len(batches) >= 2
    assert all(b["created"] and len(b["created"]) == len(b["records"]) for b in batches)
    t_run = time.monotonic() - t0
    server = ui_server(tmp_path / "api", outbound["state_db"])
    try:
        with evidence_on_failure(browser, tmp_path):
            # the mapped task list: one row per batch, named by its label
            browser.get(server.url + ti_path(dr.run_id))
            for b in batches:
                browser.wait(lambda b=b: b["label"] in browser.text, timeout=60, what=f"label {b['label']!r}")

            # the task instance page of map index 1 opens on its logs; 3.3 shows the extra links as buttons
            # under "Extra Links" in the Details tab (``ExtraLinks`` in ``Details.tsx``)
            browser.get(server.url + ti_path(dr.run_id, 1))
            browser.click(browser.find_text("Details", "a, button", timeout=60))
            details = unquote(ti_path(dr.run_id, 1)) + "/details"
            browser.wait(lambda: unquote(browser.url).endswith(details), what="Details tab")
            jira = browser.find_text(JIRA_LINK_NAME, "a", timeout=60)
            audit = browser.find_text(AUDIT_LINK_NAME, "a")
            assert "Extra Links" in browser.text
            # the UI opens another site in a new window, its own origin (the plugin's audit page) in this one
            assert browser.attribute(jira, "target") == "_blank"
            assert browser.attribute(audit, "target") == "_self"
            assert batches[1]["label"] in browser.text  # the header names the batch too
            if SCREENSHOTS:
                time.sleep(1)
                browser.screenshot(DOCS / "upsert-extra-links.png")

            main = open_new_window(browser, jira)
            site = sandbox.creds["site_url"]
            browser.wait(
                lambda: browser.url.startswith(f"{site}/issues/?jql="), what=f"Jira navigator ({site})"
            )
            browser.find("#count")
            assert (
                jira_keys_on_page(browser) == batches[1]["created"]
            )  # exactly the batch's issues, key order
            assert f"{len(batches[1]['created'])} issue(s)" in browser.text
            close_window(browser, main)

            browser.click(browser.find_text(AUDIT_LINK_NAME, "a"))
            run_q = quote(dr.run_id, safe="")
            want = f"{server.url}/bc-jira/audit?dag={INV}&run={run_q}&task=upsert&map_index=1"
            browser.wait(
                lambda: unquote(browser.url) == unquote(want), what=f"audit page {want} (now {browser.url})"
            )
            browser.find("table tbody tr")
            page = browser.text
            assert f"Batch upsert [1] of {INV}" in page
            assert all(r["number"] in page for r in batches[1]["records"])
            others = [r for i, b in enumerate(batches) if i != 1 for r in b["records"]]
            assert not [r["number"] for r in others if r["number"] in page]
            assert all(k in page for k in batches[1]["created"])
    finally:
        server.stop()
    print(f"UI-LINKS sync run {t_run:.1f}s, UI walk {time.monotonic() - t0 - t_run:.1f}s")


def _clear_dialog_state(browser: Browser) -> dict[str, Any] | None:
    """What the open Clear dialog shows: the option buttons that are on (the selected one has the panel's
    background, the others are transparent), its named checkboxes, how many affected rows are ticked."""
    return browser.run(
        """
        const d = [...document.querySelectorAll('.chakra-dialog__content')].find(
            e => e.innerText.trim().startsWith('Clear Task Instance'));
        if (!d) return null;
        const on = b => getComputedStyle(b).backgroundColor !== 'rgba(0, 0, 0, 0)';
        const group = [...d.querySelectorAll('button')].filter(b => ['Past', 'Future', 'Upstream',
            'Downstream', 'Clear only failed tasks'].includes(b.innerText.trim()));
        const boxes = [...d.querySelectorAll('label')].filter(l => l.querySelector('input[type=checkbox]'));
        const named = boxes.filter(l => l.innerText.trim());
        const rows = [...d.querySelectorAll('tbody tr')];
        return {
            options: Object.fromEntries(group.map(b => [b.innerText.trim(), on(b)])),
            checkboxes: Object.fromEntries(named.map(l => [l.innerText.trim(),
                l.querySelector('input[type=checkbox]').checked])),
            rows: rows.map(r => [...r.querySelectorAll('td')].map(td => td.innerText.trim()).filter(Boolean)),
            rows_ticked: rows.filter(r => (r.querySelector('input[type=checkbox]') || {}).checked).length,
            text: d.innerText,
        };
        """
    )


def _change_two_drafts_of_batch(sandbox: SandboxProcess, records: list[dict[str, Any]]) -> tuple[str, str]:
    """Post one draft invoice of the batch and edit another's amount in BC (the sandbox's control route)."""
    drafts = [r for r in records if r.get("status") == "Draft"]
    assert len(drafts) >= 2, [r.get("status") for r in records]
    posted, edited = drafts[0]["id"], drafts[1]["id"]
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {
            "changes": [
                {"entity": "purchaseInvoices", "id": posted, "action": "post"},
                {"entity": "purchaseInvoices", "id": edited, "set": {"totalAmountIncludingTax": 4321.5}},
            ]
        },
    )
    return posted, edited


def test_replay_cleared_in_the_ui_with_its_defaults_never_moves_data_backwards(
    sandbox: SandboxProcess, outbound: dict[str, Any], browser: Browser, tmp_path: Path
) -> None:
    """Two syncs with a BC change between them; then, in the UI, the FIRST run's upsert [1] is cleared with
    the dialog's defaults and a real scheduler re-runs what it cleared: no Jira write (any POST/PUT/DELETE
    but searches), Jira keeps the newest values, and the watermark stays where the second run put it.

    The Clear dialog of a mapped task instance in Airflow 3.3.2 (the header's icon button, aria-label
    "Press shift+c to clear"; read in the installed UI and asserted below): "Downstream" on; "Past",
    "Future", "Upstream" and "Clear only failed tasks" off; "Prevent rerun if task is running" ticked; the
    dry run's affected tasks listed with every row ticked. It clears only this map index (``task_ids:
    [[upsert, 1]]``; all mapped instances have their own "Clear All Mapped Tasks" button), so the defaults
    clear ``upsert [1]`` and its downstream tasks of that run: ``follow_deletions``, ``advance_watermark``
    and EVERY ``attach`` instance (measured: "Affected Tasks: 5", attach [0] and [1] - Airflow clears all
    map indexes of a downstream mapped task, whose expansion comes from ``extract``, not from upsert [1]).
    "Confirm" then opens a confirmation that confirms itself unless the task is queued or scheduled.
    """
    from airflow.models.variable import Variable
    from airflow.utils.state import DagRunState

    from bc_jira.store import StateStore

    fields = outbound["fields"]
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = time.monotonic()
    first = run_dag(INV, logical_date=now - timedelta(hours=2))
    assert first.state == DagRunState.SUCCESS
    w1 = Variable.get(WATERMARK)
    store = StateStore.from_airflow()
    batch = batch_facts(store, first.run_id)[1]
    posted, edited = _change_two_drafts_of_batch(sandbox, batch["records"])
    second = run_dag(INV, logical_date=now - timedelta(hours=1))
    assert second.state == DagRunState.SUCCESS
    w2 = Variable.get(WATERMARK)
    assert w2 > w1
    t_runs = time.monotonic() - t0

    def jira_of(bc_id: str) -> list[dict[str, Any]]:
        rid = fields["BC Record Id"]
        return [i for i in sandbox.control("GET", "/_sandbox/jira/issues") if i["fields"].get(rid) == bc_id]

    newest = {r["id"]: r for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]}

    def assert_newest() -> None:
        p, e = jira_of(posted), jira_of(edited)
        assert len(p) == 1
        assert len(e) == 1
        assert p[0]["fields"][fields["BC Document No."]] == newest[posted]["number"]
        assert p[0]["fields"][fields["BC Status"]] == "Open"
        assert e[0]["fields"][fields["BC Amount"]] == 4321.5

    assert_newest()
    writes = jira_writes(sandbox)
    assert writes  # the syncs did write (the counts are real)
    issue_count = len(sandbox.control("GET", "/_sandbox/jira/issues"))

    server = ui_server(tmp_path / "api", outbound["state_db"])
    scheduler = None
    try:
        with evidence_on_failure(browser, tmp_path):
            resp = requests.patch(f"{server.url}/api/v2/dags/{INV}", json={"is_paused": False}, timeout=30)
            assert resp.status_code == 200, resp.text  # a deployed sync DAG runs unpaused
            scheduler = Scheduler(server)
            browser.get(server.url + ti_path(first.run_id, 1))
            # the header's icon button (CgRedo); its tooltip and aria-label say what it does
            clear = browser.find_text(CLEAR_BUTTON, "button", timeout=60)
            label = browser.attribute(clear, "aria-label")
            browser.click(clear)
            state = browser.wait(
                lambda: (s := _clear_dialog_state(browser)) and s["rows"] and s,
                timeout=30,
                what="the Clear dialog with its dry run",
            )
            assert state["options"] == {
                "Past": False,
                "Future": False,
                "Upstream": False,
                "Downstream": True,
                "Clear only failed tasks": False,
            }, state
            assert state["checkboxes"] == {"Prevent rerun if task is running": True}, state
            # the dry run: this batch and what runs after it, in this run only, every row ticked
            affected = {(r[0], int(r[2])) for r in state["rows"]}
            assert {r[3] for r in state["rows"]} == {first.run_id}, state
            assert state["rows_ticked"] == len(state["rows"]), state
            assert f"Affected Tasks: {len(affected)}" in state["text"]
            assert {("upsert", 1), ("advance_watermark", -1)} <= affected, state
            assert not {a for a in affected if a[0] in ("extract", "upsert") and a != ("upsert", 1)}, state
            if SCREENSHOTS:
                time.sleep(1)
                browser.screenshot(DOCS / "ui-clear-dialog.png")
            t_clear = time.monotonic()
            browser.click(browser.find_text("Confirm", ".chakra-dialog__content button"))
            browser.wait(lambda: not _clear_dialog_state(browser), what="the dialog to close")
            run = scheduler.wait_for_run(INV, first.run_id)
            t_replay = time.monotonic() - t_clear
            assert run["state"] == "success", run
            tis = requests.get(
                f"{server.url}/api/v2/dags/{INV}/dagRuns/{first.run_id}/taskInstances", timeout=30
            ).json()["task_instances"]
            tries = {(t["task_id"], t["map_index"]): t["try_number"] for t in tis}
            # what the dialog listed re-ran once (try 2: upsert [1] and its downstream), nothing else did
            assert {k: v for k, v in tries.items() if v != 1} == dict.fromkeys(affected, 2), tries
    finally:
        if scheduler is not None:
            scheduler.stop()
        server.stop()

    assert_newest()
    assert jira_writes(sandbox) == writes  # the replay sent nothing that changes Jira
    assert len(sandbox.control("GET", "/_sandbox/jira/issues")) == issue_count
    assert Variable.get(WATERMARK) == w2  # not moved back to the first run's
    for rec in (posted, edited):
        rows = store.query_audit(bc_id=rec, action="stale")
        assert rows
        assert rows[0].run_id == first.run_id
        assert "older than the one already synced" in rows[0].reason
    print(
        f"UI-CLEAR button {label!r}; two syncs {t_runs:.1f}s, clear -> replay done {t_replay:.1f}s; "
        f"watermark {w1} -> {w2} -> {Variable.get(WATERMARK)}"
    )

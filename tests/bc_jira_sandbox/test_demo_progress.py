"""What ``make run`` reports, against a real ``airflow api-server``: exact run counts past Airflow's page cap,
this session's green runs only (a warm re-run has older ones), and Done examples that name the right kind."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from bc_jira_sandbox import demo_progress
from tests.support.api_server import ApiServer

DAG_ID = "bc_purchase_orders_to_jira"  # a sync DAG's id on a one-task DAG: the API only needs it serialized
RUNS = 120  # more than [api] maximum_page_limit (100)


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Any:
    home = tmp_path_factory.mktemp("progress") / "airflow"
    (home / "no-dags").mkdir(parents=True)  # the support server's dags folder
    (home / "no-dags" / "one.py").write_text(
        textwrap.dedent(f"""
        from airflow.sdk import dag, task

        @dag(dag_id="{DAG_ID}", schedule=None)
        def one():
            @task
            def noop():
                pass

            noop()

        one()
        """)
    )
    server = ApiServer(home, {})
    try:
        subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "reserialize"],
            env=server.env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        yield server
    finally:
        server.stop()


def _get(server: ApiServer) -> demo_progress.Get:
    def get(path: str, params: dict[str, Any]) -> Any:
        resp = requests.get(f"{server.url}/api/v2{path}", params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()

    return get


def test_counts_and_green_runs_are_exact_past_the_page_cap_and_only_this_sessions(api) -> None:
    get = _get(api)
    before = datetime.now(UTC)
    time.sleep(0.01)
    run_ids = []
    for _ in range(RUNS):
        resp = requests.post(
            f"{api.url}/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None}, timeout=30
        )
        assert resp.status_code == 200, resp.text
        run_ids.append(resp.json()["dag_run_id"])
    assert len(get("/dags/~/dagRuns", {"limit": 500})["dag_runs"]) == 100, "Airflow caps a page at 100"
    assert demo_progress.run_counts(get) == {"queued": RUNS}
    assert demo_progress.started_since(get, DAG_ID, before)
    assert not demo_progress.green_since(get, before, [DAG_ID]), "queued runs are not green"

    done = requests.patch(
        f"{api.url}/api/v2/dags/{DAG_ID}/dagRuns/{run_ids[0]}", json={"state": "success"}, timeout=30
    )
    assert done.status_code == 200, done.text
    assert demo_progress.run_counts(get) == {"queued": RUNS - 1, "success": 1}
    assert demo_progress.green_since(get, before, [DAG_ID]) == {DAG_ID}
    later = datetime.now(UTC)  # a warm re-run starting now: the earlier session's green run does not count
    assert not demo_progress.green_since(get, later, [DAG_ID])
    assert not demo_progress.started_since(get, DAG_ID, later)


def _issue(key: str, kind: str, category: str = "new") -> dict[str, Any]:
    """The shape ``GET /_sandbox/jira/issues`` answers (Jira's issue JSON)."""
    return {
        "key": key,
        "fields": {"issuetype": {"name": kind}, "status": {"statusCategory": {"key": category}}},
    }


def test_done_examples_name_an_open_invoice_and_vendor_of_this_run_never_a_purchase_order() -> None:
    issues = [
        _issue("FIN-10", "Invoice"),
        _issue("FIN-1", "Purchase Order"),
        _issue("FIN-7", "Vendor", "done"),
        _issue("FIN-9", "Invoice", "done"),
        _issue("FIN-8", "Vendor"),
    ]
    lines = demo_progress.done_examples(issues, "http://127.0.0.1:8990")
    assert len(lines) == 2, lines
    assert '"issue": "FIN-10", "to": "Done"' in lines[0]
    assert "Invoice issue: Done posts its draft invoice in BC" in lines[0]
    assert '"issue": "FIN-8", "to": "Done"' in lines[1]
    assert "Vendor issue: Done unblocks its vendor in BC" in lines[1]
    assert all("http://127.0.0.1:8990/_sandbox/jira/transition" in line for line in lines)
    assert demo_progress.done_examples([_issue("FIN-1", "Purchase Order")], "http://x") == []

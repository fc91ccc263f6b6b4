"""Two OS processes run ``bc_purchase_invoices_to_jira`` at the same moment (issue 9, point 2).

Each process imports Airflow and the DAG, says READY, and starts ``dag.test()`` at the moment the test
gives both; they share the sandbox (one BC, one Jira), the Airflow metadata database and the state store
(SQLite file or PostgreSQL, through the ``bc_jira_db`` connection). Afterwards every new draft invoice must
have exactly one issue: zero duplicates, zero lost. Plus a backfill run beside a scheduled run.

Repetitions: ``BC_JIRA_CONCURRENCY_REPS`` (default 1 to keep CI short; the issue asks for 5, run with
``BC_JIRA_CONCURRENCY_REPS=5``). Each pair prints a ``CONCURRENCY {json}`` line with its figures
(also appended to the file ``BC_JIRA_CONCURRENCY_REPORT`` names); ``BC_JIRA_CONCURRENCY_LOGS`` keeps the
processes' logs in that folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, wipe_default_store
from tests.support import sqlite_metadata

pytestmark = pytest.mark.slow

DAG_ID = "bc_purchase_invoices_to_jira"
REPS = int(os.environ.get("BC_JIRA_CONCURRENCY_REPS", "1"))
BATCH = {150: 50, 1000: 100}
LATENCY_MS = int(
    os.environ.get("BC_JIRA_CONCURRENCY_LATENCY_MS", "150")
)  # several batches per run, so the two runs interleave batch by batch


def _state_conn(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """A fresh state store for one pair: a new SQLite file, or a new schema in the session's PostgreSQL db."""
    if backend == "sqlite":
        return {"conn_type": "sqlite", "host": str(tmp_path / f"state-{uuid.uuid4().hex[:8]}.db")}
    import sqlalchemy as sa

    url = sa.engine.make_url(request.getfixturevalue("pg_url"))
    schema = f"s_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return {
        "conn_type": "postgres",
        "host": url.host,
        "port": url.port or 5432,
        "login": url.username,
        "schema": url.database,
        "extra": {"options": f"-csearch_path={schema}"},
    }


class Pair:
    """Set up one repetition and run two processes of the DAG at the same moment."""

    def __init__(
        self,
        sandbox: Any,
        conns: dict[str, str],
        state: dict[str, Any],
        n: int,
        airflow_db: Path,
        logdir: Path,
    ) -> None:
        self.sandbox, self.n = sandbox, n
        cfg = json.loads(conns["AIRFLOW_VAR_BC_JIRA_CONFIG"])
        cfg.update(batch_size=BATCH.get(n, 50), search_settle_seconds=3)
        self.env = {
            **os.environ,
            **conns,
            "AIRFLOW_VAR_BC_JIRA_CONFIG": json.dumps(cfg),
            "AIRFLOW_CONN_BC_JIRA_DB": json.dumps(state),
            **sqlite_metadata.share(airflow_db / "airflow.db"),
            "BC_JIRA_RETRY_DELAY_SECONDS": "2",
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "include"), str(REPO), os.environ.get("PYTHONPATH", "")]
            ),
        }
        self.cfg = cfg
        self.state = state
        self.logdir = Path(os.environ.get("BC_JIRA_CONCURRENCY_LOGS") or logdir)

    def prepare(self) -> list[str]:
        """Fresh BC and Jira with ``n`` new draft invoices, no watermark, field ids discovered."""
        from airflow.models.variable import Variable

        from bc_jira.config import parse_config
        from bc_jira.hooks.jira import JiraCloudHook
        from bc_jira.setup import connect as ob
        from bc_jira.tokens import JiraTokenProvider
        from tests.support.airflow_runs import sync_dags

        sync_dags()
        self.sandbox.reset(vendors=5, invoices=0, orders=0, draft_invoices=self.n)
        wipe_default_store()  # a reset sandbox has a new OAuth grant: no token kept from the last pair
        # Real Jira answers in 100-500 ms; without latency the window between one run's link lookup and its
        # pending intents is too short for the other run to fall into it, and the test would prove nothing
        # (measured: 0 duplicates in 6 pairs with claims switched off and no latency).
        self.sandbox.options(latency_ms=LATENCY_MS)
        JiraTokenProvider._process_cache.clear()
        Variable.delete("bc_jira_watermark_purchase_invoices")
        # The Jira access token is fetched once into the pair's state store, as a running deployment has it:
        # otherwise the first process refreshes under the token lock and the second waits, which staggers
        # the two runs and hides the race this test is about.
        rep = ob.connect_checks(parse_config(self.cfg), JiraCloudHook(store=self.store()).client)
        assert rep.problems == []
        Variable.set("bc_jira_jira_fields", json.dumps(rep.fields))
        self.rid = rep.fields["BC Record Id"]
        drafts = [
            r
            for r in self.sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
            if r["status"] == "Draft"
        ]
        assert len(drafts) == self.n
        return [r["id"] for r in drafts]

    def run(self, *variants: list[str]) -> list[dict[str, Any]]:
        """Start the processes, wait until all are READY, tell them one start time, collect their RESULTs.

        Output goes to files, not pipes: a process blocked on a full pipe while it holds a lock (the token
        row, a call slot) would stall the other one.
        """
        logs = [self.logdir / f"proc-{uuid.uuid4().hex[:8]}.log" for _ in variants]
        procs = []
        for args, log in zip(variants, logs, strict=True):
            with open(log, "w", encoding="utf-8") as out:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "tests.support.run_dag_at", DAG_ID, *args],
                        cwd=REPO,
                        env=self.env,
                        stdin=subprocess.PIPE,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        text=True,
                    )
                )
        try:
            deadline = time.monotonic() + 300
            while not all("READY" in log.read_text(encoding="utf-8", errors="replace") for log in logs):
                dead = [p for p in procs if p.poll() is not None]
                assert not dead, (
                    "a process ended before READY:\n" + logs[procs.index(dead[0])].read_text()[-6000:]
                )
                assert time.monotonic() < deadline, "processes not READY in 300 s"
                time.sleep(0.1)
            start_at = time.time() + 0.5
            for p in procs:
                p.stdin.write(f"{start_at}\n")  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
            for p in procs:
                p.wait(timeout=900)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        results = []
        for p, log in zip(procs, logs, strict=True):
            text = log.read_text(encoding="utf-8", errors="replace")
            line = next((ln for ln in text.splitlines() if ln.startswith("RESULT ")), None)
            assert p.returncode == 0, f"run failed (rc {p.returncode}):\n{text[-6000:]}"
            assert line, f"run failed (rc {p.returncode}):\n{text[-6000:]}"
            results.append(json.loads(line.removeprefix("RESULT ")))
        return results

    def issues_per_record(self, ids: list[str]) -> Counter[str]:
        wanted = set(ids)
        found = Counter(
            i["fields"].get(self.rid) for i in self.sandbox.control("GET", "/_sandbox/jira/issues")
        )
        return Counter({b: found.get(b, 0) for b in wanted})

    def store(self) -> Any:
        """The state store both processes use (the pair's ``bc_jira_db`` connection)."""
        from bc_jira.store import StateStore
        from bc_jira.store.engine import url_from_connection

        class _Conn:  # the same connection the processes used
            conn_type = self.state["conn_type"]
            host = self.state.get("host")
            port = self.state.get("port")
            login = self.state.get("login")
            password = None
            schema = self.state.get("schema")
            extra_dejson = self.state.get("extra") or {}

        return StateStore.from_url(url_from_connection(_Conn()))

    def claimed_audits(self) -> int:
        return len(self.store().query_audit(entity="purchase_invoices", action="claimed", limit=100_000))


def _report(figures: dict[str, Any]) -> None:
    print("CONCURRENCY " + json.dumps(figures, sort_keys=True), flush=True)
    path = os.environ.get("BC_JIRA_CONCURRENCY_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(figures, sort_keys=True) + "\n")


@pytest.mark.parametrize("n", [150, 1000])
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_two_runs_at_once_make_one_issue_per_record(
    backend: str, n: int, sandbox, airflow_conns, airflow_db, tmp_path, request
) -> None:
    for rep in range(REPS):
        pair = Pair(sandbox, airflow_conns, _state_conn(backend, tmp_path, request), n, airflow_db, tmp_path)
        ids = pair.prepare()
        t0 = time.monotonic()
        results = pair.run([], [])
        seconds = time.monotonic() - t0
        per = pair.issues_per_record(ids)
        dup = sum(1 for c in per.values() if c > 1)
        lost = sum(1 for c in per.values() if c == 0)
        overlap = min(r["began"] + r["seconds"] for r in results) - max(r["began"] for r in results)
        _report(
            {
                "backend": backend,
                "records": n,
                "rep": rep + 1,
                "duplicates": dup,
                "extra_issues": sum(c - 1 for c in per.values() if c > 1),
                "lost": lost,
                "claimed_skips": pair.claimed_audits(),
                "pair_seconds": round(seconds, 1),
                "run_seconds": [r["seconds"] for r in results],
                "overlap_s": round(overlap, 2),
            }
        )
        assert overlap > 0, f"the two runs did not overlap: {results}"
        assert (dup, lost) == (0, 0), f"rep {rep + 1}: {dup} record(s) with 2+ issues, {lost} without one"


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_backfill_beside_a_scheduled_run_makes_one_issue_per_record(
    backend: str, sandbox, airflow_conns, airflow_db, tmp_path, request
) -> None:
    from airflow.models.variable import Variable

    pair = Pair(sandbox, airflow_conns, _state_conn(backend, tmp_path, request), 150, airflow_db, tmp_path)
    ids = pair.prepare()
    now = datetime.now(UTC)
    window = [(now - timedelta(days=30)).isoformat(), (now + timedelta(minutes=5)).isoformat()]
    results = pair.run(["--run-type", "backfill", "--interval", *window], ["--run-type", "scheduled"])
    per = pair.issues_per_record(ids)
    dup = sum(1 for c in per.values() if c > 1)
    lost = sum(1 for c in per.values() if c == 0)
    wm = Variable.get("bc_jira_watermark_purchase_invoices", default_var=None)
    _report(
        {
            "backend": backend,
            "records": 150,
            "case": "backfill beside scheduled",
            "duplicates": dup,
            "lost": lost,
            "claimed_skips": pair.claimed_audits(),
            "run_seconds": [r["seconds"] for r in results],
            "watermark": wm,
        }
    )
    assert (dup, lost) == (0, 0)
    assert wm is not None  # the scheduled run advanced it (held at most below what the backfill still had)

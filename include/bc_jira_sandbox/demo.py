"""``make run``: the connector against the sandbox, in ``airflow standalone``, from a fresh clone.

Starts (or reuses) the sandbox with realistic data, aims Airflow at it (``airflow-env``), migrates the
metadata DB in ``.airflow/``, starts ``airflow standalone`` on 127.0.0.1:8080, runs ``bc_jira_connect``
first, then unpauses the sync DAGs and reports progress. Ctrl-C stops everything this process started
(process groups); a re-run reuses ``.venv``, ``.airflow`` and the sandbox's data file.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

from bc_jira_sandbox.demo_connections import write_connections
from bc_jira_sandbox.demo_env import (
    CONFIG_VARIABLE,
    DEFAULT_PG_URL,
    airflow_env,
    clean_base_env,
    dag_ids,
    database_env,
    ensure_config_variable,
    ensure_pg_database,
    load_db_choice,
    repo_root,
    sandbox_config,
    sandbox_env,
    save_db_choice,
)
from bc_jira_sandbox.demo_http import (
    HEALTH_COMPONENTS,
    ApiError,
    answers,
    call_with_retry,
    health_problems,
    wait_for,
)
from bc_jira_sandbox.demo_processes import stop_group
from bc_jira_sandbox.demo_progress import (
    SYNC_DAGS,
    done_examples,
    green_since,
    issue_kinds,
    run_counts,
    started_since,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

# what callers (tests) know from this module; they live in the modules beside it
__all__ = [
    "CONNECT_DAG",
    "HEALTH_COMPONENTS",
    "ApiError",
    "Demo",
    "airflow_env",
    "dag_ids",
    "ensure_pg_database",
    "health_problems",
    "issue_kinds",
    "load_db_choice",
    "repo_root",
    "sandbox_config",
    "sandbox_env",
    "stop_group",
]

CONNECT_DAG = "bc_jira_connect"
SEED = {"invoices": 300, "vendors": 40, "orders": 15}


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.repo = repo_root()
        self.home = self.repo / ".airflow"
        self.logs = self.home / "demo-logs"
        self.api = f"http://127.0.0.1:{args.port}"
        self.sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.env: dict[str, str] = {}
        self.t0 = time.monotonic()
        self.started_at = datetime.now(UTC)  # this session's runs end after it (a warm DB has older ones)
        self.db_env = database_env(getattr(args, "db", "sqlite"), self.home, getattr(args, "db_url", None))
        self.unhealthy: list[str] = []

    # -- process handling ---------------------------------------------------------------------------------
    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                env=self.env,
                cwd=self.repo,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append((name, proc))
        return proc

    def alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2500:]
                raise RuntimeError(f"{name} exited with {proc.returncode}; last log lines:\n{tail}")

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                print(f"stopping {name} ...", flush=True)
            stop_group(proc, name)
        self.procs.clear()

    def say(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    # -- steps ----------------------------------------------------------------------------------------------
    def start_sandbox(self) -> None:
        if answers(f"{self.sandbox_url}/_sandbox/health"):
            self.say(f"sandbox already running on {self.sandbox_url}: reusing it")
            return
        data = self.home / "sandbox.pickle"
        self.home.mkdir(parents=True, exist_ok=True)
        self.say(
            f"starting the sandbox on {self.sandbox_url} "
            + (
                "(reusing its saved data)"
                if data.exists()
                else f"({SEED['invoices']} invoices, {SEED['vendors']} vendors, {SEED['orders']} orders)"
            )
        )
        self.spawn(
            "sandbox",
            [
                sys.executable,
                "-m",
                "bc_jira_sandbox",
                "serve",
                "--port",
                str(self.args.sandbox_port),
                "--seed-invoices",
                str(SEED["invoices"]),
                "--seed-vendors",
                str(SEED["vendors"]),
                "--seed-orders",
                str(SEED["orders"]),
                "--notify-delay-s",
                "5",
                "--data",
                str(data),
            ],
        )
        wait_for("sandbox", lambda: answers(f"{self.sandbox_url}/_sandbox/health"), 60, self.alive, 0.3)

    def prepare_airflow(self) -> None:
        self.db_env = database_env(
            getattr(self.args, "db", "sqlite"), self.home, getattr(self.args, "db_url", None)
        )
        self.env = {
            **clean_base_env(),
            **airflow_env(self.repo, self.home, self.args.port),
            **self.db_env,
        }
        if answers(f"{self.api}/api/v2/version"):
            raise RuntimeError(
                f"something already answers on {self.api} (another `make run`?): "
                "stop it first, or pass --port"
            )
        url = self.db_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        if url.startswith("postgresql") and ensure_pg_database(url):
            self.say(f"created the demo's database {url.rsplit('/', 1)[-1]}")
        self.home.mkdir(parents=True, exist_ok=True)
        save_db_choice(self.home, self.db_env)
        self.say(f"airflow db migrate ({url.split('@')[-1]})")
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            cwd=self.repo,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        written = write_connections(self.env, self.repo, sandbox_env(self.sandbox_url))
        self.say(f"{' and '.join(written)} written to Admin > Connections, aimed at the sandbox (Test works)")
        if ensure_config_variable(self.env, self.repo, sandbox_config(self.sandbox_url)):
            self.say(f"{CONFIG_VARIABLE} written to Admin > Variables (edit it there; a re-run keeps it)")
        else:
            self.say(f"{CONFIG_VARIABLE} found in Admin > Variables: keeping it")

    def start_airflow(self) -> None:
        self.say(f"starting airflow standalone on {self.api} (log: .airflow/demo-logs/standalone.log)")
        self.spawn("standalone", [sys.executable, "-m", "airflow", "standalone"])

        def healthy() -> bool:
            h = requests.get(f"{self.api}/api/v2/monitor/health", timeout=5).json()
            return all(
                h[c]["status"] == "healthy"
                for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        wait_for("airflow standalone healthy", healthy, 180, self.alive)
        self.say("Airflow is healthy")

    def rest(self, method: str, path: str, **kw: Any) -> Any:
        resp = call_with_retry(
            lambda: requests.request(method, f"{self.api}/api/v2{path}", timeout=30, **kw),
            f"{method} /api/v2{path}",
        )
        return resp.json() if resp.content else None

    def watch_health(self) -> None:
        """Say when an Airflow component stops being healthy (and when it is back), once per change."""
        try:
            health = requests.get(f"{self.api}/api/v2/monitor/health", timeout=10).json()
        except (requests.RequestException, ValueError) as exc:
            problems = [f"the API server does not answer its health check ({type(exc).__name__})"]
        else:
            problems = health_problems(health)
        if problems != self.unhealthy:
            if problems:
                self.say(
                    "AIRFLOW IS UNHEALTHY: "
                    + "; ".join(problems)
                    + " - runs will not progress; read .airflow/demo-logs/standalone.log, "
                    "then Ctrl-C and re-run `make run`"
                )
            else:
                self.say("Airflow is healthy again: " + ", ".join(HEALTH_COMPONENTS))
            self.unhealthy = problems

    def wait_dags(self, ids: Iterable[str]) -> None:
        want = set(ids)

        def parsed() -> bool:
            have = {d["dag_id"] for d in self.rest("GET", "/dags", params={"limit": 100})["dags"]}
            return want <= have

        wait_for(f"DAGs parsed ({', '.join(sorted(want))})", parsed, 120, self.alive, 2)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        return self.rest("GET", path, params=params)

    def unpause(self, dag_id: str) -> None:
        self.rest("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str) -> str:
        return self.rest("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})["dag_run_id"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        def done() -> str | None:
            state = self.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            return state if state in ("success", "failed") else None

        return wait_for(f"{dag_id} run", done, timeout, self.alive, 2)

    def connect_then_sync(self) -> list[str]:
        ids = dag_ids(self.repo / "dags")
        self.wait_dags(ids)
        self.say(f"{len(ids)} DAGs parsed; running {CONNECT_DAG} first (cloudId, custom field ids, users)")
        self.unpause(CONNECT_DAG)
        state = self.wait_run(CONNECT_DAG, self.trigger(CONNECT_DAG), 180)
        if state != "success":
            raise RuntimeError(
                f"{CONNECT_DAG} failed: open {self.api}/dags/{CONNECT_DAG} and read the "
                "task log (every problem is listed there with its fix)"
            )
        self.say(f"{CONNECT_DAG} succeeded; unpausing the sync DAGs")
        for dag_id in ids:
            if dag_id != CONNECT_DAG:
                self.unpause(dag_id)
        # An unpaused cron DAG normally starts a run at once; start any that did not (a warm re-run's were
        # unpaused already), so the subscriptions, the Jira webhook and the syncs happen now, not at a tick.
        time.sleep(5)
        for dag_id in ids:
            if dag_id != CONNECT_DAG and not started_since(self._get, dag_id, self.started_at):
                self.trigger(dag_id)
        return ids

    def banner(self, ids: list[str]) -> None:
        sb = self.sandbox_url
        project = "FIN"
        with contextlib.suppress(requests.RequestException, ValueError):
            project = sandbox_config(sb).get("project_key", project)
        print(
            f"""
bc-jira demo is running (Ctrl-C stops everything this command started)

  Airflow UI      {self.api}            no login (local all-admins mode, bound to 127.0.0.1)
  audit page      {self.api}/plugin/bc-jira-audit   (Browse > bc-jira audit)
  DAGs            {", ".join(ids)}
  sandbox         {sb}   (BC + Entra + Atlassian + Jira emulated; data in .airflow/sandbox.pickle)
  Jira board      {sb}/site/jira/core/projects/{project}/board   issues by status, a Done button on each
  an issue        {sb}/site/browse/{project}-1   (the issue links the connector writes land here)
  BC web client   {sb}/bc-web   purchase invoices, vendors, purchase orders; New draft invoice, Block buttons
  sandbox stats   {sb}/_sandbox/stats

What happens now: the three sync DAGs read draft purchase invoices, blocked vendors and purchase orders in
review from BC and create one {project} issue each in mapped batches (refresh the UI's grid view). BC change
notifications reach {self.api}/bc-jira/bc/notifications and start the invoice/vendor DAGs within seconds.

Press Done on the board (or move an issue with curl) as a Jira user would; the Jira webhook starts
jira_transitions_to_bc, which acts by the issue's type (the tag on each card): an Invoice issue posts the
draft invoice in BC, a Vendor issue unblocks the vendor, and it comments on the issue; a Purchase Order issue
only resolves in Jira (nothing in BC, no comment). Which kind {project}-1 is depends on which sync finished
first (the board's type tabs show each kind; the lines printed when the syncs are green name this run's keys).
The same from a script (JSON of every issue, with its "issuetype": {sb}/_sandbox/jira/issues):
  curl -s -X POST {sb}/_sandbox/jira/transition -H 'Content-Type: application/json' \\
       -d '{{"issue": "{project}-1", "to": "Done"}}'
Enter a new draft invoice in BC as a user would (New draft invoice on {sb}/bc-web?page=9308,
or curl); its BC notification starts the sync and a new issue follows:
  curl -s -X POST {sb}/_sandbox/bc/change -H 'Content-Type: application/json' \\
       -d '{{"entity": "purchaseInvoices", "create": {{}}}}'
""",
            flush=True,
        )

    def progress(self) -> None:
        """One line whenever the run states or the issue count change; the first all-green moment is timed."""
        last, first_green = "", None
        while True:
            self.alive()
            self.watch_health()
            if self.unhealthy:
                time.sleep(5)
                continue
            try:
                states = run_counts(self._get)
                synced = green_since(self._get, self.started_at) if first_green is None else set()
                issues = requests.get(f"{self.sandbox_url}/_sandbox/jira/issues", timeout=30).json()
            except (requests.RequestException, ValueError):
                time.sleep(5)
                continue
            n_issues = len(issues)
            line = f"runs {states}, sandbox Jira holds {n_issues} issues"
            if line != last:
                self.say(line)
                last = line
            if first_green is None and set(SYNC_DAGS) <= synced and n_issues:
                first_green = time.monotonic() - self.t0
                self.say(
                    f"first green runs of all three sync DAGs after {first_green:.0f} s "
                    f"({n_issues} issues in the sandbox Jira: {issue_kinds(issues)}; Done acts by kind)"
                )
                examples = done_examples(issues, self.sandbox_url)
                print("\n".join(["Move one to Done (this run's keys):", *examples]), flush=True)
                if self.args.exit_when_green:
                    return
            time.sleep(5)

    def run(self) -> int:
        try:
            self.start_sandbox()
            self.prepare_airflow()
            self.start_airflow()
            ids = self.connect_then_sync()
            self.banner(ids)
            self.progress()
        except KeyboardInterrupt:
            print("\nCtrl-C: stopping", flush=True)
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError, requests.RequestException) as exc:
            detail = (
                exc.stderr.decode(errors="replace")[-2000:]
                if isinstance(exc, subprocess.CalledProcessError) and exc.stderr
                else ""
            )
            print(f"\nmake run failed: {exc}\n{detail}\nlogs: {self.logs}", file=sys.stderr, flush=True)
            return 1
        finally:
            self.stop()
        return 0


def _on_signal(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bc_jira_sandbox.demo", description=__doc__)
    parser.add_argument("--port", type=int, default=8080, help="Airflow api-server port")
    parser.add_argument("--sandbox-port", type=int, default=8990)
    parser.add_argument(
        "--exit-when-green",
        action="store_true",
        help="stop everything once the three sync DAGs had a green run (timing, CI)",
    )
    parser.add_argument(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="metadata DB: embedded SQLite (default) or PostgreSQL with the LocalExecutor (backfills)",
    )
    parser.add_argument("--db-url", default=None, help=f"PostgreSQL URL (default {DEFAULT_PG_URL})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Both explicitly: a shell starting us in the background leaves SIGINT ignored; Ctrl-C must still work.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())

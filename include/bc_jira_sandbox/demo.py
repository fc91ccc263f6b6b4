"""``make run``: the connector against the sandbox, in ``airflow standalone``, from a fresh clone.

Starts (or reuses) the sandbox with realistic data, aims Airflow at it (``airflow-env``), migrates the
metadata DB in ``.airflow/``, starts ``airflow standalone`` on 127.0.0.1:8080, runs ``bc_jira_connect``
first, then unpauses the sync DAGs and reports progress. Ctrl-C stops everything this process started
(process groups); a re-run reuses ``.venv``, ``.airflow`` and the sandbox's data file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

log = logging.getLogger("bc_jira_sandbox.demo")

CONNECT_DAG = "bc_jira_connect"
SEED = {"invoices": 300, "vendors": 40, "orders": 15}
_DAG_ID_RE = re.compile(r"""dag_id\s*=\s*["']([A-Za-z0-9_.-]+)["']""")


def repo_root() -> Path:
    """The checkout this module lives in (editable install), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "dags").is_dir() else Path.cwd()


def dag_ids(dags_folder: Path) -> list[str]:
    """The connector's DAG ids, read from the DAG files (no import: the demo must not parse DAGs itself)."""
    ids: list[str] = []
    for path in sorted(dags_folder.glob("*.py")):
        ids += [m for m in _DAG_ID_RE.findall(path.read_text()) if m not in ids]
    return ids


def airflow_env(repo: Path, home: Path, api_port: int) -> dict[str, str]:
    """Airflow settings for the demo (everything else stays at Airflow's defaults)."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(repo / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(repo / "plugins"),
        # Created paused, unpaused here in order: bc_jira_connect must finish before the syncs start.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "20",
        # Local demo: no login, and nothing listens beyond this machine.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # 4 LocalExecutor workers are plenty here (default 32 forks ~1 GB).
        "AIRFLOW__CORE__PARALLELISM": "8",
        # Short retry delays so a hiccup in the demo heals in seconds, not minutes.
        "BC_JIRA_RETRY_DELAY_SECONDS": "15",
    }


def sandbox_env(sandbox_url: str) -> dict[str, str]:
    """``eval "$(python -m bc_jira_sandbox airflow-env)"`` as a dict (the running sandbox's credentials)."""
    from bc_jira_sandbox.__main__ import airflow_env_lines

    creds = requests.get(f"{sandbox_url}/_sandbox/credentials", timeout=10).json()
    env = {}
    for line in airflow_env_lines(sandbox_url, creds):
        key, _, value = line.removeprefix("export ").partition("=")
        env[key] = shlex.split(value)[0]
    return env


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code < 500
    except requests.RequestException:
        return False


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    alive: Callable[[], None] | None = None,
    interval: float = 1.0,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if alive:
            alive()
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)


def stop_group(proc: subprocess.Popen, name: str, grace: float = 25.0) -> None:
    """SIGTERM the process group; SIGKILL whatever of the group is left after ``grace`` seconds.

    The leader (e.g. ``airflow standalone``) may exit before its children finished shutting down, so the
    whole group is waited for, not just the leader.
    """
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(proc.pid) or proc.poll() is None:
        log.warning("%s did not stop in %.0f s: killing what is left", name, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
        }
        base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
        self.env = {
            **base,
            **airflow_env(self.repo, self.home, self.args.port),
            **sandbox_env(self.sandbox_url),
        }
        if answers(f"{self.api}/api/v2/version"):
            raise RuntimeError(
                f"something already answers on {self.api} (another `make run`?): "
                "stop it first, or pass --port"
            )
        self.say("airflow db migrate (.airflow/airflow.db)")
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env,
            cwd=self.repo,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

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
        resp = requests.request(method, f"{self.api}/api/v2{path}", timeout=30, **kw)
        resp.raise_for_status()
        return resp.json() if resp.content else None

    def wait_dags(self, ids: Iterable[str]) -> None:
        want = set(ids)

        def parsed() -> bool:
            have = {d["dag_id"] for d in self.rest("GET", "/dags", params={"limit": 100})["dags"]}
            return want <= have

        wait_for(f"DAGs parsed ({', '.join(sorted(want))})", parsed, 120, self.alive, 2)

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
        # An unpaused cron DAG normally starts a run at once; start any that did not, so the subscriptions,
        # the Jira webhook and the first syncs happen now rather than at their next cron tick.
        time.sleep(5)
        for dag_id in ids:
            if (
                dag_id != CONNECT_DAG
                and not self.rest("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 1})["dag_runs"]
            ):
                self.trigger(dag_id)
        return ids

    def banner(self, ids: list[str]) -> None:
        sb = self.sandbox_url
        project = json.loads(self.env.get("AIRFLOW_VAR_BC_JIRA_CONFIG", "{}")).get("project_key", "FIN")
        print(
            f"""
bc-jira demo is running (Ctrl-C stops everything this command started)

  Airflow UI      {self.api}            no login (local all-admins mode, bound to 127.0.0.1)
  audit page      {self.api}/plugin/bc-jira-audit   (Browse > bc-jira audit)
  DAGs            {", ".join(ids)}
  sandbox         {sb}   (BC + Entra + Atlassian + Jira emulated; data in .airflow/sandbox.pickle)
  sandbox Jira    {sb}/_sandbox/jira/issues        every issue, no search lag
  sandbox stats   {sb}/_sandbox/stats

What happens now: the three sync DAGs read draft purchase invoices, blocked vendors and purchase orders in
review from BC and create one {project} issue each in mapped batches (refresh the UI's grid view). BC change
notifications reach {self.api}/bc-jira/bc/notifications and start the invoice/vendor DAGs within seconds.

Move an issue to Done as a Jira user would; the Jira webhook starts jira_transitions_to_bc, which posts the
draft invoice in BC (or unblocks the vendor) and comments on the issue:
  curl -s -X POST {sb}/_sandbox/jira/transition -H 'Content-Type: application/json' \\
       -d '{{"issue": "{project}-1", "to": "Done"}}'
Enter a new draft invoice in BC as a user would (a BC notification starts the sync; a new issue follows):
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
            try:
                runs = self.rest("GET", "/dags/~/dagRuns", params={"limit": 500})["dag_runs"]
                n_issues = len(requests.get(f"{self.sandbox_url}/_sandbox/jira/issues", timeout=30).json())
            except (requests.RequestException, ValueError):
                time.sleep(5)
                continue
            states: dict[str, int] = {}
            for r in runs:
                states[r["state"]] = states.get(r["state"], 0) + 1
            synced = {r["dag_id"] for r in runs if r["state"] == "success"}
            line = f"runs {dict(sorted(states.items()))}, sandbox Jira holds {n_issues} issues"
            if line != last:
                self.say(line)
                last = line
            outbound = {"bc_purchase_invoices_to_jira", "bc_vendors_to_jira", "bc_purchase_orders_to_jira"}
            if first_green is None and outbound <= synced and n_issues:
                first_green = time.monotonic() - self.t0
                self.say(
                    f"first green runs of all three sync DAGs after {first_green:.0f} s "
                    f"({n_issues} issues in the sandbox Jira)"
                )
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
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # Both explicitly: a shell starting us in the background leaves SIGINT ignored; Ctrl-C must still work.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())

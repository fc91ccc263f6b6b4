"""The docker-compose topology, natively: PostgreSQL + Redis + CeleryExecutor with two workers.

Starts ``airflow api-server``, ``scheduler``, ``dag-processor``, ``triggerer`` and two
``airflow celery worker`` processes (distinct ``--celery-hostname`` and node names) in a
temporary AIRFLOW_HOME against a fresh PostgreSQL database and an empty Redis db number,
runs ``bc_purchase_invoices_to_jira`` against the sandbox with small batches, and checks
that the mapped batches ran on both workers and that no BC record got two issues.

Each worker process reports its own name as the task-instance ``hostname``
(``[core] hostname_callable``), as two containers of the compose file would; that is how
the test tells the workers apart on one machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.conftest import IN_CI, REPO

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
DAG_ID = "bc_purchase_invoices_to_jira"
WORKERS = ("worker-a", "worker-b")
PG_ADMIN = os.environ.get("BC_JIRA_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
SEED = {"vendors": 10, "invoices": 40, "orders": 3}

HOSTNAME_MODULE = '''
"""Node name for this test: each process of the cluster says who it is (like a container hostname)."""
import os
import socket


def hostname() -> str:
    return os.environ.get("BC_JIRA_NODE_NAME") or socket.getfqdn()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the distributed test must not skip)")
    pytest.skip(reason)


def _free_redis_db() -> int:
    """An empty Redis database number (the broker must not see another run's messages)."""
    try:
        import redis
    except ImportError:  # pragma: no cover - requirements.txt installs it with celery[redis]
        _unavailable("python package redis missing (pip install -r requirements.txt)")
    for n in range(15, 0, -1):
        try:
            client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=n, socket_connect_timeout=2)
            if client.dbsize() == 0:
                return n
        except redis.RedisError as exc:
            _unavailable(f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: {type(exc).__name__}")
    _unavailable("no empty Redis database number among 1..15")
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _pg_database(prefix: str) -> Iterator[str]:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: unavailable, with its name
        admin.dispose()
        _unavailable(f"PostgreSQL not reachable at {PG_ADMIN.split('@')[-1]}: {type(exc).__name__}")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Cluster:
    """Airflow processes in their own process groups; ``stop()`` ends every one of them."""

    def __init__(self, home: Path, env: dict[str, str], api_port: int) -> None:
        self.home = home
        self.env = env
        self.api = f"http://127.0.0.1:{api_port}"
        self.api_port = api_port
        self.procs: dict[str, subprocess.Popen] = {}
        self.t0 = time.monotonic()

    def airflow(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            cwd=self.home,
            timeout=timeout,
            capture_output=True,
            text=True,
            check=True,
        )

    def start(self, name: str, *args: str, **env: str) -> None:
        log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        self.procs[name] = subprocess.Popen(
            [str(BIN / "airflow"), *args],
            env={**self.env, "BC_JIRA_NODE_NAME": name, **env},
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def log_tail(self, name: str, n: int = 3000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")

    def wait_for(self, what: str, fn, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(requests.RequestException):
                last = fn()
                if last:
                    return last
            time.sleep(0.5)
        logs = "\n".join(f"--- {n}\n{self.log_tail(n, 1500)}" for n in self.procs)
        raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n{logs}")

    def rest(self, method: str, path: str, **kw: Any) -> Any:
        resp = requests.request(method, f"{self.api}/api/v2{path}", timeout=30, **kw)
        assert resp.status_code < 300, f"{method} {path} -> {resp.status_code} {resp.text[:500]}"
        return resp.json()

    def healthy(self) -> bool:
        health = requests.get(f"{self.api}/api/v2/monitor/health", timeout=5).json()
        return all(
            health.get(c, {}).get("status") == "healthy"
            for c in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def worker_ready(self, name: str) -> bool:
        return "ready." in self.log_tail(name, 20000)

    def trigger(self, dag_id: str) -> str:
        """Queue a manual run, then unpause (a cron DAG may add its own scheduled run: both are checked)."""
        self.wait_for(f"{dag_id} parsed", lambda: self.rest("GET", f"/dags/{dag_id}"), 60)
        run_id = self.rest("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None})["dag_run_id"]
        self.rest("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return run_id

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.rest("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]

    def wait_all_done(self, dag_id: str, timeout: float = 120) -> list[dict[str, Any]]:
        def done() -> list[dict[str, Any]] | None:
            runs = self.runs(dag_id)
            return runs if runs and all(r["state"] in ("success", "failed") for r in runs) else None

        return self.wait_for(f"every {dag_id} run finished", done, timeout)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.rest("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})[
            "task_instances"
        ]

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.procs.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.procs.values():  # the whole group: workers' pool and task children too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


def _base_env(home: Path, meta_url: str, redis_db: int, api_port: int, dags: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join([str(home), env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta_url.replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            # Paused until the test says so: an unpaused cron DAG starts a run of its own at once.
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": "bIJ1DAwN0Fq6Q4vLdn9JzsP2kKx3tE0u5Yx8mV7rT1c=",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "bc_jira_dist_hostname.hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "BC_JIRA_RETRY_DELAY_SECONDS": "2",
        }
    )
    return env


def _companies(sandbox) -> list[dict[str, str]]:
    """Every sandbox company by id; company 1 (the connection's) keeps project_key, the others get CO<n>."""
    entries: list[dict[str, str]] = []
    for index, company in enumerate(sandbox.control("GET", "/_sandbox/bc/companies")["value"]):
        entry = {"id": company["id"]}
        if index:
            key = f"CO{index + 1}"
            sandbox.control("POST", "/_sandbox/jira/projects", {"key": key, "name": company["name"]})
            entry["project_key"] = key
        entries.append(entry)
    return entries


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, sandbox) -> Iterator[Cluster]:
    """The compose topology on this machine, aimed at the session's sandbox; torn down even on failure.
    ``request.param`` (indirect): BC companies to sync (default 1: no ``companies`` section); with more, the
    second and later companies each get their own Jira project ``CO<n>`` and smaller batches."""
    n_companies = getattr(request, "param", 1)
    redis_db = _free_redis_db()
    home = tmp_path / "airflow"
    home.mkdir()
    (home / "bc_jira_dist_hostname.py").write_text(HOSTNAME_MODULE)
    api_port = _free_port()
    with _pg_database("bc_jira_dist_meta") as meta_url, _pg_database("bc_jira_dist_state") as state_url:
        env = _base_env(home, meta_url, redis_db, api_port, REPO / "dags")
        sandbox.reset(**SEED, companies=n_companies)  # before reading the env: a new OAuth grant
        env.update(sandbox.env())
        cfg = json.loads(env["AIRFLOW_VAR_BC_JIRA_CONFIG"])
        cfg.update(batch_size=5 if n_companies == 1 else 3)
        if n_companies > 1:
            cfg["companies"] = _companies(sandbox)
        env["AIRFLOW_VAR_BC_JIRA_CONFIG"] = json.dumps(cfg)
        env["AIRFLOW_CONN_BC_JIRA_DB"] = state_url.replace("+psycopg2", "")
        c = Cluster(home, env, api_port)
        try:
            c.airflow("db", "migrate")
            c.start("api-server", "api-server", "--port", str(api_port))
            c.start("scheduler", "scheduler")
            c.start("dag-processor", "dag-processor")
            c.start("triggerer", "triggerer")
            for name in WORKERS:
                c.start(
                    name,
                    "celery",
                    "worker",
                    "--celery-hostname",
                    f"{name}@%h",
                    "--concurrency",
                    "2",
                    "--skip-serve-logs",
                )
            c.wait_for("api-server, scheduler, triggerer, dag-processor healthy", c.healthy, 90)
            for name in WORKERS:
                c.wait_for(f"{name} ready", lambda n=name: c.worker_ready(n), 60)
            c.startup_s = time.monotonic() - c.t0
            yield c
        finally:
            c.stop()
            import redis

            redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db).flushdb()


def test_mapped_batches_spread_over_two_celery_workers_without_duplicates(cluster: Cluster, sandbox) -> None:
    """Several mapped batches, two workers, one issue per draft invoice."""
    drafts = [
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    ]
    assert len(drafts) >= 15, "the seed must give several batches of 5"

    cluster.trigger("bc_jira_connect")
    connect = cluster.wait_all_done("bc_jira_connect", 60)
    assert [r["state"] for r in connect] == ["success"], cluster.log_tail("worker-a")

    t0 = time.monotonic()
    cluster.trigger(DAG_ID)
    runs = cluster.wait_all_done(DAG_ID, 150)
    run_s = time.monotonic() - t0
    tis = [t for r in runs for t in cluster.task_instances(DAG_ID, r["dag_run_id"])]
    states = [(t["task_id"], t["map_index"], t["state"]) for t in tis]
    assert all(r["state"] == "success" for r in runs), states

    upserts = [t for t in tis if t["task_id"] == "upsert" and t["state"] == "success"]
    assert len(upserts) >= 3, f"several mapped batches: {[(t['map_index'], t['state']) for t in tis]}"
    hosts = Counter(t["hostname"] for t in upserts)
    assert set(hosts) == set(WORKERS), f"batches per worker: {dict(hosts)}"
    ran_on = {t["hostname"] for t in tis if t["state"] == "success"}
    assert ran_on <= set(WORKERS), f"every task ran on a Celery worker: {ran_on}"

    fields = json.loads(cluster.rest("GET", "/variables/bc_jira_jira_fields")["value"])
    per_record = Counter(
        i["fields"].get(fields["BC Record Id"]) for i in sandbox.control("GET", "/_sandbox/jira/issues")
    )
    assert {r["id"] for r in drafts} <= set(per_record)
    dupes = {rid: n for rid, n in per_record.items() if n > 1}
    assert not dupes, f"duplicate issues: {dupes}"
    print(
        f"\ncluster up in {cluster.startup_s:.1f}s; {len(runs)} run(s), {len(upserts)} batches ran "
        f"{dict(hosts)} in {run_s:.1f}s; {len(drafts)} drafts -> {len(per_record)} issues"
    )


@pytest.mark.parametrize("cluster", [2], indirect=True)
def test_two_companies_batches_spread_over_both_workers_without_duplicates(cluster: Cluster, sandbox) -> None:
    """Two companies in one run: each company's batches run on both workers, every draft of each company
    gets exactly one issue in its company's project, and each company's watermark advances."""
    from bc_jira.config.companies import company_key

    cfg = json.loads(cluster.env["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    entries = cfg["companies"]
    drafts = {
        e["id"]: {
            r["id"]
            for r in sandbox.control("GET", f"/_sandbox/bc/records/purchaseInvoices?company={e['id']}")[
                "value"
            ]
            if r["status"] == "Draft"
        }
        for e in entries
    }
    assert all(len(d) >= 9 for d in drafts.values()), "each company needs several batches of 3"
    assert not set.intersection(*drafts.values()), "the companies' records are their own"

    cluster.trigger("bc_jira_connect")
    connect = cluster.wait_all_done("bc_jira_connect", 90)
    assert [r["state"] for r in connect] == ["success"], cluster.log_tail("worker-a")

    t0 = time.monotonic()
    cluster.trigger(DAG_ID)
    runs = cluster.wait_all_done(DAG_ID, 240)
    run_s = time.monotonic() - t0
    tis = [t for r in runs for t in cluster.task_instances(DAG_ID, r["dag_run_id"])]
    assert all(r["state"] == "success" for r in runs), [
        (t["task_id"], t["map_index"], t["state"]) for t in tis
    ]
    assert {t["hostname"] for t in tis if t["state"] == "success"} <= set(WORKERS)

    # which company each upsert served: its rendered label starts with the company (an entry by id: its key)
    env = sandbox.creds["environment"]
    names = {c["id"]: c["name"] for c in sandbox.control("GET", "/_sandbox/bc/companies")["value"]}
    keys = {e["id"]: company_key("bc_default", env, e["id"]) for e in entries}
    upserts = [t for t in tis if t["task_id"] == "upsert" and t["state"] == "success"]
    hosts: dict[str, Counter[str]] = {}
    for t in upserts:
        label = t.get("rendered_map_index") or ""
        company = next(
            (cid for cid, key in keys.items() if label.startswith((f"{key} ", f"{names[cid]} "))), None
        )
        assert company is not None, f"upsert {t['map_index']} label {label!r} names no company"
        hosts.setdefault(company, Counter())[t["hostname"]] += 1
    assert set(hosts) == set(drafts), f"batches per company: {hosts}"
    for company, per_host in hosts.items():
        assert set(per_host) == set(WORKERS), f"{names[company]}'s batches per worker: {dict(per_host)}"

    fields = json.loads(cluster.rest("GET", "/variables/bc_jira_jira_fields")["value"])
    projects = {e["id"]: e.get("project_key", cfg["project_key"]) for e in entries}
    issues = sandbox.control("GET", "/_sandbox/jira/issues")
    per_record = Counter(i["fields"].get(fields["BC Record Id"]) for i in issues)
    assert not {rid: n for rid, n in per_record.items() if n > 1}, "duplicate issues"
    for company, mine in drafts.items():
        in_project = {
            i["fields"].get(fields["BC Record Id"])
            for i in issues
            if i["fields"]["project"]["key"] == projects[company]
        }
        assert mine <= in_project, f"{names[company]}: drafts without an issue in {projects[company]}"
        assert not (in_project - mine) & set().union(*drafts.values()), "another company's record"

    for index, e in enumerate(entries):
        suffix = "" if index == 0 else "__" + keys[e["id"]]
        mark = cluster.rest("GET", f"/variables/bc_jira_watermark_purchase_invoices{suffix}")["value"]
        assert mark, f"{names[e['id']]}: watermark not advanced"
    print(
        f"\ncluster up in {cluster.startup_s:.1f}s; {len(upserts)} batches of 2 companies ran "
        f"{ {names[c]: dict(h) for c, h in hosts.items()} } in {run_s:.1f}s; "
        f"{sum(len(d) for d in drafts.values())} drafts -> {len(per_record)} issues"
    )

"""What every bench measurement shares: the sandbox process, the step processes and their environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, latency_ms: int, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"sandbox-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bc_jira_sandbox",
                "serve",
                "--port",
                str(self.port),
                "--seed-invoices",
                "0",
                "--seed-orders",
                "0",
                "--seed-vendors",
                "60",
                "--latency-ms",
                str(latency_ms),
                "--search-lag-s",
                "2",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                if requests.get(f"{self.url}/_sandbox/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError("sandbox did not start")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(method, f"{self.url}{path}", json=body, timeout=1800)  # a 100k seed
        resp.raise_for_status()
        return resp.json()

    def env(self) -> dict[str, str]:
        import shlex

        out = subprocess.run(
            [sys.executable, "-m", "bc_jira_sandbox", "airflow-env", "--port", str(self.port)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {
            k.removeprefix("export "): shlex.split(v)[0]
            for k, _, v in (line.partition("=") for line in out.splitlines())
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def _sqlite_conn(home: Path) -> str:
    """``bc_jira_db`` as the SQLite file the connector would default to in that Airflow home."""
    return json.dumps({"conn_type": "sqlite", "host": str(home / "bc_jira_state.db")})


def _run_step(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float, float]:
    """Run one step process; return (its JSON answer, wall seconds, peak RSS MB)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate()
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bench step {args[0]} failed:\n{err[-4000:]}")
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    answer = json.loads(line[6:])
    return answer, wall, answer.get("peak_rss_mb", 0.0)


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a live process, from ``/proc/<pid>/stat`` (utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bench_env(sb: Sandbox, home: Path, batch_size: int) -> dict[str, str]:
    env = {
        **os.environ,
        **sb.env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        # named explicitly: these processes have no Airflow metadata DB, and the connector's connection
        # lookup fails closed when a backend it must ask (the metadata DB) cannot answer
        "AIRFLOW_CONN_BC_JIRA_DB": _sqlite_conn(home),
    }
    cfg = json.loads(env["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    cfg["batch_size"] = batch_size
    env["AIRFLOW_VAR_BC_JIRA_CONFIG"] = json.dumps(cfg)
    home.mkdir(parents=True, exist_ok=True)
    return env

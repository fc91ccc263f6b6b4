"""A real ``airflow scheduler`` (LocalExecutor) beside a :class:`~tests.support.api_server.ApiServer`.

Same AIRFLOW_HOME, metadata DB and JWT secret as the api-server, whose ``/execution/`` API the task
processes call (Variables, XComs, state). ``[scheduler] use_job_schedule`` is off: the scheduler runs what
is already queued (a run cleared in the UI) and creates no scheduled runs of its own, so a test sees only
the work it asked for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import requests

if TYPE_CHECKING:
    from tests.support.api_server import ApiServer

FINISHED = ("success", "failed")


class Scheduler:
    """``airflow scheduler`` in its own process group; ``stop()`` ends it and its task processes."""

    def __init__(self, server: ApiServer, *, parallelism: int = 2) -> None:
        self.server = server
        self.env = {
            **server.env,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{server.url}/execution/",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        }
        self.log_path = server.home / "scheduler.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "airflow"), "scheduler"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict:
        """Poll the REST API until the run is finished; fails early on a task waiting for a retry."""
        base = f"{self.server.url}/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, f"scheduler exited\n{self.log_text()[-4000:]}"
            run = requests.get(base, timeout=10).json()
            if run.get("state") in FINISHED:
                return run
            tis = requests.get(f"{base}/taskInstances", timeout=10).json().get("task_instances", [])
            retrying = [(t["task_id"], t["map_index"]) for t in tis if t["state"] == "up_for_retry"]
            assert not retrying, f"tasks failed and wait for a retry: {retrying}\n{self.log_text()[-4000:]}"
            assert time.monotonic() < deadline, (
                f"run {run_id} still {run.get('state')} after {timeout}s: "
                f"{[(t['task_id'], t['map_index'], t['state']) for t in tis]}\n{self.log_text()[-4000:]}"
            )
            time.sleep(1)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self._log.close()

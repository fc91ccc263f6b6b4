"""A real ``airflow api-server`` with this repository's plugin, in its own AIRFLOW_HOME (SQLite metadata DB).

Used by tests that must go through what production runs: Airflow's plugin mounting, its connection lookup
and secrets backends, uvicorn. Start it with the environment the test needs (connections as
``AIRFLOW_CONN_*``, a secrets backend, ...).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiServer:
    """``airflow api-server`` on a free port; ``url`` is its root, ``log_text()`` what it logged."""

    def __init__(self, home: Path, env_extra: dict[str, str], *, plugins: Path | None = None) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.update(
            {
                "AIRFLOW_HOME": str(home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_FOLDER": str(home / "no-dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins or REPO / "plugins"),
                "AIRFLOW__CORE__FERNET_KEY": os.environ["AIRFLOW__CORE__FERNET_KEY"],
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API_AUTH__JWT_SECRET": "support-api-server-" + "x" * 64,
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # the package and the tests' support modules (a custom secrets backend lives there)
                "PYTHONPATH": os.pathsep.join([str(REPO / "include"), str(REPO)]),
                **env_extra,
            }
        )
        self.env = env
        bin_dir = Path(sys.executable).parent
        subprocess.run(
            [str(bin_dir / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True, timeout=180
        )
        self.log_path = home / "api-server.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [str(bin_dir / "airflow"), "api-server", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc.poll() is None, self.log_text()[-3000:]
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/api/v2/version", timeout=2).ok:
                    return
            assert time.monotonic() < deadline, (
                f"api-server did not answer in {timeout}s\n{self.log_text()[-3000:]}"
            )
            time.sleep(0.3)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self._log.close()


def conn_env(conn_id: str, value: dict) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` for a connection given as JSON."""
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(value)}

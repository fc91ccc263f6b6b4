"""Shared fixtures: an isolated Airflow home, a real sandbox over HTTP, real PostgreSQL and SQLite databases.

Airflow reads its settings when first imported, so the environment is set here at import time, before any test
module imports airflow.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
_HOME = Path(tempfile.mkdtemp(prefix="bc_jira_airflow_"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        # A fixed test key: Fernet keys are 32 url-safe base64 bytes.
        "AIRFLOW__CORE__FERNET_KEY": "bIJ1DAwN0Fq6Q4vLdn9JzsP2kKx3tE0u5Yx8mV7rT1c=",
    }
)
os.environ.pop("BC_JIRA_FERNET_KEYS", None)

IN_CI = os.environ.get("CI", "").lower() == "true"

# The vendors' documents (shared/specs beside the checkout, as CI lays it out).
SHARED_SPECS = next(
    (p for p in (REPO.parent / "shared" / "specs", Path("/work/shared/specs")) if p.is_dir()),
    REPO.parent / "shared" / "specs",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SandboxProcess:
    """A ``python -m bc_jira_sandbox serve`` subprocess and a small client for its control routes."""

    TEST_OPTIONS = {"notify_delay_s": 1.0, "search_lag_s": 1.0, "latency_ms": 0, "bulk_create_order": "input"}

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = _HOME / f"sandbox-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bc_jira_sandbox", "serve", "--port", str(self.port), *extra_args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        self._wait_ready()
        self.creds: dict[str, Any] = self.control("GET", "/_sandbox/credentials")

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sandbox exited early:\n{self.log_path.read_text()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/_sandbox/health", timeout=1).ok:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"sandbox not ready in {timeout}s:\n{self.log_path.read_text()[-3000:]}")

    def control(self, method: str, path: str, json: Any = None) -> Any:
        resp = requests.request(method, f"{self.url}{path}", json=json, timeout=30)
        assert resp.status_code < 300, f"{method} {path} -> {resp.status_code} {resp.text[:500]}"
        return resp.json() if resp.content else None

    def reset(self, **counts: int) -> Any:
        """Fresh seeded data, no faults, clock back to now, test options (fast notifications, short lag)."""
        self.options(**self.TEST_OPTIONS)
        answer = self.control("POST", "/_sandbox/reset", counts or None)
        # Every Jira request body the connector sends and every response the sandbox gives is checked
        # against the official OpenAPI document; a bad request is answered 400, a bad response counted.
        self.control("POST", "/_sandbox/jira/options", {"validate": True})
        return answer

    def spec_violations(self) -> int:
        return self.stats()["events"].get("jira.spec_violations", 0)

    def options(self, **values: Any) -> Any:
        return self.control("POST", "/_sandbox/options", values)

    def faults(self, **body: Any) -> Any:
        return self.control("POST", "/_sandbox/faults", body)

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "/_sandbox/stats")

    def env(self) -> dict[str, str]:
        """AIRFLOW_CONN_*/AIRFLOW_VAR_* values printed by ``airflow-env`` for this sandbox."""
        out = subprocess.run(
            [sys.executable, "-m", "bc_jira_sandbox", "airflow-env", "--port", str(self.port)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        env = {}
        for line in out.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0]
        return env

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._log.close()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxProcess]:
    sb = SandboxProcess()
    yield sb
    sb.stop()


def wipe_default_store() -> None:
    """Empty the Airflow-default state store: a reset sandbox has new issues and a new OAuth grant, so links
    and tokens kept from an earlier test would point at things that no longer exist."""
    import sqlalchemy as sa

    from bc_jira import store
    from bc_jira.store.schema import metadata

    path = _HOME / "bc_jira_state.db"
    if not path.exists():
        return
    st = store.StateStore.from_url(f"sqlite:///{path}")
    st.ensure_schema()
    with st.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(sa.delete(table))


@pytest.fixture
def sandbox(sandbox_server: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session's sandbox, reset to fresh seeded data (and a fresh OAuth grant) for this test."""
    sandbox_server.reset()
    wipe_default_store()
    yield sandbox_server
    assert sandbox_server.spec_violations() == 0, (
        f"the sandbox gave Jira responses that violate the official spec; see {sandbox_server.log_path}"
    )


@pytest.fixture
def airflow_conns(
    sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch, airflow_db: Path
) -> dict[str, str]:
    """Aim ``bc_default``, ``jira_default`` and ``bc_jira_config`` at the sandbox through env vars.

    With a metadata DB: the connector's connection lookup fails closed when a secrets backend (the metadata
    DB included) cannot answer, so "``bc_jira_db`` not defined" needs a database that can say so.
    """
    env = sandbox.env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _pg_admin_url() -> str:
    return os.environ.get("BC_JIRA_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this session; skipped without a server, never skipped in CI."""
    import sqlalchemy as sa

    admin = sa.create_engine(
        _pg_admin_url(), isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: skip (or fail in CI) with its name
        admin.dispose()
        reason = f"PostgreSQL not reachable at {_pg_admin_url().split('@')[-1]}: {type(exc).__name__}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must not skip)")
        pytest.skip(reason)
    name = f"bc_jira_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = _pg_admin_url().rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/bc_jira_state.db"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Initialise the session's Airflow metadata DB (SQLite) once."""
    from airflow.utils import db

    db.initdb()
    return _HOME

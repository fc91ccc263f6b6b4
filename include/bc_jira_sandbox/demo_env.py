"""What ``make run`` sets up before Airflow starts: its settings, the sandbox's connections and config,
the metadata DB (SQLite in ``.airflow/``, or PostgreSQL) and the choice of DB ``make airflow`` reuses.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

CONFIG_VARIABLE = "bc_jira_config"
# The PostgreSQL variant (`make run DB=postgres`): this server, a database the demo creates.
DEFAULT_PG_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/bc_jira_demo"
PG_START_HINT = (
    "start one with `docker run -d -p 5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust postgres:16` "
    "(or `pg_ctlcluster <version> main start`), or point DB_URL=postgresql://user@host:port/db at yours"
)
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
        # Local, so the Connections list's Test button is on: it runs the hooks' test_connection in the
        # api-server against the sandbox (README: Testing a connection). Off by default in Airflow.
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        # Short retry delays so a hiccup in the demo heals in seconds, not minutes.
        "BC_JIRA_RETRY_DELAY_SECONDS": "15",
    }


def sandbox_env(sandbox_url: str) -> dict[str, str]:
    """``eval "$(python -m bc_jira_sandbox airflow-env)"`` as a dict (the running sandbox's credentials).

    Connections only, as ``AIRFLOW_CONN_*`` JSON; the demo stores them in the metadata DB
    (``demo_connections``) and ``bc_jira_config`` too (:func:`ensure_config_variable`) so that they are
    listed, editable and testable in the UI; an env var would shadow whatever the UI saves.
    """
    from bc_jira_sandbox.__main__ import airflow_env_lines

    creds = requests.get(f"{sandbox_url}/_sandbox/credentials", timeout=10).json()
    env = {}
    for line in airflow_env_lines(sandbox_url, creds):
        key, _, value = line.removeprefix("export ").partition("=")
        if key.startswith("AIRFLOW_CONN_"):
            env[key] = shlex.split(value)[0]
    return env


def sandbox_config(sandbox_url: str) -> dict[str, Any]:
    """The ``bc_jira_config`` value aimed at the running sandbox (what ``airflow-env`` exports)."""
    from bc_jira_sandbox.__main__ import sandbox_config as config

    creds = requests.get(f"{sandbox_url}/_sandbox/credentials", timeout=10).json()
    return config(sandbox_url, creds)


def clean_base_env() -> dict[str, str]:
    """The caller's environment without Airflow settings (the demo's own win), its venv first on PATH."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    base["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}"
    return base


def database_env(db: str, home: Path, url: str | None = None) -> dict[str, str]:
    """Metadata DB settings: SQLite in ``home`` (the default), or PostgreSQL with the LocalExecutor."""
    if db == "sqlite":
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url or f"sqlite:///{home}/airflow.db"}
    if db != "postgres":
        raise ValueError(f"DB={db}: use sqlite or postgres")
    pg = url or DEFAULT_PG_URL
    if pg.startswith("postgresql://"):
        pg = "postgresql+psycopg2://" + pg[len("postgresql://") :]
    return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg, "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"}


def ensure_pg_database(url: str) -> bool:
    """Create the demo's database on the server when missing (True if created); one-line error if down."""
    import sqlalchemy as sa

    server, _, name = url.rpartition("/")
    name = name.split("?")[0]
    admin = sa.create_engine(
        f"{server}/postgres", isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3}
    )
    try:
        with admin.connect() as conn:
            if conn.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).first():
                return False
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            return True
    except sa.exc.OperationalError as exc:
        where = server.split("@")[-1]
        raise RuntimeError(
            f"PostgreSQL not reachable at {where} ({str(exc.orig).strip().splitlines()[0]}): {PG_START_HINT}"
        ) from None
    finally:
        admin.dispose()


# Runs in a subprocess with the demo's environment (its AIRFLOW_HOME and metadata DB, no AIRFLOW_VAR_*).
_ENSURE_VARIABLE = """
import sys
from airflow.models import Variable
key, value, description = sys.argv[1:4]
if Variable.get(key, default_var=None) is None:
    Variable.set(key, value, description=description)
    print("created")
else:
    print("kept")
"""


def ensure_config_variable(env: dict[str, str], cwd: Path, config: dict[str, Any]) -> bool:
    """Write ``bc_jira_config`` into the metadata DB unless one is there (a user's edit is kept)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _ENSURE_VARIABLE,
            CONFIG_VARIABLE,
            json.dumps(config, indent=2),
            "bc-jira: what becomes an issue, where, with which fields (README: Configuration)",
        ],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.strip().endswith("created")


DB_CHOICE_FILE = "demo-db.json"


def save_db_choice(home: Path, db_env: dict[str, str]) -> None:
    """Remember the metadata DB of the last ``make run`` so ``make airflow`` talks to the same one."""
    (home / DB_CHOICE_FILE).write_text(json.dumps(db_env, indent=2) + "\n")


def load_db_choice(home: Path) -> dict[str, str] | None:
    path = home / DB_CHOICE_FILE
    return json.loads(path.read_text()) if path.exists() else None

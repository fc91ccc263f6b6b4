"""The demo's ``bc_default`` and ``jira_default`` in the metadata DB (Admin > Connections), not in env vars.

Airflow lists, edits and tests only connections stored in its database: an ``AIRFLOW_CONN_*`` variable is
invisible in the UI and shadows whatever the UI saves. So ``make run`` writes both connections there,
aimed at the running sandbox, on every run (the sandbox's URL and secrets are the truth; an edit made to
try a wrong secret is undone by the next run, and said so).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

CONN_IDS = ("bc_default", "jira_default")
DESCRIPTIONS = {
    "bc_default": "bc-jira demo: the sandbox's Business Central (rewritten by every make run)",
    "jira_default": "bc-jira demo: the sandbox's Jira Cloud (rewritten by every make run)",
}

# Runs in a subprocess with the demo's environment (its AIRFLOW_HOME and metadata DB).
_WRITE_CONNECTIONS = """
import json, sys
from airflow.models import Connection
from airflow.utils.session import create_session
for conn_id, spec in json.loads(sys.argv[1]).items():
    with create_session() as session:
        old = session.query(Connection).filter_by(conn_id=conn_id).one_or_none()
        if old is not None:
            session.delete(old)
            session.flush()
        extra = spec.get("extra")
        session.add(Connection(
            conn_id=conn_id, conn_type=spec["conn_type"], description=spec.get("description"),
            login=spec.get("login"), password=spec.get("password"),
            extra=json.dumps(extra) if isinstance(extra, dict) else extra,
        ))
    print(conn_id)
"""


def connection_specs(conn_env: dict[str, str]) -> dict[str, dict[str, object]]:
    """``AIRFLOW_CONN_<ID>`` JSON values (as ``airflow-env`` prints them) -> conn id -> fields."""
    specs: dict[str, dict[str, object]] = {}
    for conn_id in CONN_IDS:
        value = conn_env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if value:
            specs[conn_id] = {**json.loads(value), "description": DESCRIPTIONS[conn_id]}
    return specs


def write_connections(env: dict[str, str], cwd: Path, conn_env: dict[str, str]) -> list[str]:
    """Store the demo's connections in the metadata DB (replacing earlier ones); returns the ids written."""
    out = subprocess.run(
        [sys.executable, "-c", _WRITE_CONNECTIONS, json.dumps(connection_specs(conn_env))],
        env=env,
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [line for line in out.split() if line in CONN_IDS]

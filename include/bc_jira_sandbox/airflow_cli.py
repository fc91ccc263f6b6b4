"""``make airflow ARGS="dags list"``: the ``airflow`` CLI next to ``make run`` (like ``astro dev run``).

Runs ``airflow <ARGS>`` with the demo's AIRFLOW_HOME (``.airflow/``), its metadata DB (the one the last
``make run`` used: SQLite, or PostgreSQL after ``make run DB=postgres``), the dags/plugins folders. The
connections (``bc_default``, ``jira_default``) and ``bc_jira_config`` come from that DB, where ``make run``
wrote them (Admin > Connections, Admin > Variables); no env var shadows them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bc_jira_sandbox import demo_env

if TYPE_CHECKING:
    from collections.abc import Sequence

SQLITE_BACKFILL_REFUSAL = (
    "backfill needs the PostgreSQL variant of the demo: on SQLite (one writer at a time) the backfill's "
    "runs and the scheduler fail with `database is locked`; run `make run DB=postgres`, then this command"
)


def refusal(db_env: dict[str, str], airflow_args: Sequence[str]) -> str | None:
    """Why this command must not run on this metadata DB (None: go ahead)."""
    words = [a for a in airflow_args if not a.startswith("-")]
    if words[:2] == ["backfill", "create"] and db_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith(
        "sqlite"
    ):
        return SQLITE_BACKFILL_REFUSAL
    return None


def cli_env(home: Path, db_env: dict[str, str], port: int) -> dict[str, str]:
    """The demo's environment: Airflow settings and its DB (connections live in that DB)."""
    return {**demo_env.clean_base_env(), **demo_env.airflow_env(demo_env.repo_root(), home, port), **db_env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make airflow ARGS=...", description=__doc__)
    parser.add_argument("--home", type=Path, default=demo_env.repo_root() / ".airflow")
    parser.add_argument(
        "--db", choices=("sqlite", "postgres"), default=None, help="default: the last make run's"
    )
    parser.add_argument("--db-url", default=None)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("airflow_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    airflow_args = args.airflow_args[1:] if args.airflow_args[:1] == ["--"] else args.airflow_args
    if args.db or args.db_url:
        db_env = demo_env.database_env(args.db or "postgres", args.home, args.db_url)
    else:
        db_env = demo_env.load_db_choice(args.home) or demo_env.database_env("sqlite", args.home)
    reason = refusal(db_env, airflow_args)
    if reason:
        print(reason, file=sys.stderr)
        return 2
    env = cli_env(args.home, db_env, args.port)
    return subprocess.run([sys.executable, "-m", "airflow", *airflow_args], env=env).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Connect args for processes sharing the tests' SQLite Airflow metadata DB at the same moment.

``[database] sql_alchemy_connect_args`` (and ``_async``) take an import path: two ``dag.test()`` processes
writing one SQLite file wait for each other's write lock (up to this timeout) instead of failing with
"database is locked" after sqlite3's default 5 s. Used with WAL mode on the file (see :func:`share`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

CONNECT_ARGS = {"timeout": 120}

ENV = {
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "tests.support.sqlite_metadata.CONNECT_ARGS",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC": "tests.support.sqlite_metadata.CONNECT_ARGS",
}


def share(db_file: Path) -> dict[str, str]:
    """WAL mode (persistent on the file: readers never block the writer), and the env for the processes."""
    import sqlite3

    with sqlite3.connect(db_file, timeout=120) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    return dict(ENV)

"""The state store's database: one engine per URL and process, the schema, transactions, dialect SQL.

Why one place: SQLite and PostgreSQL lock differently (SQLite: ``BEGIN IMMEDIATE`` takes the write lock;
PostgreSQL: row locks and advisory locks), and every repository must get the same transaction semantics.
Also where the ``bc_jira_db`` connection becomes a SQLAlchemy URL (``PostgresHook`` builds the PostgreSQL
one).
"""

from __future__ import annotations

import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from bc_jira.failfast import ConnectionConfigError
from bc_jira.store.migrate import add_company_key
from bc_jira.store.schema import LATER_COLUMNS, audit_log, metadata

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from sqlite3 import Connection as SqliteConnection

    from sqlalchemy.engine import Connection, Engine
    from sqlalchemy.pool import ConnectionPoolEntry

    from bc_jira.airflow_conn import AirflowConnection

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "bc_jira_db"
_SCHEMA_LOCK_KEY = 0x6BC71A  # pg_advisory_xact_lock key: concurrent schema creators queue, not collide
_PG_DRIVER = "postgresql+psycopg2"
_PG_PARAMS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
)

_ENGINES: dict[tuple[int, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()
_SCHEMA_READY: set[tuple[int, str]] = set()
# Indexes added to tables that older databases already have (ensure_schema creates them if missing).
_LATER_INDEXES = tuple(
    ix
    for ix in audit_log.indexes
    if ix.name in ("ix_bc_jira_audit_entity_id", "ix_bc_jira_audit_errors", "ix_bc_jira_audit_company_id")
)

DialectInsert = postgresql.Insert | sqlite.Insert


# -- URLs -------------------------------------------------------------------------------------------------
def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` URLs get the driver the store is tested with."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return f"{_PG_DRIVER}://" + url.split("://", 1)[1]
    return url


def default_sqlite_url() -> str:
    """A SQLite file in ``$AIRFLOW_HOME`` (one host; the store when ``bc_jira_db`` is not defined)."""
    home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'bc_jira_state.db'}"


def _postgres_url(conn: AirflowConnection, conn_id: str) -> str:
    """``PostgresHook``'s SQLAlchemy URL of the connection, with the store's driver and libpq parameters.

    The hook reads login, password, host, port, database and its ``sqlalchemy_query`` extra; the store adds
    the libpq parameters the connection's extra names (``sslmode`` ...) and keeps ``localhost`` as the host
    when none is given.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id, connection=conn, sqlalchemy_scheme=_PG_DRIVER)
    url = hook.sqlalchemy_url
    extra = conn.extra_dejson or {}
    params = {k: str(v) for k, v in extra.items() if k in _PG_PARAMS and v is not None}
    url = url.update_query_dict(params)
    if not url.host:
        url = url.set(host="localhost")
    return url.render_as_string(hide_password=False)


def url_from_connection(conn: AirflowConnection, conn_id: str = DEFAULT_CONN_ID) -> str:
    """The SQLAlchemy URL of a ``bc_jira_db`` connection (``postgres`` or ``sqlite``)."""
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        return _postgres_url(conn, conn_id)
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ConnectionConfigError(
                "bc_jira_db: a sqlite connection needs the database file path in host"
            )
        return f"sqlite:///{os.path.abspath(os.path.expanduser(path))}"
    raise ConnectionConfigError(
        f"bc_jira_db: conn_type {conn_type!r} is not supported; use postgres or sqlite"
    )


def url_from_airflow(conn_id: str = DEFAULT_CONN_ID) -> str:
    """The connection's URL when defined, else :func:`default_sqlite_url`.

    Only "not found" means undefined (``bc_jira.airflow_conn``): a failing secrets backend must not silently
    switch a worker to a local SQLite file (its links would be invisible to the other workers -> duplicate
    issues).
    """
    from bc_jira.airflow_conn import get_connection

    conn = get_connection(conn_id)
    return url_from_connection(conn, conn_id) if conn is not None else default_sqlite_url()


# -- engines ----------------------------------------------------------------------------------------------
def _sqlite_pragmas(dbapi_conn: SqliteConnection, _record: ConnectionPoolEntry) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (BEGIN IMMEDIATE for locks)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")


def _create_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    sa.event.listen(engine, "connect", _sqlite_pragmas)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def engine_for(url: str) -> Engine:
    """One engine per URL per process (a forked worker must not share its parent's connections)."""
    key = (os.getpid(), url)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = _create_engine(url)
        return engine


def _add_later_columns(conn: Connection) -> None:
    """Columns added after their table existed (``schema.LATER_COLUMNS``): ``create_all`` leaves an existing
    table as it is, so an older store gets them here, under the schema lock, nullable (old rows: unknown)."""
    inspector = sa.inspect(conn)
    present: dict[str, set[str]] = {}
    for table, name in LATER_COLUMNS:
        if table.name not in present:
            present[table.name] = {c["name"] for c in inspector.get_columns(table.name)}
        if name in present[table.name]:
            continue
        column_type = table.c[name].type.compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {name} {column_type}"))
        present[table.name].add(name)
        log.info("state store schema: added column %s.%s", table.name, name)


class Database:
    """One store's engine, its schema and its transactions; every repository of the store shares it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self.dialect = self.engine.dialect.name

    def ensure_schema(self) -> None:
        key = (os.getpid(), self.url)
        if key in _SCHEMA_READY:
            return
        for attempt in range(3):
            try:
                # One transaction holding the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
                # lock): concurrent creators wait for the first one, then find every table there.
                with self.engine.connect() as conn:
                    if self.dialect == "sqlite":
                        conn.info["immediate"] = True
                    with conn.begin():
                        if self.dialect == "postgresql":
                            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                        metadata.create_all(conn, checkfirst=True)
                        _add_later_columns(conn)
                        add_company_key(conn)  # before the indexes: one of them is on the company
                        # indexes added after a table existed: create_all skips them on an old database
                        for index in _LATER_INDEXES:
                            index.create(conn, checkfirst=True)
                break
            except sa.exc.DatabaseError as exc:  # a creator outside our lock won the race: look again
                if attempt == 2:
                    raise
                log.info("state store schema: concurrent creation (%s); retrying", type(exc.orig).__name__)
        _SCHEMA_READY.add(key)

    @contextmanager
    def tx(self, immediate: bool = False) -> Iterator[Connection]:
        """A transaction; ``immediate`` takes SQLite's write lock at BEGIN (PostgreSQL: no difference)."""
        self.ensure_schema()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.info["immediate"] = immediate
            with conn.begin():
                yield conn

    # -- dialect SQL ------------------------------------------------------------------------------------
    def insert(self, table: sa.Table) -> DialectInsert:
        """The dialect's INSERT (both have ``ON CONFLICT``)."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def insert_ignore(self, table: sa.Table, values: Mapping[str, object], keys: list[str]) -> DialectInsert:
        return self.insert(table).values(values).on_conflict_do_nothing(index_elements=keys)

    def upsert(self, table: sa.Table, values: Mapping[str, object], keys: list[str]) -> DialectInsert:
        stmt = self.insert(table).values(values)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in values if k not in keys}
        )

"""Upgrading a store written before the record key held the company: (entity, bc_id) -> (company, ...).

Why a rebuild for SQLite: it cannot change a primary key in place, and the key must hold the company so two
companies' copies of one record (same GUID) get two links. ``bc_jira_links`` and ``bc_jira_claims`` are
renamed aside, created again with the new key, filled with their old rows under company ``""`` (the default
company: every row written before companies existed was the connection's company) and the old table dropped.
PostgreSQL changes the key in place (``ADD COLUMN … DEFAULT ''``, drop and add the primary key). Both run
inside ``Database.ensure_schema``'s one transaction under its schema lock, so a crash leaves the old table
whole and concurrent workers wait, then find the new one. Tables whose key is not the record key get the
column alone (``NOT NULL DEFAULT ''``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bc_jira.store.schema import COMPANY_COLUMN_TABLES, COMPANY_KEY_TABLES

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

_COLUMN = "company"


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns(table)}


def _add_company_column(conn: Connection, table: sa.Table) -> None:
    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {_COLUMN} VARCHAR(64) NOT NULL DEFAULT ''"))


def _rekey_postgres(conn: Connection, table: sa.Table) -> None:
    _add_company_column(conn, table)
    pk = sa.inspect(conn).get_pk_constraint(table.name).get("name")
    if pk:
        conn.execute(sa.text(f'ALTER TABLE {table.name} DROP CONSTRAINT "{pk}"'))
    cols = ", ".join(c.name for c in table.primary_key.columns)
    conn.execute(sa.text(f"ALTER TABLE {table.name} ADD PRIMARY KEY ({cols})"))


def _rebuild_sqlite(conn: Connection, table: sa.Table) -> None:
    old = f"{table.name}_pre_company"
    kept = _columns(conn, table.name) & {c.name for c in table.columns}
    for index in sa.inspect(conn).get_indexes(table.name):
        conn.execute(sa.text(f'DROP INDEX IF EXISTS "{index["name"]}"'))  # they follow the renamed table
    conn.execute(sa.text(f"ALTER TABLE {table.name} RENAME TO {old}"))
    table.create(conn)
    names = ", ".join(sorted(kept))
    conn.execute(sa.text(f"INSERT INTO {table.name} ({names}, {_COLUMN}) SELECT {names}, '' FROM {old}"))
    conn.execute(sa.text(f"DROP TABLE {old}"))


def add_company_key(conn: Connection) -> list[str]:
    """Bring an older store to the (company, entity, bc_id) key; returns the tables changed (logged)."""
    tables = set(sa.inspect(conn).get_table_names())
    changed = []
    for table in COMPANY_KEY_TABLES:
        if table.name in tables and _COLUMN not in _columns(conn, table.name):
            if conn.dialect.name == "postgresql":
                _rekey_postgres(conn, table)
            else:
                _rebuild_sqlite(conn, table)
            changed.append(table.name)
    for table in COMPANY_COLUMN_TABLES:
        if table.name in tables and _COLUMN not in _columns(conn, table.name):
            _add_company_column(conn, table)
            changed.append(table.name)
    for name in changed:
        log.info("state store schema: %s keyed by company (existing rows: the default company)", name)
    return changed

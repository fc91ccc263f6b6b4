"""Fresh state-store databases for tests: a new SQLite file, or a new schema in the PostgreSQL database."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    import pytest


def fresh_url(request: pytest.FixtureRequest, backend: str) -> str:
    """A database nobody used yet: a new SQLite file, or a new PostgreSQL schema in the session database."""
    if backend == "sqlite":
        return request.getfixturevalue("sqlite_url").replace(".db", f"_{uuid.uuid4().hex[:8]}.db")
    base = request.getfixturevalue("pg_url")
    schema = f"s_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


def table_names(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()

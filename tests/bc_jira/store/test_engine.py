"""Where the store lives: the bc_jira_db connection (PostgresHook URL) or SQLite in AIRFLOW_HOME."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from bc_jira.store import Link, StateStore
from bc_jira.store import engine as store_engine


def test_from_airflow_default_is_sqlite_in_airflow_home(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, airflow_db: Any
) -> None:
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("AIRFLOW_CONN_BC_JIRA_DB", raising=False)
    s = StateStore.from_airflow()
    assert s.dialect == "sqlite"
    assert s.url == f"sqlite:///{tmp_path}/bc_jira_state.db"
    assert s.stage_event("bc", "k", "x", {})
    assert (tmp_path / "bc_jira_state.db").exists()

    monkeypatch.setenv(
        "AIRFLOW_CONN_BC_JIRA_DB", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "other.db")})
    )
    assert StateStore.from_airflow().url == f"sqlite:///{tmp_path}/other.db"


@pytest.mark.postgres
def test_from_airflow_postgres_connection_via_postgres_hook(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, airflow_db: Any
) -> None:
    """A postgres ``bc_jira_db`` (env connection, as a deployment defines it) reaches the real database.

    ``PostgresHook`` builds the URL; the store keeps its driver (psycopg2) and the libpq extras.
    """
    pg = sa.engine.make_url(pg_url)
    conn = {
        "conn_type": "postgres",
        "host": pg.host,
        "port": pg.port,
        "login": pg.username,
        "password": "not-needed-with-trust",
        "schema": pg.database,
        "extra": {"application_name": "bc-jira-test", "connect_timeout": 5, "unrelated": "x"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_BC_JIRA_DB", json.dumps(conn))
    s = StateStore.from_airflow()
    url = sa.engine.make_url(s.url)
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+psycopg2",
        pg.host,
        pg.port,
        pg.database,
    )
    assert dict(url.query) == {"application_name": "bc-jira-test", "connect_timeout": "5"}
    assert "not-needed-with-trust" not in s.describe()
    assert s.dialect == "postgresql"
    s.upsert_link(Link("vendors", "pg-hook-1", "V1", "1", "FIN-1", state="linked"))
    assert s.get_links("vendors", ["pg-hook-1"])["pg-hook-1"].issue_key == "FIN-1"
    with s.engine.connect() as c:
        assert c.execute(sa.text("SELECT current_setting('application_name')")).scalar() == "bc-jira-test"


def test_url_from_connection_without_host_is_localhost() -> None:
    from airflow.sdk import Connection

    url = sa.engine.make_url(store_engine.url_from_connection(Connection(conn_id="x", conn_type="postgres")))
    assert (url.drivername, url.host, url.database) == ("postgresql+psycopg2", "localhost", None)


def test_url_from_connection() -> None:
    from airflow.sdk import Connection

    pgc = Connection(
        conn_id="x",
        conn_type="postgres",
        host="db",
        port=5433,
        login="u",
        password="p@ss/w",
        schema="state",
        extra=json.dumps({"sslmode": "require", "unrelated": "1"}),
    )
    url = sa.engine.make_url(store_engine.url_from_connection(pgc))
    assert (url.drivername, url.host, url.port, url.username, url.password, url.database) == (
        "postgresql+psycopg2",
        "db",
        5433,
        "u",
        "p@ss/w",
        "state",
    )
    assert dict(url.query) == {"sslmode": "require"}
    with pytest.raises(ValueError, match="not supported"):
        store_engine.url_from_connection(Connection(conn_id="x", conn_type="mysql"))


def test_normalize_url_gives_postgres_urls_the_stores_driver() -> None:
    assert store_engine.normalize_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert (
        store_engine.normalize_url("postgresql://u@h:5433/db?x=1") == "postgresql+psycopg2://u@h:5433/db?x=1"
    )
    assert store_engine.normalize_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"
    assert store_engine.normalize_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"


def test_url_from_connection_keeps_postgres_hooks_sqlalchemy_query_extra() -> None:
    from airflow.sdk import Connection

    extra = {"sqlalchemy_query": {"gssencmode": "disable"}, "sslmode": "require", "sqlalchemy_scheme": "x"}
    pgc = Connection(conn_id="x", conn_type="postgres", host="db", schema="state", extra=json.dumps(extra))
    url = sa.engine.make_url(store_engine.url_from_connection(pgc))
    assert url.drivername == "postgresql+psycopg2"  # the store's driver, whatever the extra names
    assert dict(url.query) == {"gssencmode": "disable", "sslmode": "require"}

"""Several BC companies in one deployment, end to end: the sandbox's companies, the ``companies`` config and
views of the Jira issues and Variables per company (for tests/dags/test_companies_dags.py and the like)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from tests.conftest import SandboxProcess

INVOICES = "purchaseInvoices"


def bc_companies(sandbox: SandboxProcess) -> dict[str, dict[str, Any]]:
    """name -> the sandbox's company row (id, name, access, counts)."""
    return {c["name"]: c for c in sandbox.control("GET", "/_sandbox/bc/companies")["value"]}


def set_companies(monkeypatch: pytest.MonkeyPatch, entries: list[dict[str, Any]] | None) -> dict[str, Any]:
    """``bc_jira_config`` with ``companies`` set to ``entries`` (None: removed); returns the document."""
    cfg = json.loads(os.environ["AIRFLOW_VAR_BC_JIRA_CONFIG"])
    cfg.pop("companies", None)
    if entries is not None:
        cfg["companies"] = entries
    monkeypatch.setenv("AIRFLOW_VAR_BC_JIRA_CONFIG", json.dumps(cfg))
    return cfg


def key_of(sandbox: SandboxProcess, company_id: str, connection: str = "bc_default") -> str:
    from bc_jira.config.companies import company_key

    return company_key(connection, sandbox.creds["environment"], company_id)


def records(sandbox: SandboxProcess, company: str, entity: str = INVOICES) -> list[dict[str, Any]]:
    return list(sandbox.control("GET", f"/_sandbox/bc/records/{entity}?company={company}")["value"])


def drafts(sandbox: SandboxProcess, company: str) -> list[dict[str, Any]]:
    return [r for r in records(sandbox, company) if r["status"] == "Draft"]


def jira_issues(sandbox: SandboxProcess) -> list[dict[str, Any]]:
    return list(sandbox.control("GET", "/_sandbox/jira/issues"))


def issues_by_record(
    sandbox: SandboxProcess, fields: dict[str, str]
) -> dict[tuple[str | None, str | None], list[dict[str, Any]]]:
    """(BC Record Id, BC Company) -> its issues (several: a duplicate)."""
    rid, comp = fields["BC Record Id"], fields.get("BC Company")
    out: dict[tuple[str | None, str | None], list[dict[str, Any]]] = {}
    for issue in jira_issues(sandbox):
        f = issue["fields"]
        out.setdefault((f.get(rid), f.get(comp) if comp else None), []).append(issue)
    return out


def record_id_counts(sandbox: SandboxProcess, fields: dict[str, str]) -> Counter[str]:
    """How many issues carry each BC Record Id (a company's record with two issues: a duplicate)."""
    rid = fields["BC Record Id"]
    return Counter(str(i["fields"].get(rid)) for i in jira_issues(sandbox))


def metastore_var(key: str) -> str | None:
    from airflow.models.variable import Variable

    return Variable.get(key, default_var=None)


def company_calls(sandbox: SandboxProcess) -> dict[str, int]:
    return dict(sandbox.stats().get("company_calls") or {})


def pre_company_copy(src: str, dst: str) -> dict[str, int]:
    """A SQLite state store at ``dst`` in the schema from before companies (``pre_company_ddl``) holding every
    row of ``src`` (a store of today's schema, single company: ``company`` empty), as an existing deployment
    that never ran this version would have it. Returns rows copied per table."""
    import sqlalchemy as sa

    from tests.support import pre_company_ddl

    old = sa.create_engine(f"sqlite:///{dst}")
    new = sa.create_engine(f"sqlite:///{src}")
    copied: dict[str, int] = {}
    with old.begin() as conn:
        for stmt in pre_company_ddl.SQLITE:
            conn.execute(sa.text(stmt))
        tables = sa.inspect(conn).get_table_names()
        for table in tables:
            cols = [c["name"] for c in sa.inspect(conn).get_columns(table)]
            with new.connect() as read:
                src_cols = {c["name"] for c in sa.inspect(read).get_columns(table)}
                assert "company" not in cols
                rows = read.execute(sa.text(f"SELECT {', '.join(cols)} FROM {table}")).mappings().all()
                if "company" in src_cols:
                    keys = read.execute(sa.text(f"SELECT DISTINCT company FROM {table}")).scalars().all()
                    assert set(keys) <= {""}, (table, keys)
            if rows:
                marks = ", ".join(f":{c}" for c in cols)
                conn.execute(sa.text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"), rows)
            copied[table] = len(rows)
    old.dispose()
    new.dispose()
    return copied

"""Which companies a sync run covers, resolved from Airflow: connections, ``bc_jira_bc_companies``.

Why apart from ``bc_jira.config.companies``: that module is pure (parsing, keys, overrides); this one reads
the connections' environments and the ids ``bc_jira_connect`` resolved, and fails one company alone with a
message naming it (a missing connection, a name never resolved) so that the others still sync.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira.config.companies import (
    COMPANIES_VARIABLE_KEY,
    DEFAULT_BC_CONN,
    Company,
    CompanyEntry,
    CompanyError,
    ConnectionFacts,
    resolve_company,
    single_company,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from bc_jira.config import Config


@dataclass(frozen=True)
class CompanyRef:
    """What the DAG maps over: the entry's position in ``companies`` (-1: no ``companies``) and a label."""

    index: int
    label: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "label": self.label}


def company_refs(cfg: Config | None) -> list[dict[str, Any]]:
    """One ref per company to sync (the map of the per-company tasks); no I/O. No config: the single one."""
    if cfg is None or not cfg.companies:
        return [CompanyRef(-1, "").as_dict()]
    return [CompanyRef(e.index, _entry_label(e)).as_dict() for e in cfg.companies]


def _entry_label(e: CompanyEntry) -> str:
    name = e.name or (e.company_id or "")[:8]
    return name if e.connection == DEFAULT_BC_CONN else f"{name} @ {e.connection}"


def connection_facts(conn_id: str) -> ConnectionFacts:
    """The connection's environment and own company id; ``CompanyError`` when it does not exist."""
    from bc_jira.airflow_conn import get_connection

    conn = get_connection(conn_id)
    if conn is None:
        raise CompanyError(
            f"BC connection {conn_id!r} does not exist; create it (type business_central) or fix "
            "companies[].connection in bc_jira_config"
        )
    extra = conn.extra_dejson or {}
    return ConnectionFacts(str(extra.get("environment") or "production"), extra.get("company_id") or None)


def resolved_names() -> dict[str, dict[str, str]]:
    """Variable ``bc_jira_bc_companies`` (conn id -> company name -> id), written by ``bc_jira_connect``."""
    from airflow.sdk import Variable

    raw = Variable.get(COMPANIES_VARIABLE_KEY, default=None)
    try:
        value = json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    except ValueError:
        raise CompanyError(
            f"{COMPANIES_VARIABLE_KEY} is not valid JSON; run the bc_jira_connect DAG"
        ) from None
    return value if isinstance(value, dict) else {}


def resolve(
    cfg: Config,
    index: int,
    facts: Callable[[str], ConnectionFacts] = connection_facts,
    names: Callable[[], Mapping[str, Mapping[str, str]]] = resolved_names,
) -> Company:
    """The company of one ref (``index`` -1: the single company of a config without ``companies``)."""
    default = facts(DEFAULT_BC_CONN)
    if index < 0 or not cfg.companies:
        return single_company(default)
    entry = next((e for e in cfg.companies if e.index == index), None)
    if entry is None:
        raise CompanyError(f"companies[{index}] is no longer in bc_jira_config; nothing to sync for it")
    own = default if entry.connection == DEFAULT_BC_CONN else facts(entry.connection)
    return resolve_company(entry, own, default, names() if entry.company_id is None else {})


def resolve_all(
    cfg: Config,
    facts: Callable[[str], ConnectionFacts] = connection_facts,
    names: Callable[[], Mapping[str, Mapping[str, str]]] = resolved_names,
) -> tuple[list[Company], list[str]]:
    """Every company that resolves, and one problem line per company that does not."""
    out, problems = [], []
    for ref in company_refs(cfg):
        try:
            out.append(resolve(cfg, ref["index"], facts, names))
        except CompanyError as exc:
            problems.append(str(exc))
    return out, problems


def companies_to_settle() -> list[Company]:
    """The companies whose staged BC events the backstop settles: every one that resolves (a company that
    does not keeps its events: they wait for it, logged); a config that does not parse: the connection's
    own company (today's behaviour: its events, its watermark)."""
    import logging

    from bc_jira.config import ConfigError, load_config

    log = logging.getLogger(__name__)
    try:
        cfg = load_config()
    except ConfigError as exc:
        log.warning("bc_jira_config does not parse (%s); settling the connection's company only", exc)
        return [single_company(connection_facts(DEFAULT_BC_CONN))]
    companies, problems = resolve_all(cfg)
    for problem in problems:
        log.warning("staged BC events of this company stay staged: %s", problem)
    return companies


def bc_hook(company: Company, **kw: Any) -> Any:
    """The BC hook acting in ``company`` (its connection; the limiter stays per service principal)."""
    from bc_jira.hooks.business_central import BusinessCentralHook

    return BusinessCentralHook(company.connection, company_id=company.company_id, **kw)

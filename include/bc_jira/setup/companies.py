"""bc_jira_connect's checks of ``companies``: each connection exists, each company is in its environment.

Names are resolved to ids here (``GET companies`` once per connection) and written to the Variable
``bc_jira_bc_companies`` (conn id -> name -> id): the sync tasks read it instead of calling BC for names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from bc_jira.config.companies import CompanyEntry


class CompanyLister(Protocol):
    def __call__(self, conn_id: str) -> list[dict[str, Any]] | None: ...


@dataclass
class CompaniesReport:
    resolved: dict[str, dict[str, str]] = field(default_factory=dict)  # conn id -> name -> id
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _known(listed: Iterable[dict[str, Any]]) -> str:
    return ", ".join(f"{c.get('name')} ({c.get('id')})" for c in list(listed)[:10]) or "none"


def check_companies(entries: Sequence[CompanyEntry], list_companies: CompanyLister) -> CompaniesReport:
    """Every problem of the entries at once. ``list_companies(conn)``: BC's companies, None when the
    connection does not exist (raises with a message when BC cannot be read)."""
    rep = CompaniesReport()
    listed: dict[str, list[dict[str, Any]] | None] = {}
    failed: dict[str, str] = {}
    for conn in dict.fromkeys(e.connection for e in entries):
        try:
            listed[conn] = list_companies(conn)
        except Exception as exc:  # noqa: BLE001 - reported with the rest
            failed[conn] = f"{type(exc).__name__}: {exc}"
    for e in entries:
        if e.connection in failed:
            rep.problems.append(
                f"{e.path}: cannot list the companies of {e.connection} ({failed[e.connection]})"
            )
            continue
        companies = listed.get(e.connection)
        if companies is None:
            rep.problems.append(
                f"{e.path}.connection: BC connection {e.connection!r} does not exist; create it (type "
                "business_central) or fix the connection id"
            )
            continue
        _check_entry(e, companies, rep)
    return rep


def _check_entry(e: CompanyEntry, companies: list[dict[str, Any]], rep: CompaniesReport) -> None:
    by_id = {str(c.get("id", "")).lower(): c for c in companies}
    if e.company_id is not None:
        if e.company_id not in by_id:
            rep.problems.append(
                f"{e.path}.id: no company {e.company_id} in {e.connection}'s environment; available: "
                f"{_known(companies)}"
            )
        return
    wanted = (e.name or "").casefold()
    matches = [
        c
        for c in companies
        if wanted in (str(c.get("name") or "").casefold(), str(c.get("displayName") or "").casefold())
    ]
    if len(matches) != 1:
        why = "no company" if not matches else f"{len(matches)} companies"
        rep.problems.append(
            f"{e.path}.name: {why} named {e.name!r} in {e.connection}'s environment; available: "
            f"{_known(companies)} (give the id to pick one)"
        )
        return
    rep.resolved.setdefault(e.connection, {})[e.name or ""] = str(matches[0]["id"]).lower()
    rep.notes.append(f"{e.path}: company {e.name!r} on {e.connection} is {matches[0]['id']}")


def airflow_lister(hook_for: Callable[[str], Any]) -> CompanyLister:
    """``GET companies`` through the BC hook of each connection; None for a connection that is not defined."""
    from bc_jira.airflow_conn import get_connection

    def list_companies(conn_id: str) -> list[dict[str, Any]] | None:
        conn = get_connection(conn_id)
        if conn is None:
            return None
        body = hook_for(conn_id).client.get_json("companies", params={"$select": "id,name,displayName"})
        return list(body.get("value", [])) if isinstance(body, dict) else []

    return list_companies

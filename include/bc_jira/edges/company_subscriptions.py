"""BC subscriptions for every configured company: one set per BC connection, ``companies(<id>)/<set>`` each.

Why apart from ``bc_jira.edges.subscriptions``: that module keeps one resource's subscription alive; this one
decides *which* resources a deployment wants (every company of ``companies``, grouped by the connection whose
environment holds it: subscriptions are environment-wide, their ``resource`` names the company), removes the
subscriptions of a company no longer configured, and keeps one company's refusal (403: the app lost its
permissions there; 404: the company was deleted) from stopping the other companies' renewals.

The state-store row of a subscription is keyed by its resource, exactly as before companies, so an existing
deployment keeps its rows (and BC its subscriptions: nothing is re-created on upgrade). A company on another
connection prefixes the key with the connection id (two environments can hold copies of one company, with the
same GUID). Every row also keeps the company it belongs to (``connection``, ``company_id``, ``company``: the
store key, ``company_name``), which the intake and the health route read.

:func:`plan_removals` decides from BC's list and the stored rows alone (pure);
:func:`ensure_company_subscriptions` carries everything out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bc_jira import timeutil
from bc_jira.config.companies import DEFAULT_BC_CONN
from bc_jira.edges import Outcome
from bc_jira.edges.intake import BC_ENTITIES, parse_bc_resource, subscribed_companies
from bc_jira.edges.subscriptions import (
    BC_RENEW_WHEN_LEFT,
    Known,
    _at_url,
    _norm_resource,
    secure_subscriptions,
)
from bc_jira.http import ApiError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from datetime import datetime, timedelta

    from bc_jira.config import Config
    from bc_jira.config.companies import Company
    from bc_jira.edges.protocols import BcSubscriptions, SubscriptionStore

log = logging.getLogger(__name__)

DELETED_REMOVED = "deleted-removed-company"  # the outcome of a subscription whose company left the config
_OURS = re.compile(r"^companies\([^)]*\)/(" + "|".join(s.lower() for s in BC_ENTITIES) + r")$")


@dataclass(frozen=True)
class Target:
    """One company whose entities are to be subscribed: where (connection), which (GUID) and its names."""

    connection: str
    company_id: str  # as the resource names it (the default company: the connection's own, as configured)
    store_key: str = ""  # the company's key in the store ("": the default company)
    name: str = ""  # how messages name it; "" without ``companies``

    @property
    def label(self) -> str:
        return self.name or f"company {self.company_id}"


def company_resource(company_id: str, entity_set: str) -> str:
    """The ``resource`` Microsoft documents for a company's entity (what the hook's own method builds)."""
    return f"/api/v2.0/companies({company_id})/{entity_set}"


def row_key(connection: str, resource: str) -> str:
    """The store row of a subscription: its resource (``bc_default``), else ``<connection>|<resource>``."""
    return resource if connection == DEFAULT_BC_CONN else f"{connection}|{resource}"


def row_connection(row: Mapping[str, Any]) -> str:
    """The connection a stored row belongs to (rows from before companies: ``bc_default``)."""
    return str(row.get("connection") or DEFAULT_BC_CONN)


def wanted(
    targets: Iterable[Target], store: SubscriptionStore
) -> tuple[list[Known], dict[str, dict[str, Any]]]:
    """Every (company, entity) subscription of the targets, with what the store remembers, and each row's
    company fields."""
    known: list[Known] = []
    fields: dict[str, dict[str, Any]] = {}
    for t in targets:
        for entity_set, entity in BC_ENTITIES.items():
            resource = company_resource(t.company_id, entity_set)
            key = row_key(t.connection, resource)
            row = store.get_subscription(key) or {}
            known.append(Known(entity, resource, row.get("subscription_id"), row.get("expiration"), key=key))
            fields[key] = {
                "connection": t.connection,
                "company_id": t.company_id.lower(),
                "company": t.store_key,
                "company_name": t.name,
            }
    return known, fields


@dataclass(frozen=True)
class Removal:
    """A subscription (remote, stored or both) of a company this connection no longer subscribes for."""

    entity: str
    key: str | None  # the store row to delete, if any
    subscription: Mapping[str, Any] | None  # BC's row to delete, if BC still has it


def _entity_of(resource: str) -> str:
    parsed = parse_bc_resource(resource)
    return BC_ENTITIES.get(parsed["entity_set"], "") if parsed else ""


def plan_removals(
    remote: Sequence[Mapping[str, Any]],
    stored: Sequence[Mapping[str, Any]],
    known: Sequence[Known],
    connection: str,
    url: str,
) -> list[Removal]:
    """What to delete on one connection (pure): ours (at ``url``, or a stored id) for a resource not wanted.

    Someone else's subscription (another URL, an id we never stored) is never touched.
    """
    want = {_norm_resource(k.resource) for k in known}
    keys = {k.store_key for k in known}
    rows = [r for r in stored if row_connection(r) == connection and r.get("resource") not in keys]
    by_id = {str(r["subscription_id"]): r for r in rows if r.get("subscription_id")}
    out: list[Removal] = []
    for s in remote:
        res = _norm_resource(str(s.get("resource") or ""))
        row = by_id.pop(str(s.get("subscriptionId")), None)
        if res in want or not (_OURS.match(res) and (_at_url(s, url) or row is not None)):
            continue
        out.append(Removal(_entity_of(str(s.get("resource"))), row.get("resource") if row else None, s))
        if row is not None:
            rows.remove(row)
    out += [Removal(str(r.get("entity") or ""), str(r["resource"]), None) for r in rows]
    return out


@dataclass
class CompanyRun:
    """What one renewal did: every outcome, and per company that failed (by label) why."""

    outcomes: list[Outcome] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _remove(bc: BcSubscriptions | None, store: SubscriptionStore, r: Removal, out: list[Outcome]) -> None:
    s = r.subscription
    if s is not None and bc is not None:
        bc.delete_subscription(str(s["subscriptionId"]), s.get("@odata.etag"))
    if r.key is not None:
        store.delete_subscription(r.key)
    what = str((s or {}).get("resource") or r.key)
    log.info("bc subscription %s for %s: deleted, its company is no longer configured", r.entity, what)
    out.append(Outcome(r.entity, DELETED_REMOVED, detail=what))


def _connection_failed(run: CompanyRun, targets: Sequence[Target], connection: str, exc: Exception) -> None:
    for t in targets:
        run.failed[t.label] = f"BC connection {connection}: {type(exc).__name__}: {exc}"
        log.error("bc subscriptions of %s on %s: %s", t.label, connection, exc)


def _one_connection(
    bc: BcSubscriptions,
    store: SubscriptionStore,
    url: str,
    connection: str,
    targets: Sequence[Target],
    *,
    remove: bool,
    client_state: str | None,
    now: Callable[[], datetime],
    renew_when_left: timedelta,
    run: CompanyRun,
) -> None:
    remote = bc.list_subscriptions()
    known: list[Known] = []
    for t in targets:  # one company after the other: a refusal stops only its own
        mine, fields = wanted([t], store)
        known += mine
        outcomes = secure_subscriptions(
            bc,
            store,
            url,
            mine,
            remote,
            client_state=client_state,
            now=now,
            renew_when_left=renew_when_left,
            fields=fields,
        )
        run.outcomes += outcomes
        bad = [o for o in outcomes if o.action == "failed"]
        if bad:
            run.failed[t.label] = f"{t.label} (id {t.company_id} on {connection}): {bad[0].detail}"
    if not remove:
        return
    for r in plan_removals(remote, store.list_subscriptions(), known, connection, url):
        try:
            _remove(bc, store, r, run.outcomes)
        except ApiError as exc:  # a leftover is retried next run; the wanted ones are done
            log.warning("bc subscription %s of a removed company: not deleted yet (%s)", r.key, exc)


def ensure_company_subscriptions(
    bc_for: Callable[[str, str], BcSubscriptions],
    store: SubscriptionStore,
    url: str,
    targets: Sequence[Target],
    *,
    removable: Iterable[str] = (),
    client_state: str | None,
    now: Callable[[], datetime] = timeutil.now,
    renew_when_left: timedelta = BC_RENEW_WHEN_LEFT,
) -> CompanyRun:
    """Exactly one live subscription per (company, entity), per connection; removals where allowed.

    ``bc_for(connection, company_id)``: the hook of a connection. ``removable``: the connections whose
    complete list of companies is known (every configured company on it resolved): there, our subscriptions
    of other companies are deleted. A connection that only stored rows still name (dropped from the config)
    is visited for removals too; when it no longer exists its rows are forgotten (BC lets them expire).
    """
    run = CompanyRun()
    removable = set(removable)
    by_conn: dict[str, list[Target]] = {}
    for t in targets:
        by_conn.setdefault(t.connection, []).append(t)
    for row in store.list_subscriptions():
        if row_connection(row) in removable:
            by_conn.setdefault(row_connection(row), [])
    for connection, mine in by_conn.items():
        try:
            bc = bc_for(connection, mine[0].company_id if mine else "")
            _one_connection(
                bc,
                store,
                url,
                connection,
                mine,
                remove=connection in removable,
                client_state=client_state,
                now=now,
                renew_when_left=renew_when_left,
                run=run,
            )
        except Exception as exc:  # noqa: BLE001 - a connection that cannot list fails its companies only
            if mine:
                _connection_failed(run, mine, connection, exc)
            else:
                _forget(store, connection, exc, run.outcomes)
    return run


def _forget(store: SubscriptionStore, connection: str, exc: Exception, out: list[Outcome]) -> None:
    """Rows of a connection no company uses any more, which cannot be reached: forgotten, BC expires them."""
    for row in [r for r in store.list_subscriptions() if row_connection(r) == connection]:
        store.delete_subscription(str(row["resource"]))
        out.append(Outcome(str(row.get("entity") or ""), DELETED_REMOVED, detail=str(row["resource"])))
    log.warning(
        "bc subscriptions on %s (no configured company uses it): not reachable (%s); forgotten, BC lets "
        "them expire within 3 days",
        connection,
        type(exc).__name__,
    )


# -- which companies (from the config, or what the store knows when the config cannot be read) ---------------


@dataclass
class Targets:
    """The companies to subscribe, the connections where removals are safe, and what could not resolve."""

    targets: list[Target] = field(default_factory=list)
    removable: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def target_of(company: Company, own_id: str | None) -> Target:
    """The default company keeps the connection's own id as configured: its resource (and row) as before."""
    cid = (own_id or company.company_id) if company.default else company.company_id
    return Target(company.connection, cid, company.store_key, company.label if company.entry else "")


def config_targets(
    cfg: Config, resolve: Callable[[Config, int], Company], default: Company, own_id: str | None
) -> Targets:
    """Every company of ``cfg`` (without ``companies``: the connection's own); a company that does not
    resolve is a problem and keeps removals off on its connection (its subscriptions are not orphans)."""
    out = Targets()
    if not cfg.companies:
        out.targets.append(target_of(default, own_id))
        out.removable.add(DEFAULT_BC_CONN)
        return out
    blocked = set()
    for entry in cfg.companies:
        try:
            out.targets.append(target_of(resolve(cfg, entry.index), own_id))
        except Exception as exc:  # noqa: BLE001 - one company's problem, reported with the rest
            out.problems.append(f"{entry.path} ({entry.describe()}): {exc}")
            blocked.add(entry.connection)
    out.removable = {e.connection for e in cfg.companies} - blocked
    if DEFAULT_BC_CONN not in blocked:
        out.removable.add(DEFAULT_BC_CONN)  # a deployment that moved every company elsewhere
    return out


def stored_targets(rows: Iterable[Mapping[str, Any]], default: Company, own_id: str | None) -> Targets:
    """When the config cannot be read: keep alive what the store knows (nothing is removed)."""
    out = Targets(targets=[target_of(default, own_id)])
    seen = {(DEFAULT_BC_CONN, default.company_id.lower())}
    for row in rows:
        conn = row_connection(row)
        for cid in subscribed_companies([row]) or ():
            if (conn, cid) not in seen:
                seen.add((conn, cid))
                out.targets.append(
                    Target(conn, cid, str(row.get("company") or ""), str(row.get("company_name") or ""))
                )
    return out

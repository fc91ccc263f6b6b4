"""The DAGs' task entry points: the only place that builds hooks and stores from Airflow.

Each function here reads what it needs from Airflow (Variables, connections through the hooks, the state
store's connection), calls the pure and short functions of the package, logs, and fails the task when the
outcome says so. One section per area, functions grouped by DAG. Every entry point is ``@fail_fast``: a
configuration or connection error fails its task at once with the problem list, while transient errors keep
the DAG's retries (``bc_jira.failfast``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import TYPE_CHECKING, Any

from bc_jira.config import FIELDS_VARIABLE_KEY, USERS_VARIABLE_KEY
from bc_jira.config.variables import variable_description
from bc_jira.edges import BC_NOTIFICATION_PATH, JIRA_WEBHOOK_PATH
from bc_jira.edges.intake import BC_ENTITIES, bc_kind
from bc_jira.edges.webhooks import (
    APP_DELIVERIES,
    JIRA_WEBHOOK_NAME,
    app_delivery_notice,
    check_basic_deliveries,
    ensure_jira_webhook,
    transitions_jql,
)
from bc_jira.failfast import fail_fast
from bc_jira.setup.connect import ConnectError, connect_checks
from bc_jira.sync.base import RunInfo, run_info
from bc_jira.sync.links import set_batch_links
from bc_jira.sync.report import batch_label, batch_report, jira_search_url, keys_jql

# the sync DAGs' entry points live in bc_jira.sync.runs (per company); bc_jira.tasks keeps their names
from bc_jira.sync.runs import (
    SYNC_XCOM_KEY,
    attach_task,
    batches_task,
    companies_task,
    deletions_task,
    extract_task,
    finalize_task,
    upsert_task,
)
from bc_jira.sync.writeback import WriteBack
from bc_jira.timeutil import iso, now

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.sync.outcome import Result

log = logging.getLogger(__name__)

__all__ = [
    "SYNC_XCOM_KEY",
    "attach_task",
    "batches_task",
    "companies_task",
    "deletions_task",
    "extract_task",
    "finalize_task",
    "upsert_task",
]

PUBLIC_URL_VARIABLE = "bc_jira_public_url"
PUBLIC_URL_ENV = "BC_JIRA_PUBLIC_URL"


# -- where the remotes call us ---------------------------------------------------------------------------


def public_base_url() -> str:
    """The api-server's public base URL: Variable ``bc_jira_public_url``, env, ``[api] base_url``, localhost.

    BC and Jira must reach it from the internet (HTTPS in production; a reverse proxy in front of the
    api-server is the usual shape).
    """
    try:
        from airflow.sdk import Variable

        value = Variable.get(PUBLIC_URL_VARIABLE, default=None)
    except Exception as exc:  # noqa: BLE001 - outside a task/server there is no Variable backend
        log.debug("Variable %s not readable: %s", PUBLIC_URL_VARIABLE, type(exc).__name__)
        value = None
    value = value or os.environ.get(PUBLIC_URL_ENV)
    if not value:
        try:
            from airflow.configuration import conf

            value = conf.get("api", "base_url", fallback=None)
        except Exception:  # noqa: BLE001
            value = None
    return (value or "http://localhost:8080").rstrip("/")


def notification_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{BC_NOTIFICATION_PATH}"


def jira_webhook_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{JIRA_WEBHOOK_PATH}"


# -- bc_subscriptions_renewal ----------------------------------------------------------------------------


def _subscription_targets(store: Any) -> Any:
    """Which companies to subscribe: the config's (resolved), or, when it cannot be read, what the store
    knows (kept alive, nothing removed; the task fails with the config's problem)."""
    from bc_jira.config import ConfigError, load_config
    from bc_jira.config.companies import DEFAULT_BC_CONN, single_company
    from bc_jira.edges.company_subscriptions import config_targets, stored_targets
    from bc_jira.sync.companies import connection_facts, resolve

    facts = connection_facts(DEFAULT_BC_CONN)
    default = single_company(facts)
    try:
        cfg = load_config()
    except ConfigError as exc:
        out = stored_targets(store.list_subscriptions(), default, facts.company_id)
        out.problems.append(f"bc_jira_config cannot be read, no subscription was removed: {exc}")
        return out
    return config_targets(cfg, resolve, default, facts.company_id)


@fail_fast
def bc_subscriptions_task(url: str | None = None) -> list[dict[str, Any]]:
    """The ``bc_subscriptions_renewal`` task: every company's subscriptions; fails at the end naming each
    company that could not be secured (the others were renewed)."""
    from bc_jira.config.companies import DEFAULT_BC_CONN
    from bc_jira.edges.company_subscriptions import ensure_company_subscriptions
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    url = url or notification_url()
    store = StateStore.from_airflow()
    bc = BusinessCentralHook(call_limiter=store.call_slot)
    if not bc.settings.client_state:
        log.warning("bc_default has no extra.client_state: notifications cannot be authenticated; set one")
    plan = _subscription_targets(store)

    def bc_for(conn_id: str, company_id: str) -> BusinessCentralHook:
        if conn_id == DEFAULT_BC_CONN:
            return bc
        return BusinessCentralHook(conn_id, company_id=company_id or None, call_limiter=store.call_slot)

    # one clientState for every subscription: bc_default's, the one the intake verifies
    run = ensure_company_subscriptions(
        bc_for, store, url, plan.targets, removable=plan.removable, client_state=bc.settings.client_state
    )
    for o in run.outcomes:
        who = f" ({o.extra['company']})" if o.extra.get("company") else ""
        log.info("bc subscription %s%s: %s (expires %s) %s", o.name, who, o.action, o.expires, o.detail)
    if run.failed or plan.problems:
        raise RuntimeError(
            "could not secure BC subscriptions for "
            + "; ".join([*run.failed.values(), *plan.problems])
            + f". The notification URL {url} must answer BC's validationToken handshake (check the Variable "
            "bc_jira_public_url and that the api-server with the bc_jira plugin is reachable from Business "
            "Central); a company BC refuses (403/404) needs the app's permissions there, or its removal from "
            "companies in bc_jira_config. The other companies' subscriptions were renewed"
        )
    return [o.as_dict() for o in run.outcomes]


@fail_fast
def settle_covered_events_task() -> dict[str, int]:
    """Backstop: delete staged BC events the outbound watermarks already cover (audited), per company: each
    company's events against its own watermark (the default company's would cover other companies' events
    it says nothing about). Returns settled events per entity, all companies together."""
    from airflow.sdk import Variable

    from bc_jira.edges.settle import settle_bc_events
    from bc_jira.store import StateStore
    from bc_jira.sync.companies import companies_to_settle

    store = StateStore.from_airflow()
    out = dict.fromkeys(BC_ENTITIES.values(), 0)
    for company in companies_to_settle():
        view = store.for_company(company.store_key, company.company_id or None)
        for entity in BC_ENTITIES.values():
            key = company.watermark_key(entity)
            mark = Variable.get(key, default=None)
            n = settle_bc_events(
                view, entity, mark, run={"dag_id": "bc_subscriptions_renewal"}, named_only=not company.default
            )
            out[entity] += n
            left = len(view.pending_events(bc_kind(entity), limit=5000))
            if n or left:
                log.info(
                    "%s: %s: %d staged BC event(s) settled, %d still staged (watermark %s = %s)",
                    entity,
                    company.label or "the connection's company",
                    n,
                    left,
                    key,
                    mark,
                )
    return out


# -- jira_webhooks_refresh -------------------------------------------------------------------------------


@fail_fast
def jira_webhook_task(url: str | None = None) -> dict[str, Any]:
    """The ``jira_webhooks_refresh`` task."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore

    url = url or jira_webhook_url()
    cfg = load_config()
    types = [
        cfg.entity(e).issue_type
        for e in ("purchase_invoices", "vendors")
        if cfg.entity(e).enabled and cfg.entity(e).done_action != "none"
    ]
    from bc_jira.config.companies import project_keys

    jql = transitions_jql(project_keys(cfg), types or [cfg.purchase_invoices.issue_type])
    store = StateStore.from_airflow()
    jira = JiraCloudHook(store=store)
    if jira.settings.auth == "basic":
        outcome = check_basic_deliveries(store)
        text = outcome.detail.format(url=url, jql=jql)
        if outcome.action == "ok":
            log.info("jira admin webhook: %s", text)
        else:
            log.warning("jira admin webhook: %s", text)
        return {**outcome.as_dict(), "detail": text}
    outcome = ensure_jira_webhook(jira, store, url, jql)
    log.info("jira webhook: %s (expires %s) %s", outcome.action, outcome.expires, outcome.detail)
    if outcome.action == "failed":
        raise RuntimeError(outcome.detail)
    watch = store.get_webhook(APP_DELIVERIES) or {}
    if not watch.get("last_delivery_at") and not watch.get("watch_since"):
        store.put_webhook(APP_DELIVERIES, watch_since=iso(now()))
    notice = app_delivery_notice(store.get_webhook(JIRA_WEBHOOK_NAME), watch, now())
    if notice:
        log.warning("jira webhook: %s", notice)
    return outcome.as_dict()


# -- sync ----------------------------------------------------------------------------------------------------


def _variable_json(key: str) -> dict[str, Any]:
    import json

    from airflow.sdk import Variable

    raw = Variable.get(key, default=None)
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        from bc_jira.config import ConfigError

        raise ConfigError(
            [f"(root): {key} is not valid JSON; run the bc_jira_connect DAG to rewrite it"], source=key
        ) from None
    return value if isinstance(value, dict) else {}


def _context_run() -> RunInfo:
    from airflow.sdk import get_current_context

    return run_info(get_current_context())


def batch_position(store: Any, entity: str, run_key: str, batch_id: str, records: int) -> str:
    """``batch 2/7 · 500 records``: the batch's place among its company's batches of this run."""
    batch_ids = store.batch_ids(entity, run_key)
    position = batch_ids.index(batch_id) + 1 if batch_id in batch_ids else None
    return batch_label(position, len(batch_ids) or None, records)


def _report_batch(context: Any, entity: str, upserter: Any, hook: Any) -> None:
    """Log which issue got what, with the JQL that shows them all; hand the Jira link to the operator."""
    rep = batch_report(upserter.outcomes.values())
    for line in rep.lines(entity):
        log.info("%s", line)
    jql = keys_jql(rep.all_keys)
    url = jira_search_url(hook.settings.site_url, jql) if jql else None
    if jql:
        log.info("%s: all %d issue(s) of this batch in Jira: %s", entity, len(rep.all_keys), url)
    set_batch_links(context["task"], jira=url)


# -- setup --------------------------------------------------------------------------------------------------


@fail_fast
def connect_task() -> dict[str, Any]:
    """Task of bc_jira_connect: validate everything, then write bc_jira_jira_fields / bc_jira_jira_users."""
    import json

    from airflow.sdk import Variable

    from bc_jira.config import ConfigError, load_config
    from bc_jira.hooks.jira import JiraCloudHook

    problems: list[str] = []
    try:
        cfg = load_config()
    except ConfigError as exc:
        raise ConnectError([f"bc_jira_config: {p}" for p in exc.problems]) from None
    hook = JiraCloudHook()
    cloud_id = None
    try:
        cloud_id = _resolve_cloud_id(hook)
    except Exception as exc:  # noqa: BLE001 - reported with the rest
        problems.append(f"jira_default: cannot resolve the Jira cloudId ({exc}); check site_url and consent")
        raise ConnectError(problems) from None
    rep = connect_checks(cfg, hook.client, cloud_id)
    problems += rep.problems
    written: list[tuple[str, object]] = [(FIELDS_VARIABLE_KEY, rep.fields), (USERS_VARIABLE_KEY, rep.users)]
    if cfg.companies:
        from bc_jira.config.companies import COMPANIES_VARIABLE_KEY
        from bc_jira.hooks.business_central import BusinessCentralHook
        from bc_jira.setup.companies import airflow_lister, check_companies

        crep = check_companies(cfg.companies, airflow_lister(lambda conn: BusinessCentralHook(conn)))
        problems += crep.problems
        rep.notes.extend(crep.notes)
        written.append((COMPANIES_VARIABLE_KEY, crep.resolved))
    if problems:
        raise ConnectError(problems)
    for key, value in written:
        Variable.set(key, json.dumps(value, sort_keys=True), description=variable_description(key))
    for note in rep.notes:
        log.info("%s", note)
    log.info(
        "connected: cloudId %s, %d field id(s), %d user(s) resolved",
        cloud_id,
        len(rep.fields),
        len(rep.users),
    )
    return {"cloud_id": cloud_id, "fields": rep.fields, "users": len(rep.users)}


def _resolve_cloud_id(hook: Any) -> str | None:
    """oauth2: the cloudId via accessible-resources; basic auth talks to the site URL and has none."""
    if hook.settings.auth == "basic":
        return None
    return hook.cloud_id


# -- write-back ---------------------------------------------------------------------------------------------


def _build(run: Mapping[str, Any] | None = None) -> WriteBack:
    import json

    from airflow.sdk import Variable

    from bc_jira.config import FIELDS_VARIABLE_KEY, load_config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy

    cfg = load_config()
    raw = Variable.get(FIELDS_VARIABLE_KEY, default=None)
    discovered = json.loads(raw) if raw else {}
    store = StateStore.from_airflow()
    return WriteBack(
        cfg=cfg,
        bc=BusinessCentralHook(),
        bc_for=_company_hooks(cfg) if cfg.companies else None,
        jira=JiraCloudHook(store=store, retry=retry_policy(cfg)),
        store=store,
        record_id_field=discovered.get(cfg.fields.record_id),
        run=run or {},
    )


def _company_hooks(cfg: Any) -> Any:
    """store key -> the BC hook of that company (the write-back acts in the record's own company)."""
    from bc_jira.config.companies import CompanyError, company_by_store_key
    from bc_jira.sync.companies import bc_hook, resolve_all

    cache: dict[str, Any] = {}

    def hook_for(key: str) -> Any:
        if key not in cache:
            companies, problems = resolve_all(cfg)
            company = company_by_store_key(companies, key)
            if company is None:
                why = "; ".join(problems) or "removed"
                raise CompanyError(f"company {key}: not in bc_jira_config or not resolvable ({why})")
            cache[key] = bc_hook(company)
        return cache[key]

    return hook_for


def _run_context() -> dict[str, Any]:
    from airflow.sdk import get_current_context

    from bc_jira.sync.base import run_info

    return dataclasses.asdict(run_info(get_current_context()))


def _summary(results: Sequence[Result], what: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    alarms = [r for r in results if r.alarm]
    if alarms:
        raise RuntimeError(
            f"{what}: {len(alarms)} issue(s) name another BC record than their link; nothing was written "
            "to BC for them: " + "; ".join(f"{r.issue}: {r.detail}" for r in alarms[:10])
        )
    transient = [r for r in results if r.transient]
    if transient:
        raise RuntimeError(
            f"{what}: {len(transient)} issue(s) failed and stay staged for replay: "
            + "; ".join(f"{r.issue}: {r.detail}" for r in transient[:10])
        )
    return {"counts": counts, "issues": [r.as_dict() for r in results[:100]]}


@fail_fast
def process_staged_task() -> dict[str, Any]:
    from bc_jira.sync.deferral import waiting_out_rate_limits

    wb = _build(_run_context())
    # Jira (or BC) asked to wait longer than the process waits: rescheduled; failed events stay staged.
    # _summary raises for failed issues: inside the block, so a rate-limit wait reschedules instead of failing
    with waiting_out_rate_limits(wb.jira, wb.bc, cfg=wb.cfg, what="staged transitions"):
        results = wb.process_pending()
        if not results:
            log.info("no staged transitions: no Jira issue reached a done status since the last run")
        return _summary(results, "staged transitions")


@fail_fast
def safety_net_task() -> dict[str, Any]:
    from bc_jira.sync.deferral import waiting_out_rate_limits

    wb = _build(_run_context())
    if not wb.record_id_field:
        log.warning(
            "safety-net poll skipped: no field id for %r; run bc_jira_connect", wb.cfg.fields.record_id
        )
        return {"counts": {}, "skipped": True}
    with waiting_out_rate_limits(wb.jira, wb.bc, cfg=wb.cfg, what="safety-net poll"):
        results = wb.poll_done_issues()
        if not results:
            log.info("safety-net poll: no done issue is waiting for its write-back")
        return _summary(results, "safety-net poll")

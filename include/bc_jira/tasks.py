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
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira.config import FIELDS_VARIABLE_KEY, USERS_VARIABLE_KEY
from bc_jira.config.variables import variable_description
from bc_jira.edges import BC_NOTIFICATION_PATH, JIRA_WEBHOOK_PATH
from bc_jira.edges.intake import BC_ENTITIES, bc_kind
from bc_jira.edges.subscriptions import ensure_bc_subscriptions
from bc_jira.edges.webhooks import (
    APP_DELIVERIES,
    JIRA_WEBHOOK_NAME,
    app_delivery_notice,
    check_basic_deliveries,
    ensure_jira_webhook,
    transitions_jql,
)
from bc_jira.entities import EVENT_ENTITIES
from bc_jira.failfast import fail_fast
from bc_jira.mapping import field_ids
from bc_jira.setup.connect import ConnectError, connect_checks
from bc_jira.sync.base import RunInfo, run_info
from bc_jira.sync.extract import extract
from bc_jira.sync.jira_ops import JiraOps
from bc_jira.sync.links import set_batch_links
from bc_jira.sync.report import LABEL_CONTEXT_KEY, batch_label, batch_report, jira_search_url, keys_jql
from bc_jira.sync.upsert import Upserter
from bc_jira.sync.watermark import held_records, hold_below, plan_watermark, watermark_key
from bc_jira.sync.writeback import WriteBack
from bc_jira.timeutil import iso, now

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.sync.outcome import Result

log = logging.getLogger(__name__)

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


@fail_fast
def bc_subscriptions_task(url: str | None = None) -> list[dict[str, Any]]:
    """The ``bc_subscriptions_renewal`` task: ensure, log, fail when any entity could not be secured."""
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    url = url or notification_url()
    store = StateStore.from_airflow()
    bc = BusinessCentralHook(call_limiter=store.call_slot)
    if not bc.settings.client_state:
        log.warning("bc_default has no extra.client_state: notifications cannot be authenticated; set one")
    outcomes = ensure_bc_subscriptions(bc, store, url)
    for o in outcomes:
        log.info("bc subscription %s: %s (expires %s) %s", o.name, o.action, o.expires, o.detail)
    failed = [o for o in outcomes if o.action == "failed"]
    if failed:
        raise RuntimeError(
            "could not secure BC subscriptions for "
            + ", ".join(f"{o.name} ({o.detail})" for o in failed)
            + f". The notification URL {url} must answer BC's "
            "validationToken handshake: check the Variable bc_jira_public_url and that the api-server with "
            "the bc_jira plugin is reachable from Business Central"
        )
    return [o.as_dict() for o in outcomes]


@fail_fast
def settle_covered_events_task() -> dict[str, int]:
    """Backstop: delete staged BC events the outbound watermarks already cover (audited)."""
    from airflow.sdk import Variable

    from bc_jira.config import WATERMARK_PREFIX
    from bc_jira.edges.settle import settle_bc_events
    from bc_jira.store import StateStore

    store = StateStore.from_airflow()
    out = {}
    for entity in BC_ENTITIES.values():
        mark = Variable.get(f"{WATERMARK_PREFIX}{entity}", default=None)
        out[entity] = settle_bc_events(store, entity, mark, run={"dag_id": "bc_subscriptions_renewal"})
        left = store.count_pending(bc_kind(entity))
        if left:
            log.info("%s: %d BC event(s) still staged (newer than watermark %s)", entity, left, mark)
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
    jql = transitions_jql(cfg.project_key, types or [cfg.purchase_invoices.issue_type])
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


SYNC_XCOM_KEY = "sync_state"


@fail_fast
def extract_task(entity: str) -> list[str]:
    """Task: validate config (every problem at once), read BC, save batches.

    Returns the batch ids (what the upserts map over); the watermark facts go to XCom key ``sync_state``.
    """
    from airflow.sdk import Variable, get_current_context

    from bc_jira.config import load_config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    cfg = load_config()
    field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY))  # fail here, before anything is read
    run = _context_run()
    watermark = Variable.get(watermark_key(entity), default=None)
    store = StateStore.from_airflow()
    events_scan: tuple[bool, datetime | None] = (False, None)
    if entity in EVENT_ENTITIES and not run.is_backfill:
        from bc_jira.edges.settle import bc_scan_since

        events_scan = bc_scan_since(store.pending_events(bc_kind(entity), limit=5000))
    result = extract(
        entity,
        cfg=cfg,
        bc=BusinessCentralHook(),
        store=store,
        run=run,
        watermark=watermark,
        events_scan=events_scan,
    )
    state = {k: result[k] for k in ("high_watermark", "watermark", "backfill", "read", "kept")}
    get_current_context()["ti"].xcom_push(key=SYNC_XCOM_KEY, value=state)
    return list(result["batch_ids"])


@fail_fast
def upsert_task(entity: str, batch_id: str, extract_task_id: str = "extract") -> dict[str, Any]:
    """Mapped task: upsert one stored batch. Clearing it replays exactly this batch.

    When Jira asks to wait longer than ``rate_limit.max_inline_wait_seconds``, the task is rescheduled for
    that time (``bc_jira.sync.deferral``) and runs the batch again, done records being no-ops. Its log names
    the issues created and updated (``bc_jira.sync.report``); its extra links open them in Jira and its audit
    rows (``bc_jira.sync.links``).
    """
    from airflow.sdk import get_current_context

    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits

    context = get_current_context()
    store = StateStore.from_airflow()
    records = store.load_batch(batch_id)
    label = _label_batch(context, batch_id, len(records), extract_task_id)
    cfg = load_config()
    ids = field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY))
    hook = JiraCloudHook(retry=retry_policy(cfg))
    upserter = Upserter(
        cfg=cfg,
        entity=entity,
        ids=ids,
        jira=JiraOps(hook),
        store=store,
        run=_context_run(),
        # only assignee rules by email need it; reading an empty "{}" registers a too-short secret (a warning)
        users=_variable_json(USERS_VARIABLE_KEY) if cfg.emails() else {},
    )
    log.info("%s: %s (%s)", entity, label, batch_id)
    try:
        with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} batch {batch_id}"):
            counts = upserter.upsert(records).as_dict()
    finally:
        _report_batch(context, entity, upserter, hook)
    # records another run holds: advance_watermark checks that they got synced before passing them
    return {**counts, "held": dict(upserter.held)}


def attach_task(entity: str, batch_id: str) -> dict[str, Any]:
    """Mapped task after the upserts: the vendor's files of one batch onto their issues, each once
    (``bc_jira.sync.attachments``). Clearing it replays exactly this batch; done files cost no call."""
    from bc_jira.config import load_config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.attachments import AttachmentSync
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits

    cfg = load_config()
    store = StateStore.from_airflow()
    hook = JiraCloudHook(retry=retry_policy(cfg))
    bc = BusinessCentralHook(call_limiter=store.call_slot)
    sync = AttachmentSync(cfg=cfg, entity=entity, jira=hook, bc=bc, store=store, run=_context_run())
    with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} attachments of batch {batch_id}"):
        counts = sync.attach(store.load_batch(batch_id)).as_dict()
    log.info("%s: batch %s attachments: %s", entity, batch_id, counts)
    return counts


def _label_batch(context: Any, batch_id: str, records: int, extract_task_id: str) -> str:
    """``batch 2/7 · 500 records``: the context variable the upsert's ``map_index_template`` renders."""
    batch_ids = context["ti"].xcom_pull(task_ids=extract_task_id) or []
    position = batch_ids.index(batch_id) + 1 if batch_id in batch_ids else None
    label = batch_label(position, len(batch_ids) or None, records)
    context[LABEL_CONTEXT_KEY] = label
    return label


def _report_batch(context: Any, entity: str, upserter: Upserter, hook: Any) -> None:
    """Log which issue got what, with the JQL that shows them all; hand the Jira link to the operator."""
    rep = batch_report(upserter.outcomes.values())
    for line in rep.lines(entity):
        log.info("%s", line)
    jql = keys_jql(rep.all_keys)
    url = jira_search_url(hook.settings.site_url, jql) if jql else None
    if jql:
        log.info("%s: all %d issue(s) of this batch in Jira: %s", entity, len(rep.all_keys), url)
    set_batch_links(context["task"], jira=url)


@fail_fast
def finalize_task(
    entity: str,
    extracted: Mapping[str, Any] | None = None,
    extract_task_id: str = "extract",
    upsert_task_id: str = "upsert",
) -> str | None:
    """Task (after every batch succeeded): advance the watermark; backfill runs leave it alone.

    Read-compare-write under a state-store lock, comparing with the Variable's value now: two runs finishing
    at the same moment, or a replay of an older run, can never move it backwards.
    """
    from airflow.sdk import Variable, get_current_context

    from bc_jira.store import StateStore

    ti = get_current_context()["ti"]
    if extracted is None:
        extracted = ti.xcom_pull(task_ids=extract_task_id, key=SYNC_XCOM_KEY) or {}
    store = StateStore.from_airflow()
    held = {} if extracted.get("backfill") else held_records(ti.xcom_pull(task_ids=upsert_task_id))
    hold = hold_below(held, store.get_links(entity, list(held))) if held else None

    key = watermark_key(entity)
    with store.call_slot(f"watermark:{key}", 1, timeout=120):
        current = Variable.get(key, default=None)
        plan = plan_watermark(extracted, current, hold, key)
        if plan.write:
            Variable.set(key, plan.value, description=variable_description(key))
    log.info("%s: %s", entity, plan.message)
    new = plan.value
    if entity in EVENT_ENTITIES and not extracted.get("backfill") and new:
        from bc_jira.edges.settle import settle_bc_events

        run = _context_run()
        settled = settle_bc_events(
            store,
            entity,
            new,
            run={
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "try_number": run.try_number,
            },
        )
        log.info("%s: %d staged BC notification(s) settled by this sync", entity, settled)
    try:
        store.purge_batches(datetime.now(UTC) - timedelta(days=7))
    except Exception:
        log.warning("%s: purging old batches failed", entity, exc_info=True)
    return new


@fail_fast
def deletions_task(entity: str) -> dict[str, Any]:
    """Task: follow records deleted in BC (``bc_jira.sync.deletions``); fails while any is still owed."""
    from bc_jira.config import load_config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy
    from bc_jira.sync.deletions import Deletions, follow_deletions

    cfg = load_config()
    if not cfg.entity(entity).enabled:
        return {"skipped": True}
    store = StateStore.from_airflow()
    run = _context_run()
    jira = JiraOps(JiraCloudHook(store=store, retry=retry_policy(cfg)))
    d = Deletions(cfg=cfg, entity=entity, store=store, jira=jira, run=run)
    out = follow_deletions(
        d, BusinessCentralHook(), now().date(), bc_kind(entity), reconcile=not run.is_backfill
    )
    log.info("%s: deletions %s; reconcile %s", entity, out["counts"], out["reconcile"])
    if out["pending"]:
        raise RuntimeError(f"{entity}: {out['pending']} deletion(s) not carried to Jira yet; retried")
    return out


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
    if problems:
        raise ConnectError(problems)
    for key, value in ((FIELDS_VARIABLE_KEY, rep.fields), (USERS_VARIABLE_KEY, rep.users)):
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
        jira=JiraCloudHook(store=store, retry=retry_policy(cfg)),
        store=store,
        record_id_field=discovered.get(cfg.fields.record_id),
        run=run or {},
    )


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

"""The task entry points: the only module that builds hooks and stores from Airflow (Variable, context,
connections). The DAG files and the DAG factory call these."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira.config import FIELDS_VARIABLE_KEY, USERS_VARIABLE_KEY
from bc_jira.entities import EVENT_ENTITIES
from bc_jira.mapping import field_ids
from bc_jira.setup.connect import ConnectError, connect_checks
from bc_jira.sync.base import RunInfo, run_info
from bc_jira.sync.extract import extract
from bc_jira.sync.jira_ops import JiraOps
from bc_jira.sync.upsert import Upserter
from bc_jira.sync.watermark import held_records, hold_below, plan_watermark, watermark_key
from bc_jira.sync.writeback import Result, WriteBack

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

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
        from bc_jira.intake import bc_kind, bc_scan_since

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


def upsert_task(entity: str, batch_id: str) -> dict[str, Any]:
    """Mapped task: upsert one stored batch. Clearing it replays exactly this batch.

    When Jira asks to wait longer than ``rate_limit.max_inline_wait_seconds``, the task is rescheduled for
    that time (``bc_jira.sync.deferral``) and runs the batch again, done records being no-ops.
    """
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits

    cfg = load_config()
    ids = field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY))
    store = StateStore.from_airflow()
    records = store.load_batch(batch_id)
    hook = JiraCloudHook(retry=retry_policy(cfg))
    upserter = Upserter(
        cfg=cfg,
        entity=entity,
        ids=ids,
        jira=JiraOps(hook),
        store=store,
        run=_context_run(),
        users=_variable_json(USERS_VARIABLE_KEY),
    )
    log.info("%s: batch %s with %d record(s)", entity, batch_id, len(records))
    with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} batch {batch_id}"):
        counts = upserter.upsert(records).as_dict()
    # records another run holds: advance_watermark checks that they got synced before passing them
    return {**counts, "held": dict(upserter.held)}


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
            Variable.set(key, plan.value)
    log.info("%s: %s", entity, plan.message)
    new = plan.value
    if entity in EVENT_ENTITIES and not extracted.get("backfill") and new:
        from bc_jira.intake import settle_bc_events

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


# -- setup --------------------------------------------------------------------------------------------------


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
    Variable.set(FIELDS_VARIABLE_KEY, json.dumps(rep.fields, sort_keys=True))
    Variable.set(USERS_VARIABLE_KEY, json.dumps(rep.users, sort_keys=True))
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


def process_staged_task() -> dict[str, Any]:
    from bc_jira.sync.deferral import waiting_out_rate_limits

    wb = _build(_run_context())
    # Jira (or BC) asked to wait longer than the process waits: rescheduled; failed events stay staged.
    with waiting_out_rate_limits(wb.jira, wb.bc, cfg=wb.cfg, what="staged transitions"):
        return _summary(wb.process_pending(), "staged transitions")


def safety_net_task() -> dict[str, Any]:
    from bc_jira.sync.deferral import waiting_out_rate_limits

    wb = _build(_run_context())
    if not wb.record_id_field:
        log.warning(
            "safety-net poll skipped: no field id for %r; run bc_jira_connect", wb.cfg.fields.record_id
        )
        return {"counts": {}, "skipped": True}
    with waiting_out_rate_limits(wb.jira, wb.bc, cfg=wb.cfg, what="safety-net poll"):
        return _summary(wb.poll_done_issues(), "safety-net poll")

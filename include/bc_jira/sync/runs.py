"""The sync DAGs' task entry points, per company: companies → extract (mapped per company) → batches →
upsert (mapped per batch) → [attach] → advance_watermark, follow_deletions.

Why this shape (Airflow 3.3): a mapped task over a mapped upstream gets one value per upstream instance (a
company's list of batches), not the batches, so ``batches`` (trigger rule ``all_done``) flattens the lists of
the extracts that succeeded: a company whose extract failed (permissions, deleted company) fails that
``extract`` instance alone and the other companies' batches still run. ``advance_watermark`` and
``follow_deletions`` run ``all_done`` and act per company: a company's watermark moves only when its extract
and every one of its batches succeeded (the others' do). Every log line and map label names the company.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira.config import FIELDS_VARIABLE_KEY, USERS_VARIABLE_KEY, ConfigError
from bc_jira.config.companies import Company, CompanyError, company_by_store_key
from bc_jira.config.variables import variable_description
from bc_jira.edges.intake import bc_kind
from bc_jira.entities import EVENT_ENTITIES
from bc_jira.failfast import fail_fast
from bc_jira.mapping import field_ids
from bc_jira.sync.companies import bc_hook, company_refs, resolve, resolve_all
from bc_jira.sync.watermark import held_records, hold_below, plan_watermark
from bc_jira.timeutil import now

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.config import Config
    from bc_jira.store import StateStore
    from bc_jira.sync.base import RunInfo

log = logging.getLogger(__name__)

SYNC_XCOM_KEY = "sync_state"
COMPANY_CONTEXT_KEY = "bc_jira_company_label"  # what the extract's map_index_template renders


def _ctx() -> Any:
    from airflow.sdk import get_current_context

    return get_current_context()


def _run() -> RunInfo:
    from bc_jira.sync.base import run_info

    return run_info(_ctx())


def _fields(cfg: Config) -> Any:
    from bc_jira.tasks import _variable_json

    return field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY), with_company=bool(cfg.companies))


def _store(company: Company) -> StateStore:
    from bc_jira.store import StateStore

    return StateStore.from_airflow().for_company(company.store_key, company.company_id)


def companies_task() -> list[dict[str, Any]]:
    """The companies to sync (what the per-company tasks map over). A config that does not parse yields the
    single company: the extract then fails with every problem of the document, as it always did."""
    from bc_jira.config import load_config

    try:
        cfg: Config | None = load_config()
    except ConfigError:
        cfg = None
    refs = company_refs(cfg)
    log.info("companies to sync: %s", ", ".join(r["label"] or "the connection's company" for r in refs))
    return refs


def _refused(company: Company, exc: Exception) -> CompanyError:
    return CompanyError(
        f"company {company.label} (id {company.company_id} on {company.connection}): Business Central "
        f"refused it ({exc}); check that the company still exists and that the app's permission sets "
        "cover it. The other companies are synced apart"
    )


@fail_fast
def extract_task(entity: str, ref: Mapping[str, Any] | None = None) -> list[str]:
    """Task (one per company): validate config, read the company's BC records, save its batches."""
    from airflow.sdk import Variable

    from bc_jira.config import load_config
    from bc_jira.http import AuthError, NotFoundError
    from bc_jira.sync.extract import extract

    context = _ctx()
    cfg = load_config()
    _fields(cfg)  # fail here, before anything is read
    index = int((ref or {}).get("index", -1))
    context[COMPANY_CONTEXT_KEY] = (ref or {}).get("label") or ""
    company = resolve(cfg, index)
    context[COMPANY_CONTEXT_KEY] = company.label if cfg.companies else ""
    run = _run()
    key = company.watermark_key(entity)
    watermark = Variable.get(key, default=None)
    store = _store(company)
    events_scan: tuple[bool, datetime | None] = (False, None)
    if entity in EVENT_ENTITIES and not run.is_backfill:
        from bc_jira.edges.settle import bc_scan_since

        events_scan = bc_scan_since(store.pending_events(bc_kind(entity), limit=5000))
    if cfg.companies:
        log.info("%s: company %s, watermark %s = %s", entity, company.label, key, watermark)
    try:
        result = extract(
            entity,
            cfg=company.config(cfg),
            bc=bc_hook(company, call_limiter=store.call_slot),
            store=store,
            run=run,
            watermark=watermark,
            events_scan=events_scan,
        )
    except (AuthError, NotFoundError) as exc:
        if not cfg.companies:
            raise
        raise _refused(company, exc) from None
    state = {k: result[k] for k in ("high_watermark", "watermark", "backfill", "read", "kept")}
    context["ti"].xcom_push(key=SYNC_XCOM_KEY, value={**state, "company": company.store_key})
    return list(result["batch_ids"])


def batches_task(companies_task_id: str = "companies", extract_task_id: str = "extract") -> list[str]:
    """Every batch of the companies whose extract succeeded, in company order (trigger rule all_done)."""
    ti = _ctx()["ti"]
    refs = ti.xcom_pull(task_ids=companies_task_id) or []
    lists = ti.xcom_pull(task_ids=extract_task_id, map_indexes=list(range(len(refs)))) or []
    out: list[str] = []
    for ref, ids in zip(refs, lists, strict=False):
        if ids is None:
            log.warning("company %s: its extract failed; its records wait for the next run", ref["label"])
            continue
        out.extend(ids)
    return out


def _batch_company(cfg: Config, store: StateStore, batch_id: str) -> Company:
    key = store.batch_company(batch_id)
    if not cfg.companies:
        return resolve(cfg, -1)
    companies, problems = resolve_all(cfg)
    company = company_by_store_key(companies, key)
    if company is None:
        raise CompanyError(
            f"batch {batch_id} belongs to company {key or 'default'}, which bc_jira_config no longer lists "
            f"or cannot resolve ({'; '.join(problems) or 'removed'})"
        )
    return company


@fail_fast
def upsert_task(entity: str, batch_id: str) -> dict[str, Any]:
    """Mapped task: upsert one stored batch in its company. Clearing it replays exactly this batch."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits
    from bc_jira.sync.jira_ops import JiraOps
    from bc_jira.sync.report import LABEL_CONTEXT_KEY
    from bc_jira.sync.upsert import Upserter
    from bc_jira.tasks import _report_batch, _variable_json, batch_position

    context = _ctx()
    cfg = load_config()
    company = _batch_company(cfg, StateStore.from_airflow(), batch_id)
    store = _store(company)
    records = store.load_batch(batch_id)
    label = batch_position(store, entity, _run().run_id, batch_id, len(records))
    if cfg.companies:
        label = f"{company.name or company.key} · {label}"
    context[LABEL_CONTEXT_KEY] = label
    ccfg = company.config(cfg)
    hook = JiraCloudHook(retry=retry_policy(cfg))
    upserter = Upserter(
        cfg=ccfg,
        entity=entity,
        ids=_fields(cfg),
        jira=JiraOps(hook),
        store=store,
        run=_run(),
        # only assignee rules by email need it; reading an empty "{}" registers a too-short secret (a warning)
        users=_variable_json(USERS_VARIABLE_KEY) if ccfg.emails() else {},
    )
    log.info("%s: %s (%s)", entity, label, batch_id)
    try:
        with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} batch {batch_id}"):
            counts = upserter.upsert(records).as_dict()
    finally:
        _report_batch(context, entity, upserter, hook)
    # records another run holds: advance_watermark checks that they got synced before passing them
    return {**counts, "held": dict(upserter.held), "batch_id": batch_id}


def attach_task(entity: str, batch_id: str) -> dict[str, Any]:
    """Mapped task after the upserts: the vendor's files of one batch onto their issues, in its company."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.attachments import AttachmentSync
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits

    cfg = load_config()
    company = _batch_company(cfg, StateStore.from_airflow(), batch_id)
    store = _store(company)
    hook = JiraCloudHook(retry=retry_policy(cfg))
    bc = bc_hook(company, call_limiter=store.call_slot)
    sync = AttachmentSync(cfg=company.config(cfg), entity=entity, jira=hook, bc=bc, store=store, run=_run())
    with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} attachments of batch {batch_id}"):
        counts = sync.attach(store.load_batch(batch_id)).as_dict()
    log.info("%s: batch %s attachments: %s", entity, batch_id, counts)
    return {**counts, "batch_id": batch_id}


def _done_batches(ti: Any, task_id: str) -> dict[str, Any]:
    """batch id -> result of the mapped instances of ``task_id`` that succeeded (only those push one)."""
    results = ti.xcom_pull(task_ids=task_id)
    items = results if isinstance(results, list) else [results]
    return {r["batch_id"]: r for r in items if isinstance(r, dict) and r.get("batch_id")}


def _company_blocker(
    ids: list[str] | None, done: Mapping[str, Any], attached: Mapping[str, Any] | None
) -> str:
    if ids is None:
        return "its extract failed"
    missing = [b for b in ids if b not in done]
    if missing:
        return f"{len(missing)} of its {len(ids)} batch(es) failed"
    if attached is not None and any(b not in attached for b in ids):
        return "an attachment upload of its batches failed"
    return ""


@fail_fast
def finalize_task(entity: str, *, attachments: bool = False) -> Any:
    """Task (all_done): per company, advance its watermark when its extract and every batch succeeded."""
    from bc_jira.config import load_config
    from bc_jira.store import StateStore

    ti = _ctx()["ti"]
    cfg = load_config()
    refs = ti.xcom_pull(task_ids="companies") or []
    indexes = list(range(len(refs)))
    states = ti.xcom_pull(task_ids="extract", key=SYNC_XCOM_KEY, map_indexes=indexes) or []
    lists = ti.xcom_pull(task_ids="extract", map_indexes=indexes) or []
    done = _done_batches(ti, "upsert")
    attached = _done_batches(ti, "attach") if attachments else None
    out: dict[str, str | None] = {}
    blocked: list[str] = []
    for ref, state, ids in zip(refs, states, lists, strict=False):
        blocker = _company_blocker(ids if state is not None else None, done, attached)
        if blocker:
            who = f"company {ref['label']}: " if ref["label"] else ""
            blocked.append(f"{who}watermark not advanced: {blocker}")
            continue
        company = resolve(cfg, int(ref["index"]))
        mine = [done[b] for b in ids or []]
        out[company.store_key] = _advance(entity, company, state, mine, _store(company))
    try:
        StateStore.from_airflow().purge_batches(datetime.now(UTC) - timedelta(days=7))
    except Exception:
        log.warning("%s: purging old batches failed", entity, exc_info=True)
    if blocked:
        # the run must show failed (Airflow derives it from the leaf tasks); a retry cannot change upstream
        from airflow.sdk.exceptions import AirflowFailException

        message = f"{entity}: " + "; ".join(blocked) + ". Clear the failed tasks to run them again"
        log.error("%s", message)
        raise AirflowFailException(message)
    if not cfg.companies:  # one company: the watermark, as before companies
        return out.get("")
    return out


def _advance(
    entity: str, company: Company, extracted: Mapping[str, Any], results: list[Any], store: StateStore
) -> str | None:
    """Read-compare-write of one company's watermark under a state-store lock (never backwards)."""
    from airflow.sdk import Variable

    held = {} if extracted.get("backfill") else held_records(results)
    hold = hold_below(held, store.get_links(entity, list(held))) if held else None
    key = company.watermark_key(entity)
    with store.call_slot(f"watermark:{key}", 1, timeout=120):
        current = Variable.get(key, default=None)
        plan = plan_watermark(extracted, current, hold, key)
        if plan.write:
            Variable.set(key, plan.value, description=variable_description(key))
    log.info("%s: %s", entity, plan.message)
    if entity in EVENT_ENTITIES and not extracted.get("backfill") and plan.value:
        from bc_jira.edges.settle import settle_bc_events

        run = _run()
        settled = settle_bc_events(
            store,
            entity,
            plan.value,
            named_only=not company.default,
            run={
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "try_number": run.try_number,
            },
        )
        log.info("%s: %d staged BC notification(s) settled by this sync", entity, settled)
    return plan.value


@fail_fast
def deletions_task(entity: str) -> dict[str, Any]:
    """Task: follow records deleted in BC, per company; a company that fails does not stop the others."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.sync.deferral import retry_policy
    from bc_jira.sync.deletions import Deletions, follow_deletions
    from bc_jira.sync.jira_ops import JiraOps

    cfg = load_config()
    if not cfg.entity(entity).enabled:
        return {"skipped": True}
    run = _run()
    companies, problems = resolve_all(cfg)
    out: dict[str, Any] = {}
    for company in companies:
        store = _store(company)
        jira = JiraOps(JiraCloudHook(store=store, retry=retry_policy(cfg)))
        d = Deletions(cfg=company.config(cfg), entity=entity, store=store, jira=jira, run=run)
        try:
            res = follow_deletions(
                d, bc_hook(company), now().date(), bc_kind(entity), reconcile=not run.is_backfill
            )
        except Exception as exc:
            if not cfg.companies:
                raise
            problems.append(f"company {company.label}: {type(exc).__name__}: {exc}")
            continue
        log.info("%s: %s deletions %s; reconcile %s", entity, company.label, res["counts"], res["reconcile"])
        if res["pending"]:
            who = f"company {company.label}: " if cfg.companies else ""
            problems.append(f"{who}{res['pending']} deletion(s) not carried to Jira yet")
        out[company.store_key] = res
    if problems:
        raise RuntimeError(f"{entity}: " + "; ".join(problems) + "; retried")
    return out[""] if list(out) == [""] and not cfg.companies else out

"""One benchmark step in its own process, as an Airflow task would run it; prints one JSON line.

``extract RUN [WATERMARK]``: read BC, write batches (the extract task of run RUN). ``upsert ID...``: upsert
batches (mapped tasks; a worker runs several in a row like a Celery/Local worker slot). ``attach ID...``: the
vendor's files of those batches. ``census``: the issues in Jira and the record ids they carry.
``baseline N``: the naive per-record integration. ``dag DAG_ID``: one run of a DAG (``dag.test()``).
Every answer carries the process's own CPU seconds
(user + system, from ``getrusage``) and peak RSS; an upsert also its slowest batch's own time (from loading
the batch to its counts, without the process start-up).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from bc_jira.config import load_config
from bc_jira.hooks.business_central import BusinessCentralHook
from bc_jira.hooks.jira import JiraCloudHook
from bc_jira.mapping import field_ids
from bc_jira.store import StateStore
from bc_jira.sync import extract as sync_extract
from bc_jira.sync.base import RunInfo
from bc_jira.sync.jira_ops import JiraOps
from bc_jira.sync.upsert import Upserter

ENTITY = "purchase_invoices"


def _fields(jira: JiraCloudHook) -> Any:
    """The config and field ids; ``BENCH_FIELD_IDS`` (name -> id) stands for the ``bc_jira_fields`` Variable
    that ``upsert_task`` reads, so the incremental measurement asks Jira no more than the real task does."""
    cfg = load_config()
    known = os.environ.get("BENCH_FIELD_IDS")
    return cfg, field_ids(cfg.fields, json.loads(known) if known else jira.field_ids_by_name())


def extract(run_id: str, watermark: str | None) -> dict[str, Any]:
    cfg = load_config()
    run = RunInfo(dag_id="bench", run_id=run_id, task_id="extract", run_type="manual")
    result = sync_extract.extract(
        ENTITY,
        cfg=cfg,
        bc=BusinessCentralHook(),
        store=StateStore.from_airflow(),
        run=run,
        watermark=watermark,
    )
    xcom = {k: result[k] for k in ("high_watermark", "watermark", "backfill", "read", "kept")}
    return {
        "batch_ids": result["batch_ids"],
        "read": result["read"],
        "kept": result["kept"],
        "high_watermark": result["high_watermark"],
        "xcom_bytes": max(len(json.dumps(result["batch_ids"])), len(json.dumps(xcom))),
    }


def upsert(batch_ids: list[str]) -> dict[str, Any]:
    jira = JiraCloudHook()
    cfg, ids = _fields(jira)
    store = StateStore.from_airflow()
    totals: dict[str, int] = {}
    xcom_bytes = 0
    slowest = 0.0
    for index, batch_id in enumerate(batch_ids):
        start = time.monotonic()
        run = RunInfo(dag_id="bench", run_id="bench", task_id="upsert", map_index=index)
        upserter = Upserter(cfg=cfg, entity=ENTITY, ids=ids, jira=JiraOps(jira), store=store, run=run)
        counts = upserter.upsert(store.load_batch(batch_id)).as_dict()
        slowest = max(slowest, time.monotonic() - start)
        xcom_bytes = max(xcom_bytes, len(json.dumps(counts)))
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return {"counts": totals, "xcom_bytes": xcom_bytes, "slowest_batch_s": round(slowest, 3)}


def attach(batch_ids: list[str]) -> dict[str, Any]:
    """The attach mapped tasks: each batch's vendor files onto its issues (counted on their own line)."""
    from bc_jira.sync.attachments import AttachmentSync

    cfg = load_config()
    store = StateStore.from_airflow()
    jira, bc = JiraCloudHook(), BusinessCentralHook(call_limiter=store.call_slot)
    totals: dict[str, int] = {}
    for index, batch_id in enumerate(batch_ids):
        run = RunInfo(dag_id="bench", run_id="bench", task_id="attach", map_index=index)
        sync = AttachmentSync(cfg=cfg, entity=ENTITY, jira=jira, bc=bc, store=store, run=run)
        for key, value in sync.attach(store.load_batch(batch_id)).as_dict().items():
            totals[key] = totals.get(key, 0) + value
    return {"counts": totals}


def baseline(limit: int) -> dict[str, Any]:
    """What per-record integrations do: page through BC, then one JQL search and one create per record."""
    jira = JiraCloudHook()
    cfg, ids = _fields(jira)
    ecfg = cfg.entity(ENTITY)
    done = 0
    start = time.monotonic()
    for rec in BusinessCentralHook().iter_modified(ecfg.entity_set, None, extra_filter="status eq 'Draft'"):
        found = jira.search_all(
            f'project = {cfg.project_key} AND cf[{ids.record_id.split("_")[-1]}] ~ "{rec["id"]}"'
        )
        if not found:
            jira.create_issue(
                {
                    "project": {"key": cfg.project_key},
                    "issuetype": {"name": ecfg.issue_type},
                    "summary": f"Purchase invoice {rec['number']} from {rec.get('vendorName', '')}",
                    ids.record_id: rec["id"],
                }
            )
        done += 1
        if done >= limit:
            break
    return {"records": done, "seconds": time.monotonic() - start}


def census() -> dict[str, Any]:
    """Every issue of the project and the distinct record ids they carry (one search page per 5,000)."""
    jira = JiraCloudHook()
    cfg, ids = _fields(jira)
    issues, carried = 0, set()
    for page in jira.search_pages(f"project = {cfg.project_key}", ["id", ids.record_id], max_results=5000):
        issues += len(page)
        carried.update((i.get("fields") or {}).get(ids.record_id) for i in page)
    carried.discard(None)
    return {"issues": issues, "record_ids": len(carried), "field_ids": jira.field_ids_by_name()}


def run_dag(dag_id: str) -> dict[str, Any]:
    """One real run of a DAG with ``dag.test()`` (its tasks one after another in this process); the run's
    state and its task instances' states by task id."""
    from collections import Counter

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags[dag_id]
    dr = dag.test()
    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=dag_id, run_id=dr.run_id).all()
        states = Counter(f"{ti.task_id}:{ti.state}" for ti in tis)
        marks = session.query(Variable).filter(Variable.key.like("bc_jira_watermark_%")).all()
        watermarks = {v.key: v.val for v in marks}
    return {
        "state": str(dr.state),
        "run_id": dr.run_id,
        "tasks": dict(sorted(states.items())),
        "watermarks": dict(sorted(watermarks.items())),
    }


def main(argv: list[str]) -> int:
    step, args = argv[0], argv[1:]
    if step == "extract":
        out = extract(args[0], args[1] if len(args) > 1 else None)
    elif step == "upsert":
        out = upsert(args)
    elif step == "census":
        out = census()
    elif step == "attach":
        out = attach(args)
    elif step == "baseline":
        out = baseline(int(args[0]))
    elif step == "dag":
        out = run_dag(args[0])
    else:
        raise SystemExit(
            f"unknown step {step!r}: extract RUN [WATERMARK] | upsert ID... | attach ID... | census "
            "| baseline N | dag DAG_ID"
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: KiB
    out["cpu_s"] = usage.ru_utime + usage.ru_stime
    print("BENCH " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

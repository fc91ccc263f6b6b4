"""The one DAG factory of the three BC -> Jira DAGs, their default arguments and retry policy."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bc_jira.entities import EVENT_ENTITIES, has_attachments

if TYPE_CHECKING:
    from collections.abc import Sequence

log = logging.getLogger(__name__)

# -- DAG wiring helpers ---------------------------------------------------------------------------

# Retries must wait longer than Jira's search lag so a retried batch can find what a lost answer created.
RETRY_DELAY_SECONDS = int(os.environ.get("BC_JIRA_RETRY_DELAY_SECONDS", "120"))
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "bc-jira",
    "retries": int(os.environ.get("BC_JIRA_RETRIES", "3")),
    "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}


def schedule_for(entity: str, cron: str) -> Any:
    """Cron with real data intervals (backfill windows); OR'ed with the BC change-notification asset
    (``bc_jira.edges.triggers.bc_change_asset``) for the entities BC notifies about."""
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    from bc_jira.edges.triggers import bc_change_asset

    timetable = CronDataIntervalTimetable(cron, timezone="UTC")
    if entity not in EVENT_ENTITIES:
        return timetable
    return AssetOrTimeSchedule(timetable=timetable, assets=bc_change_asset(entity))


def sync_dag(entity: str, *, dag_id: str, cron: str, doc_md: str | None, tags: Sequence[str]) -> Any:
    """The one shape of the three BC → Jira DAGs, every company in each (``bc_jira.sync.runs``):
    companies → extract (mapped per company) → batches → upsert (mapped per batch) → [attach (mapped per
    batch, entities with attachments)] → advance_watermark (per company), and after the upserts
    ``follow_deletions`` (deleted notifications and the daily reconcile).

    The DAG files keep what differs (id, schedule, docs); the wiring lives once here.
    """
    import pendulum
    from airflow.sdk import dag, task

    from bc_jira.sync.links import batch_upsert_task
    from bc_jira.sync.report import MAP_INDEX_TEMPLATE
    from bc_jira.sync.runs import COMPANY_CONTEXT_KEY
    from bc_jira.tasks import (
        attach_task,
        batches_task,
        companies_task,
        deletions_task,
        extract_task,
        finalize_task,
        upsert_task,
    )

    @dag(
        dag_id=dag_id,
        schedule=schedule_for(entity, cron),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["bc-jira", "outbound", *tags],
        doc_md=doc_md,
    )
    def sync() -> None:
        # every task returning a dict sets multiple_outputs=False: Airflow would otherwise infer True from the
        # annotation and push one extra XCom per key (nobody reads them; a company-keyed result has the key ""
        # for the default company, which Airflow refuses as an XCom key)
        @task
        def companies() -> list[dict]:
            return companies_task()

        # one per company; the UI labels each with its company (empty without ``companies``)
        @task(map_index_template="{{ " + COMPANY_CONTEXT_KEY + " }}")
        def extract(ref: dict) -> list[str]:
            return extract_task(entity, ref)

        # the batches of every company whose extract succeeded: a failing company stops only itself
        @task(trigger_rule="all_done")
        def batches() -> list[str]:
            return batches_task()

        # extra links: the batch's issues, its audit rows; UI label "<company> · batch 2/7 · 500 records"
        @batch_upsert_task(
            max_active_tis_per_dagrun=8, map_index_template=MAP_INDEX_TEMPLATE, multiple_outputs=False
        )
        def upsert(batch_id: str) -> dict:
            return upsert_task(entity, batch_id)

        # per company: its watermark moves only when its extract and all its batches succeeded
        @task(trigger_rule="all_done")
        def advance_watermark() -> Any:
            return finalize_task(entity, attachments=has_attachments(entity))

        @task(trigger_rule="all_done", multiple_outputs=False)
        def follow_deletions() -> dict:
            return deletions_task(entity)

        refs = companies()
        extracted = extract.expand(ref=refs)
        ids = batches()
        extracted >> ids
        upserts = upsert.expand(batch_id=ids)
        upserts >> follow_deletions()  # after the upserts: a deleted record's link is not written back over
        finish = advance_watermark()
        extracted >> finish
        if not has_attachments(entity):
            upserts >> finish
            return

        @task(max_active_tis_per_dagrun=4, multiple_outputs=False)
        def attach(batch_id: str) -> dict:
            return attach_task(entity, batch_id)

        # after every upsert (the issues exist), before the watermark (a failed upload holds it: re-read)
        upserts >> attach.expand(batch_id=ids) >> finish

    return sync()

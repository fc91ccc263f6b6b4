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
    """The one shape of the three BC → Jira DAGs: extract → upsert (mapped per batch) → [attach (mapped per
    batch, entities with attachments)] → advance_watermark, and after the upserts ``follow_deletions``
    (deleted notifications and the daily reconcile).

    The DAG files keep what differs (id, schedule, docs); the wiring lives once here.
    """
    import pendulum
    from airflow.sdk import dag, task

    from bc_jira.sync.links import batch_upsert_task
    from bc_jira.sync.report import MAP_INDEX_TEMPLATE
    from bc_jira.tasks import attach_task, deletions_task, extract_task, finalize_task, upsert_task

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
        @task
        def extract() -> list[str]:
            return extract_task(entity)

        # extra links: the batch's issues, its audit rows; the UI labels it "batch 2/7 · 500 records"
        @batch_upsert_task(max_active_tis_per_dagrun=8, map_index_template=MAP_INDEX_TEMPLATE)
        def upsert(batch_id: str) -> dict:
            return upsert_task(entity, batch_id)

        @task(trigger_rule="none_failed")
        def advance_watermark() -> str | None:
            return finalize_task(entity)

        @task(trigger_rule="all_done")
        def follow_deletions() -> dict:
            return deletions_task(entity)

        batches = extract()
        upserts = upsert.expand(batch_id=batches)
        upserts >> follow_deletions()  # after the upserts: a deleted record's link is not written back over
        if not has_attachments(entity):
            upserts >> advance_watermark()
            return

        @task(max_active_tis_per_dagrun=4)
        def attach(batch_id: str) -> dict:
            return attach_task(entity, batch_id)

        # after every upsert (the issues exist), before the watermark (a failed upload holds it: re-read)
        upserts >> attach.expand(batch_id=batches) >> advance_watermark()

    return sync()

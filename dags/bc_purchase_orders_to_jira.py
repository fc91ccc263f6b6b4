"""
### BC purchase orders → Jira issues

Purchase orders that need a human step (the selection in `bc_jira_config`, default status *In Review*, i.e.
pending approval) become Jira issues; an order released in BC gets a comment on its issue (and, when
configured, the `resolved_transition`).

* **extract** reads orders modified since `bc_jira_watermark_purchase_orders` (minus `overlap_seconds`),
  stores them as batches. XCom carries batch ids only.
* **upsert** (one mapped task per batch): link table → one JQL search → bulk create (50 per call) → edit only
  when the fields we own changed; one audit row per record.
* **advance_watermark** only after every batch succeeded; backfill runs leave the watermark alone.

Trigger: cron only (every 30 minutes) — BC sends no webhooks for purchase orders.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from bc_jira import outbound

ENTITY = "purchase_orders"

# Cron with data intervals only: BC offers no change notifications for purchase orders.
SCHEDULE = outbound.schedule_for(ENTITY, "*/30 * * * *")


@dag(
    dag_id="bc_purchase_orders_to_jira",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=outbound.DEFAULT_ARGS,
    tags=["bc-jira", "outbound", "purchase-orders"],
    doc_md=__doc__,
)
def bc_purchase_orders_to_jira() -> None:
    @task
    def extract() -> list[str]:
        return outbound.extract_task(ENTITY)

    @task(max_active_tis_per_dagrun=8)
    def upsert(batch_id: str) -> dict:
        return outbound.upsert_task(ENTITY, batch_id)

    @task(trigger_rule="none_failed")
    def advance_watermark() -> str | None:
        return outbound.finalize_task(ENTITY)

    upsert.expand(batch_id=extract()) >> advance_watermark()


bc_purchase_orders_to_jira()

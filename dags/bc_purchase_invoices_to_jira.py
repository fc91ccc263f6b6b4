"""
### BC purchase invoices → Jira issues

Draft purchase invoices in Business Central (the selection in `bc_jira_config`, default status *Draft*) become
Jira issues of the configured type; posting the invoice in BC comments (and optionally transitions) its issue.

* **extract** reads invoices modified since `bc_jira_watermark_purchase_invoices` (minus `overlap_seconds`),
  de-duplicates by id, stores them as batches in the state store. XCom carries batch ids only.
* **upsert** (one mapped task per batch): link table → one JQL search → bulk create (50 per call) → edit only
  when the fields we own changed. Every record gets an audit row. Clearing a mapped task replays that batch.
* **advance_watermark** runs only after every batch succeeded. Backfill runs sync their data interval and
  leave the watermark alone:
  `airflow backfill create --dag-id bc_purchase_invoices_to_jira --from-date … --to-date …`.

Triggers: every 15 minutes **and** BC change notifications (asset from `bc_jira.triggers`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from bc_jira import outbound

ENTITY = "purchase_invoices"

# Schedule: cron with data intervals OR the BC change-notification asset.
# >>> event-driven trigger: bc_jira.triggers.bc_change_asset(ENTITY) (inbound helper) is OR'ed in here <<<
SCHEDULE = outbound.schedule_for(ENTITY, "*/15 * * * *")


@dag(
    dag_id="bc_purchase_invoices_to_jira",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=outbound.DEFAULT_ARGS,
    tags=["bc-jira", "outbound", "purchase-invoices"],
    doc_md=__doc__,
)
def bc_purchase_invoices_to_jira() -> None:
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


bc_purchase_invoices_to_jira()

"""
### BC blocked vendors → Jira issues

Vendors blocked in Business Central (the selection in `bc_jira_config`, default `blocked` *Payment* or *All*)
become Jira issues; a vendor unblocked in BC updates its issue and gets a comment (and, when configured, the
`resolved_transition`). When the issue reaches a done status, `jira_transitions_to_bc` unblocks the vendor.

* **extract** reads vendors modified since `bc_jira_watermark_vendors` (minus `overlap_seconds`), keeps
  blocked ones and ones that already have an issue, stores them as batches. XCom carries batch ids only.
* **upsert** (one mapped task per batch): link table → one JQL search → bulk create (50 per call) → edit only
  when the fields we own changed; one audit row per record.
* **advance_watermark** only after every batch succeeded; backfill runs leave the watermark alone.

Triggers: every 15 minutes **and** BC change notifications (asset from `bc_jira.triggers`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from bc_jira import outbound

ENTITY = "vendors"

# Schedule: cron with data intervals OR the BC change-notification asset.
# >>> event-driven trigger: bc_jira.triggers.bc_change_asset(ENTITY) (inbound helper) is OR'ed in here <<<
SCHEDULE = outbound.schedule_for(ENTITY, "*/15 * * * *")


@dag(
    dag_id="bc_vendors_to_jira",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=outbound.DEFAULT_ARGS,
    tags=["bc-jira", "outbound", "vendors"],
    doc_md=__doc__,
)
def bc_vendors_to_jira() -> None:
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


bc_vendors_to_jira()

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

Triggers: every 15 minutes **and** BC change notifications (asset from `bc_jira.edges.triggers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bc_jira.sync.dag import sync_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

bc_vendors_to_jira: DAG = sync_dag(
    "vendors",
    dag_id="bc_vendors_to_jira",
    cron="*/15 * * * *",
    doc_md=__doc__,
    tags=["vendors"],
)

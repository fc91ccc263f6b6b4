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

Triggers: every 15 minutes **and** BC change notifications (asset from `bc_jira.edges.triggers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bc_jira.sync.dag import sync_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

bc_purchase_invoices_to_jira: DAG = sync_dag(
    "purchase_invoices",
    dag_id="bc_purchase_invoices_to_jira",
    cron="*/15 * * * *",
    doc_md=__doc__,
    tags=["purchase-invoices"],
)

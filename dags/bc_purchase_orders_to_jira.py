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

from typing import TYPE_CHECKING

from bc_jira.sync.dag import sync_dag

if TYPE_CHECKING:
    from airflow.sdk import DAG

bc_purchase_orders_to_jira: DAG = sync_dag(
    "purchase_orders",
    dag_id="bc_purchase_orders_to_jira",
    cron="*/30 * * * *",
    doc_md=__doc__,
    tags=["purchase-orders"],
)

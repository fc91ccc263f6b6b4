"""
### BC subscriptions renewal

Keeps exactly **one** Business Central API subscription per webhook-capable entity (purchase invoices,
vendors) pointing at the plugin's public notification URL `{bc_jira_public_url}/bc-jira/bc/notifications`
(Variable `bc_jira_public_url`, else env `BC_JIRA_PUBLIC_URL`, else `[api] base_url`).

BC subscriptions expire after **3 days**. This DAG runs every 6 hours and renews (PATCH with `If-Match`,
BC re-does the `validationToken` handshake) when less than 48 hours are left, so eight failed runs in a
row still leave a live subscription. A subscription BC deleted (expired, or after failed deliveries) is
recreated; duplicates for the same resource and URL are deleted — never two. A changed `client_state` is
pushed on renewal.

Also settles staged BC change events already covered by the outbound watermarks (backstop for the
outbound DAGs, which settle them after each sync).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from bc_jira import tasks


@dag(
    dag_id="bc_subscriptions_renewal",
    schedule=CronTriggerTimetable("7 */6 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "bc-jira", "retries": 3, "retry_delay": timedelta(minutes=5)},
    tags=["bc-jira", "lifecycle"],
    doc_md=__doc__,
)
def bc_subscriptions_renewal() -> None:
    @task
    def ensure_subscriptions() -> list[dict]:
        return tasks.bc_subscriptions_task()

    @task(trigger_rule="all_done", multiple_outputs=False)  # one XCom (see bc_jira.sync.dag)
    def settle_covered_events() -> dict:
        return tasks.settle_covered_events_task()

    ensure_subscriptions() >> settle_covered_events()


bc_subscriptions_renewal()

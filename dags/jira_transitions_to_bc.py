"""
### Jira → BC write-back

When an issue of the connector reaches a **done** status, the outcome flows back to Business Central:

* purchase invoice issue → the draft invoice is **posted** (`Microsoft.NAV.post`); the issue gets a
  comment with the posted invoice number;
* blocked-vendor issue → the vendor is **unblocked** (`PATCH blocked` with `If-Match`; stale ETag → re-read
  and retry once).

Every action re-reads the issue and the BC record first: an invoice that is no longer a draft or a vendor
that is no longer blocked is an audited no-op (a double delivery or a replay never posts twice). Statuses
of the done category that mean "no" (Rejected, Declined, Won't Do, Cancelled) leave BC untouched.

Triggers: Jira webhook deliveries staged by the plugin (`POST /bc-jira/jira/webhook`) wake this DAG
within seconds through an asset watcher (`bc_jira.edges.triggers.jira_transition_asset`), **and** a cron
safety net every 30 minutes that also searches Jira for done issues updated in the last 2 hours carrying a BC
record id. A failed event stays staged (with its error) and is replayed by the next run; clearing a task
replays too.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from bc_jira import tasks
from bc_jira.edges import triggers

SCHEDULE = AssetOrTimeSchedule(
    timetable=CronTriggerTimetable("*/30 * * * *", timezone="UTC"), assets=triggers.jira_transition_asset()
)


@dag(
    dag_id="jira_transitions_to_bc",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={
        "owner": "bc-jira",
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    tags=["bc-jira", "inbound", "write-back"],
    doc_md=__doc__,
)
def jira_transitions_to_bc() -> None:
    @task(multiple_outputs=False)  # one XCom (see bc_jira.sync.dag)
    def process_staged_transitions() -> dict:
        return tasks.process_staged_task()

    @task(trigger_rule="all_done", multiple_outputs=False)  # one XCom (see bc_jira.sync.dag)
    def safety_net_poll() -> dict:
        return tasks.safety_net_task()

    process_staged_transitions() >> safety_net_poll()


jira_transitions_to_bc()

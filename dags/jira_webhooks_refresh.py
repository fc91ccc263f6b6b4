"""
### Jira webhook refresh

Keeps the connector's **one** JQL-filtered Jira webhook alive (OAuth 2.0 connection): events
`jira:issue_updated`, field filter `status`, JQL `project = <key> AND issuetype IN (<invoice>,
<vendor>)`, URL `{bc_jira_public_url}/bc-jira/jira/webhook`.

REST webhooks expire after **30 days**: this DAG runs daily and refreshes (`PUT /webhook/refresh`) when
fewer than 20 days are left. Missing → registered; duplicates (same JQL and events) → deleted, keeping
the one that lives longest; never a second registration.

With **basic auth** Jira offers no REST webhooks: the task instead checks that signed deliveries reach
the plugin and explains in its log how to create an admin webhook (Jira settings → System → WebHooks)
with the connection's `webhook_secret`, so Jira signs deliveries with `X-Hub-Signature`.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from bc_jira import tasks


@dag(
    dag_id="jira_webhooks_refresh",
    schedule=CronTriggerTimetable("17 3 * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "bc-jira", "retries": 3, "retry_delay": timedelta(minutes=10)},
    tags=["bc-jira", "lifecycle"],
    doc_md=__doc__,
)
def jira_webhooks_refresh() -> None:
    @task(multiple_outputs=False)  # one XCom (see bc_jira.sync.dag)
    def ensure_webhook() -> dict:
        return tasks.jira_webhook_task()

    ensure_webhook()


jira_webhooks_refresh()

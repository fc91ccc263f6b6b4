"""
### Connect bc-jira to Jira (manual)

Run once after setting up the connections and `bc_jira_config`, and again whenever the Jira side changes
(fields renamed, users added to the assignee rules, workflows edited).

* resolves the Jira **cloudId** of the configured site (Atlassian `accessible-resources`);
* discovers the **custom field ids** of the configured field names (`GET /field`) and stores them in the
  Variable `bc_jira_jira_fields` (`name → customfield_NNNNN`) — ids are never hard-coded;
* resolves assignee **emails to accountIds** into `bc_jira_jira_users`; checks configured accountIds exist;
* checks the **project**, the **issue type** of every enabled entity, that its workflow has a status in the
  *Done* category (for the write-back) and the optional `resolved_transition`.

Every problem is reported at once, each with its fix; when there is any, nothing is written.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException

from bc_jira import tasks
from bc_jira.setup.connect import ConnectError
from bc_jira.sync.dag import DEFAULT_ARGS


@dag(
    dag_id="bc_jira_connect",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={**DEFAULT_ARGS, "retry_delay": timedelta(seconds=30)},
    tags=["bc-jira", "setup"],
    doc_md=__doc__,
)
def bc_jira_connect() -> None:
    @task(multiple_outputs=False)  # one XCom (see bc_jira.sync.dag)
    def connect() -> dict:
        try:
            return tasks.connect_task()
        except ConnectError as exc:  # a configuration problem: retrying will not fix it
            raise AirflowFailException(str(exc)) from None

    connect()


bc_jira_connect()

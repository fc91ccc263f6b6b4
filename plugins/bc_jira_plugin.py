"""bc-jira Airflow plugin: mounts the connector's web app under ``/bc-jira`` and the audit page in the UI.

Only the plugin registration lives here; the routes are in ``bc_jira.web.app`` (webhook intake, the Jira
OAuth connect flow, health) and ``bc_jira.web.audit_view`` (the audit page).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bc_jira.web.app import URL_PREFIX, create_app
from bc_jira.web.audit_view import EXTERNAL_VIEW

app = create_app()


class BcJiraPlugin(AirflowPlugin):
    name = "bc_jira"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "bc-jira connector"}]
    external_views = [EXTERNAL_VIEW]

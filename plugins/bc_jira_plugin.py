"""bc-jira Airflow plugin: mounts the connector's web app under ``/bc-jira`` and the audit page in the UI.

Only the plugin registration lives here; the routes are in ``bc_jira.web.app`` (webhook intake, the Jira
OAuth connect flow, health) and ``bc_jira.web.audit_view`` (the audit page). Loading it also teaches
Airflow's secrets masker our secret connection extras (``bc_jira.secret_fields``) and lets the Connections
list's Test button reach our hooks (``bc_jira.web.connection_test``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from bc_jira import secret_fields
from bc_jira.web.app import URL_PREFIX, create_app
from bc_jira.web.audit_view import EXTERNAL_VIEW
from bc_jira.web.connection_test import PortlessConnectionTest

secret_fields.register_with_airflow()
app = create_app()


class BcJiraPlugin(AirflowPlugin):
    name = "bc_jira"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "bc-jira connector"}]
    fastapi_root_middlewares = [
        {"middleware": PortlessConnectionTest, "name": "bc-jira: Test button for portless connections"}
    ]
    external_views = [EXTERNAL_VIEW]

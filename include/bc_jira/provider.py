"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point.

Connection forms are declared here (``conn-fields`` / ``ui-field-behaviour``) so the Airflow UI can
render them without importing the hooks; the deprecated widget methods on hooks need wtforms.
"""

from __future__ import annotations

from typing import Any

from bc_jira import __version__


def _field(
    label: str,
    description: str,
    *,
    secret: bool = False,
    enum: list[str] | None = None,
    default: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    if enum:
        schema["enum"] = [*enum, None]
    if default is not None:
        schema["default"] = default
    return {"label": label, "description": description, "schema": schema}


BUSINESS_CENTRAL = {
    "hook-class-name": "bc_jira.hooks.business_central.BusinessCentralHook",
    "hook-name": "Dynamics 365 Business Central",
    "connection-type": "business_central",
    "ui-field-behaviour": {
        "hidden-fields": ["host", "schema", "port"],
        "relabeling": {"login": "Client ID (Entra application)", "password": "Client secret"},
        "placeholders": {"login": "Entra application (client) id", "password": "client secret value"},
    },
    "conn-fields": {
        "tenant_id": _field("Tenant ID", "Entra tenant (directory) id or domain of the BC tenant."),
        "environment": _field(
            "Environment", "BC environment name, e.g. production or sandbox.", default="production"
        ),
        "company_id": _field("Company ID", "Id (GUID) of the BC company, from GET /companies."),
        "api_url": _field("API URL", "BC API root; default https://api.businesscentral.dynamics.com/v2.0"),
        "authority_url": _field(
            "Authority URL", "Entra authority; default https://login.microsoftonline.com"
        ),
        "client_state": _field("Client state", "Secret BC echoes in every change notification.", secret=True),
    },
}

# One field per fact: Airflow 3.3's form cannot relabel a field by the value of another (ui-field-behaviour
# is static), so login/password are the OAuth client's and basic auth has its own email and API token
# fields. The site URL is the extra ``site_url`` in both modes (host stays readable for older connections).
JIRA_CLOUD = {
    "hook-class-name": "bc_jira.hooks.jira.JiraCloudHook",
    "hook-name": "Jira Cloud",
    "connection-type": "jira_cloud",
    "ui-field-behaviour": {
        "hidden-fields": ["host", "schema", "port"],
        "relabeling": {"login": "OAuth client ID (oauth2)", "password": "OAuth client secret (oauth2)"},
        "placeholders": {
            "login": "Client ID of the OAuth 2.0 (3LO) app",
            "password": "Secret of the OAuth 2.0 (3LO) app",
        },
    },
    "conn-fields": {
        "auth": _field(
            "Auth",
            "oauth2 (three-legged OAuth app, default) or basic (email + API token).",
            enum=["oauth2", "basic"],
            default="oauth2",
        ),
        "site_url": _field("Site URL", "https://acme.atlassian.net (both modes; oauth2 picks its cloudId)."),
        "email": _field("Email (basic auth)", "Atlassian account email that owns the API token."),
        "api_token": _field(
            "API token (basic auth)", "Created at id.atlassian.com > Security > API tokens.", secret=True
        ),
        "redirect_uri": _field(
            "Redirect URI (oauth2)", "OAuth callback: https://<airflow>/bc-jira/jira/oauth/callback"
        ),
        "auth_url": _field("Auth URL (oauth2)", "Atlassian auth server; default https://auth.atlassian.com"),
        "api_url": _field("API URL (oauth2)", "Atlassian API gateway; default https://api.atlassian.com"),
        "webhook_secret": _field(
            "Webhook secret",
            "Secret of an admin webhook (X-Hub-Signature); OAuth app webhooks use the client secret.",
            secret=True,
        ),
        "refresh_token": _field(
            "Bootstrap refresh token (oauth2)",
            "Optional, used once: the first task exchanges it (Atlassian rotates it) and from then on only "
            "the rotating token in the state store is used; editing this field later changes nothing. To "
            "connect again, consent through /bc-jira/jira/oauth/start. Test does not spend it.",
            secret=True,
        ),
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "bc-jira",
        "name": "Business Central ⇄ Jira",
        "description": "Sync Microsoft Dynamics 365 Business Central documents with Jira Cloud issues.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Dynamics 365 Business Central", "tags": ["software"]},
            {"integration-name": "Jira Cloud", "tags": ["software"]},
        ],
        "hooks": [
            {
                "integration-name": "Dynamics 365 Business Central",
                "python-modules": ["bc_jira.hooks.business_central"],
            },
            {"integration-name": "Jira Cloud", "python-modules": ["bc_jira.hooks.jira"]},
        ],
        "connection-types": [BUSINESS_CENTRAL, JIRA_CLOUD],
    }

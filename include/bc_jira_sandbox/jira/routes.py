"""Every Jira route: the REST v3 API under both roots, and the ``/_sandbox/jira`` control routes.

The REST routes are declared once and mounted twice: under ``/ex/jira/{cloudId}`` (OAuth 2.0 bearer, the way
an OAuth app reaches a site) and under ``/site`` (basic auth with an API token); see :mod:`.api`.
"""

from __future__ import annotations

from fastapi import APIRouter

from bc_jira_sandbox.jira import (
    routes_attachments,
    routes_control,
    routes_issues,
    routes_priorities,
    routes_webhooks,
)

router = APIRouter(tags=["jira"])
for _api in (routes_issues.api, routes_priorities.api, routes_webhooks.api, routes_attachments.api):
    for _prefix in ("/ex/jira/{cloudId}", "/site"):
        router.include_router(_api, prefix=_prefix)
router.include_router(routes_control.router)

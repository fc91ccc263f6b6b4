"""The health report over real HTTP: edges after ensuring them, a revoked Jira grant turns it red."""

from __future__ import annotations

from typing import Any

import pytest

from bc_jira import tasks
from bc_jira.edges import subscriptions
from bc_jira.store import StateStore


def test_health_after_ensure(lc: dict[str, Any]) -> None:
    import requests

    subscriptions.ensure_bc_subscriptions(lc["bc"], lc["store"], tasks.notification_url(lc["base"]))
    body = requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is True and len(body["bc_subscriptions"]) == 2
    assert all(s["left_s"] > 2 * 86400 for s in body["bc_subscriptions"])


def test_revoked_grant_turns_health_red(lc: dict[str, Any], tmp_path: Any) -> None:
    """The reported case: the grant was revoked (a rotated refresh token was reused), write-back failed three
    times, and /bc-jira/health still said ok. Now the refused refresh is recorded and health names it."""
    import requests

    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.http import AuthError
    from bc_jira.tokens import JiraTokenProvider

    sb, store = lc["sandbox"], lc["store"]
    assert lc["jira"].myself()["accountId"]  # a task exchanged the bootstrap token into the store
    assert requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()["ok"] is True
    sb.control("POST", "/_sandbox/clock", {"advance_s": 3600})
    # An old deployment (its own store) still holds the rotated-away bootstrap token and uses it.
    with pytest.raises(AuthError):
        JiraCloudHook(store=StateStore.from_url(f"sqlite:///{tmp_path}/other.db")).myself()
    assert sb.stats()["events"]["atlassian.grant.revoked"] == 1
    for _ in range(3):  # the write-back task's three tries
        JiraTokenProvider._process_cache.clear()
        with pytest.raises(AuthError, match="consent again"):
            JiraCloudHook(store=store).myself()
    body = requests.get(f"{lc['base']}/bc-jira/health", timeout=10).json()
    assert body["ok"] is False and body["jira_token"]["last_refresh_error"]["code"] == "invalid_grant"
    assert any("refused" in p and "/bc-jira/jira/oauth/start" in p for p in body["problems"])

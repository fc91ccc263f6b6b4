"""Keep the Jira dynamic webhook alive (30-day expiry), and watch that deliveries actually arrive.

Jira deletes what is not refreshed and happily registers duplicates when asked twice, so every run starts
from what Jira says exists, keeps exactly one, refreshes when less than the margin is left and registers
only what is missing. With basic auth there are no REST webhooks: the admin webhook's deliveries are watched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira.edges import Outcome

log = logging.getLogger(__name__)

# Jira: REST webhooks live 30 days. The DAG runs daily and refreshes when < 20 days are left.
JIRA_WEBHOOK_TTL = timedelta(days=30)
JIRA_REFRESH_WHEN_LEFT = timedelta(days=20)
JIRA_WEBHOOK_NAME = "jira_transitions"
JIRA_WEBHOOK_EVENTS = ("jira:issue_updated",)
APP_DELIVERIES = "app_deliveries"  # store row: last JWT-verified delivery of the app's REST webhook
APP_QUIET_AFTER = timedelta(days=1)


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):  # epoch ms (Jira)
        return datetime.fromtimestamp(float(value) / 1000.0, UTC)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _iso(dt: datetime | None) -> str | None:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z") if dt else None


def transitions_jql(project_key: str, issue_types: Sequence[str]) -> str:
    """JQL in the subset Jira's webhook filter supports (project, issuetype; =, IN)."""
    types = ", ".join(f'"{t}"' for t in issue_types)
    return f"project = {project_key} AND issuetype IN ({types})"


def ensure_jira_webhook(
    jira: Any,
    store: Any,
    url: str,
    jql: str,
    *,
    now: Callable[[], datetime] = _now,
    refresh_when_left: timedelta = JIRA_REFRESH_WHEN_LEFT,
    name: str = JIRA_WEBHOOK_NAME,
) -> Outcome:
    """One dynamic webhook (status changes matching ``jql``) at ``url``; refresh before expiry; no duplicates.

    ``jira`` is a JiraCloudHook with OAuth 2.0 (REST webhooks exist only for apps). ``expirationDate`` is
    read in both documented forms (epoch ms or ``2019-06-01T12:42:30.000+0000``). Remote truth first:
    the app's webhooks with our events and JQL are ours; extras are deleted; others with a different JQL
    that we registered (id in the store) are deleted too (config change). Jira allows one URL per app.
    """
    from bc_jira.hooks.jira import expiration_ms

    hooks = jira.list_webhooks()
    known = store.get_webhook(name) or {}
    events = set(JIRA_WEBHOOK_EVENTS)

    def matches(w: Mapping[str, Any]) -> bool:
        return (
            w.get("jqlFilter") == jql
            and set(w.get("events") or []) == events
            and (not w.get("url") or str(w["url"]).rstrip("/") == url.rstrip("/"))
        )

    ours = [w for w in hooks if matches(w)]
    ours.sort(key=lambda w: expiration_ms(w.get("expirationDate")) or 0, reverse=True)
    stale = [w for w in hooks if not matches(w) and int(w.get("id", -1)) in set(known.get("ids") or [])]
    dupes = ours[1:]
    if stale or dupes:
        jira.delete_webhooks([int(w["id"]) for w in stale + dupes])
    current = ours[0] if ours else None
    action = "ok"
    if current is not None:
        left = (_ts(current.get("expirationDate")) or now()) - now()
        if left < refresh_when_left:
            new_exp = jira.refresh_webhooks([int(current["id"])])
            current = {**current, "expirationDate": new_exp or current.get("expirationDate")}
            action = "refreshed"
    else:
        results = jira.register_webhooks(
            url, [{"events": list(JIRA_WEBHOOK_EVENTS), "jqlFilter": jql, "fieldIdsFilter": ["status"]}]
        )
        created = results[0] if results else {}
        if "createdWebhookId" not in created:
            err = "; ".join(created.get("errors") or ["no result"])
            store.put_webhook(name, checked_at=_iso(now()), last_error=err[:500])
            return Outcome(name, "failed", None, detail=f"Jira refused the webhook ({err}); JQL: {jql}")
        wid = int(created["createdWebhookId"])
        # A lost answer retried, or two runs racing, could leave two: look once more, keep the newest id.
        again = [w for w in jira.list_webhooks() if matches(w)]
        extra = [int(w["id"]) for w in again if int(w["id"]) != wid]
        if extra:
            jira.delete_webhooks(extra)
        current = next((w for w in again if int(w["id"]) == wid), {"id": wid, "expirationDate": None})
        action = "recreated" if known.get("ids") else "registered"
    expires = _ts(current.get("expirationDate"))
    if expires is None and action in ("registered", "recreated"):
        expires = now() + JIRA_WEBHOOK_TTL
    store.put_webhook(
        name,
        ids=[int(current["id"])],
        url=url,
        jql=jql,
        expiration=_iso(expires),
        last_action=action,
        checked_at=_iso(now()),
        last_error=None,
        mode="rest",
    )
    detail = f"id {current['id']}" + (f", deleted {len(stale) + len(dupes)}" if stale or dupes else "")
    return Outcome(name, action, _iso(expires), detail=detail)


def check_basic_deliveries(
    store: Any, *, now: Callable[[], datetime] = _now, quiet_after: timedelta = timedelta(days=3)
) -> Outcome:
    """Basic auth has no REST webhooks: report when the last admin-webhook delivery arrived."""
    last = store.get_webhook("admin_deliveries") or {}
    seen = _ts(last.get("last_delivery_at"))
    howto = (
        "With basic auth Jira offers no REST webhooks. Create an admin webhook once: Jira settings > "
        "System > WebHooks > Create a WebHook; URL {url}; Secret: the value of the jira_default "
        "connection's extra webhook_secret (Jira signs deliveries with X-Hub-Signature); Events: Issue "
        "updated; JQL: {jql}. Admin webhooks do not expire."
    )
    if seen is None:
        return Outcome("admin_webhook", "no-deliveries", None, detail=howto)
    age = now() - seen
    action = "ok" if age < quiet_after else "quiet"
    return Outcome(
        "admin_webhook",
        action,
        None,
        detail=f"last verified delivery {_iso(seen)} ({age.days} d ago)"
        + ("" if action == "ok" else "; " + howto),
    )


def note_delivery(store: Any, verified_by: str) -> None:
    """Remember the last verified delivery per kind (admin webhook: HMAC; the app's REST webhook: JWT), so
    the refresh task can say when deliveries stopped arriving. Cheap: one row upsert."""
    if verified_by == "hmac":
        store.put_webhook("admin_deliveries", last_delivery_at=_iso(_now()))
    elif verified_by == "jwt":
        store.put_webhook(APP_DELIVERIES, last_delivery_at=_iso(_now()))


def app_delivery_notice(
    webhook: Mapping[str, Any] | None,
    deliveries: Mapping[str, Any] | None,
    now: datetime,
    quiet_after: timedelta = APP_QUIET_AFTER,
) -> str | None:
    """The warning to log when our REST webhook exists but no delivery arrived for ``quiet_after``; else None.

    ``deliveries`` is the ``app_deliveries`` row: ``last_delivery_at``, or ``watch_since`` (when the task
    first saw the webhook without any delivery).
    The usual cause is Atlassian's rule for non-public OAuth apps.
    """
    if not webhook or not webhook.get("ids"):
        return None
    row = deliveries or {}
    last = _ts(row.get("last_delivery_at"))
    since = last or _ts(row.get("watch_since"))
    if since is None or now - since < quiet_after:
        return None
    seen = f"the last one arrived {_iso(last)}" if last else f"none since {_iso(since)}"
    return (
        f"Jira webhook {webhook.get('ids')} exists but no delivery arrived for "
        f"{int((now - since).total_seconds() // 3600)} h ({seen}). If issues moved in that time: for a "
        "non-public OAuth app Jira delivers dynamic webhooks only when the user who registered them (the one "
        "who consented at /bc-jira/jira/oauth/start) is the app's owner; consent as the app owner, or enable "
        "Sharing for the app in the Atlassian developer console. Until then transitions are picked up by the "
        "30-minute safety-net poll only."
    )

"""Keep the Jira dynamic webhook alive (30-day expiry), and watch that deliveries actually arrive.

Jira deletes what is not refreshed and happily registers duplicates when asked twice, so every run starts
from what Jira says exists, keeps exactly one, refreshes when less than the margin is left and registers
only what is missing (:func:`plan_webhook` decides, pure; :func:`ensure_jira_webhook` acts). With basic auth
there are no REST webhooks: the admin webhook's deliveries are watched instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira import timeutil
from bc_jira.edges import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping, Sequence

    from bc_jira.edges.protocols import JiraWebhooks, WebhookStore

log = logging.getLogger(__name__)

# Jira: REST webhooks live 30 days. The DAG runs daily and refreshes when < 20 days are left.
JIRA_WEBHOOK_TTL = timedelta(days=30)
JIRA_REFRESH_WHEN_LEFT = timedelta(days=20)
JIRA_WEBHOOK_NAME = "jira_transitions"
JIRA_WEBHOOK_EVENTS = ("jira:issue_updated",)
ADMIN_DELIVERIES = "admin_deliveries"  # store row: last HMAC-verified delivery of the admin webhook
APP_DELIVERIES = "app_deliveries"  # store row: last JWT-verified delivery of the app's REST webhook
APP_QUIET_AFTER = timedelta(days=1)

KEEP = "keep"
REFRESH = "refresh"
REGISTER = "register"


def transitions_jql(project_keys: str | Sequence[str], issue_types: Sequence[str]) -> str:
    """JQL in the subset Jira's webhook filter supports (project, issuetype; =, IN). Several projects (the
    companies' own ``project_key``): ``project IN (…)``; one: the filter every deployment had before."""
    from bc_jira.config.companies import project_clause

    keys = [project_keys] if isinstance(project_keys, str) else list(project_keys)
    types = ", ".join(f'"{t}"' for t in issue_types)
    return f"{project_clause(keys)} AND issuetype IN ({types})"


def _matches(w: Mapping[str, Any], url: str, jql: str) -> bool:
    """Ours: our JQL and events at our URL (Jira allows one URL per app, so a row may omit it)."""
    return (
        w.get("jqlFilter") == jql
        and set(w.get("events") or []) == set(JIRA_WEBHOOK_EVENTS)
        and (not w.get("url") or str(w["url"]).rstrip("/") == url.rstrip("/"))
    )


def _id(w: Mapping[str, Any]) -> int:
    return int(w.get("id", -1))


@dataclass(frozen=True)
class WebhookPlan:
    """Delete ``delete_ids`` (stale ones we registered, duplicates), then keep, refresh or register."""

    kind: str
    current: Mapping[str, Any] | None = None
    delete_ids: list[int] = field(default_factory=list)
    recreate: bool = False


def plan_webhook(
    remote: Sequence[Mapping[str, Any]],
    known_ids: Collection[int],
    url: str,
    jql: str,
    now: datetime,
    refresh_when_left: timedelta = JIRA_REFRESH_WHEN_LEFT,
) -> WebhookPlan:
    """What to do from Jira's list alone (pure).

    ``expirationDate`` is read in both documented forms (epoch ms or ``2019-06-01T12:42:30.000+0000``).
    Of ours the one that lives longest is kept, extras are deleted; others that we registered (id in the
    store) but with another JQL are deleted too (a config change).
    """
    ours = sorted(
        (w for w in remote if _matches(w, url, jql)),
        key=lambda w: timeutil.epoch_ms(w.get("expirationDate")) or 0,
        reverse=True,
    )
    stale = [_id(w) for w in remote if not _matches(w, url, jql) and _id(w) in set(known_ids)]
    delete_ids = stale + [_id(w) for w in ours[1:]]
    if not ours:
        return WebhookPlan(REGISTER, None, delete_ids, recreate=bool(known_ids))
    current = ours[0]
    left = (timeutil.try_parse_ts(current.get("expirationDate")) or now) - now
    return WebhookPlan(REFRESH if left < refresh_when_left else KEEP, current, delete_ids)


def _register(jira: JiraWebhooks, url: str, jql: str) -> tuple[Mapping[str, Any] | None, str]:
    """Register; ``(webhook, "")`` or ``(None, Jira's errors)``. A lost answer retried, or two runs racing,
    could leave two: look once more and keep the new id."""
    results = jira.register_webhooks(
        url, [{"events": list(JIRA_WEBHOOK_EVENTS), "jqlFilter": jql, "fieldIdsFilter": ["status"]}]
    )
    created = results[0] if results else {}
    if "createdWebhookId" not in created:
        return None, "; ".join(created.get("errors") or ["no result"])
    wid = int(created["createdWebhookId"])
    again = [w for w in jira.list_webhooks() if _matches(w, url, jql)]
    extra = [_id(w) for w in again if _id(w) != wid]
    if extra:
        jira.delete_webhooks(extra)
    return next((w for w in again if _id(w) == wid), {"id": wid, "expirationDate": None}), ""


def ensure_jira_webhook(
    jira: JiraWebhooks,
    store: WebhookStore,
    url: str,
    jql: str,
    *,
    now: Callable[[], datetime] = timeutil.now,
    refresh_when_left: timedelta = JIRA_REFRESH_WHEN_LEFT,
    name: str = JIRA_WEBHOOK_NAME,
) -> Outcome:
    """One dynamic webhook (status changes matching ``jql``) at ``url``; refresh before expiry; no duplicates.

    ``jira`` is a JiraCloudHook with OAuth 2.0 (REST webhooks exist only for apps). Remote truth first:
    list, plan (:func:`plan_webhook`), act, and mirror the result in the store.
    """
    known = store.get_webhook(name) or {}
    plan = plan_webhook(jira.list_webhooks(), known.get("ids") or [], url, jql, now(), refresh_when_left)
    if plan.delete_ids:
        jira.delete_webhooks(plan.delete_ids)
    current, action = plan.current, "ok"
    if plan.kind == REFRESH and current is not None:
        new_exp = jira.refresh_webhooks([_id(current)])
        current, action = {**current, "expirationDate": new_exp or current.get("expirationDate")}, "refreshed"
    elif plan.kind == REGISTER:
        current, err = _register(jira, url, jql)
        if current is None:
            store.put_webhook(name, checked_at=timeutil.iso(now()), last_error=err[:500])
            return Outcome(name, "failed", None, detail=f"Jira refused the webhook ({err}); JQL: {jql}")
        action = "recreated" if plan.recreate else "registered"
    assert current is not None
    expires = timeutil.try_parse_ts(current.get("expirationDate"))
    if expires is None and action in ("registered", "recreated"):
        expires = now() + JIRA_WEBHOOK_TTL
    store.put_webhook(
        name,
        ids=[_id(current)],
        url=url,
        jql=jql,
        expiration=timeutil.iso(expires) if expires else None,
        last_action=action,
        checked_at=timeutil.iso(now()),
        last_error=None,
        mode="rest",
    )
    deleted = len(plan.delete_ids)
    detail = f"id {current['id']}" + (f", deleted {deleted}" if deleted else "")
    return Outcome(name, action, timeutil.iso(expires) if expires else None, detail=detail)


def check_basic_deliveries(
    store: WebhookStore,
    *,
    now: Callable[[], datetime] = timeutil.now,
    quiet_after: timedelta = timedelta(days=3),
) -> Outcome:
    """Basic auth has no REST webhooks: report when the last admin-webhook delivery arrived."""
    last = store.get_webhook(ADMIN_DELIVERIES) or {}
    seen = timeutil.try_parse_ts(last.get("last_delivery_at"))
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
        detail=f"last verified delivery {timeutil.iso(seen)} ({age.days} d ago)"
        + ("" if action == "ok" else "; " + howto),
    )


def note_delivery(store: WebhookStore, verified_by: str) -> None:
    """Remember the last verified delivery per kind (admin webhook: HMAC; the app's REST webhook: JWT), so
    the refresh task can say when deliveries stopped arriving. Cheap: one row upsert."""
    if verified_by == "hmac":
        store.put_webhook(ADMIN_DELIVERIES, last_delivery_at=timeutil.iso(timeutil.now()))
    elif verified_by == "jwt":
        store.put_webhook(APP_DELIVERIES, last_delivery_at=timeutil.iso(timeutil.now()))


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
    last = timeutil.try_parse_ts(row.get("last_delivery_at"))
    since = last or timeutil.try_parse_ts(row.get("watch_since"))
    if since is None or now - since < quiet_after:
        return None
    seen = f"the last one arrived {timeutil.iso(last)}" if last else f"none since {timeutil.iso(since)}"
    return (
        f"Jira webhook {webhook.get('ids')} exists but no delivery arrived for "
        f"{int((now - since).total_seconds() // 3600)} h ({seen}). If issues moved in that time: for a "
        "non-public OAuth app Jira delivers dynamic webhooks only when the user who registered them (the one "
        "who consented at /bc-jira/jira/oauth/start) is the app's owner; consent as the app owner, or enable "
        "Sharing for the app in the Atlassian developer console. Until then transitions are picked up by the "
        "30-minute safety-net poll only."
    )

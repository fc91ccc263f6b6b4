"""Keep the live edges alive: BC API subscriptions (3-day expiry) and the Jira dynamic webhook (30 days).

Both remotes delete what is not renewed, and both happily create duplicates when asked twice, so every run
starts from what the remote says exists, keeps exactly one per resource (deleting extras it created),
renews when less than the margin is left, and creates only what is missing. The state store mirrors the
result for the health route. Each ``ensure_*`` is idempotent and safe to run as often as wanted.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira.edges.intake import BC_ENTITIES, KIND_JIRA_TRANSITION, bc_kind
from bc_jira.http import ApiError, NotFoundError, PreconditionFailed

log = logging.getLogger(__name__)

PUBLIC_URL_VARIABLE = "bc_jira_public_url"
PUBLIC_URL_ENV = "BC_JIRA_PUBLIC_URL"
PLUGIN_PREFIX = "/bc-jira"
BC_NOTIFICATION_PATH = f"{PLUGIN_PREFIX}/bc/notifications"
JIRA_WEBHOOK_PATH = f"{PLUGIN_PREFIX}/jira/webhook"

# BC: subscriptions live 3 days. The DAG runs every 6 h and renews when < 48 h are left, i.e. about once a
# day, so eight consecutive failed runs still leave the subscription alive.
BC_SUBSCRIPTION_TTL = timedelta(days=3)
BC_RENEW_WHEN_LEFT = timedelta(hours=48)
# Jira: REST webhooks live 30 days. The DAG runs daily and refreshes when < 20 days are left.
JIRA_WEBHOOK_TTL = timedelta(days=30)
JIRA_REFRESH_WHEN_LEFT = timedelta(days=20)
JIRA_WEBHOOK_NAME = "jira_transitions"
JIRA_WEBHOOK_EVENTS = ("jira:issue_updated",)
# Health thresholds
BC_WARN_LEFT = timedelta(hours=24)
JIRA_WARN_LEFT = timedelta(days=7)
REFRESH_TOKEN_WARN_AGE = timedelta(days=75)  # Atlassian expires a refresh token unused for 90 days


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


# -- where the remotes call us ---------------------------------------------------------------------------


def public_base_url() -> str:
    """The api-server's public base URL: Variable ``bc_jira_public_url``, env, ``[api] base_url``, localhost.

    BC and Jira must reach it from the internet (HTTPS in production; a reverse proxy in front of the
    api-server is the usual shape).
    """
    try:
        from airflow.sdk import Variable

        value = Variable.get(PUBLIC_URL_VARIABLE, default=None)
    except Exception as exc:  # noqa: BLE001 - outside a task/server there is no Variable backend
        log.debug("Variable %s not readable: %s", PUBLIC_URL_VARIABLE, type(exc).__name__)
        value = None
    value = value or os.environ.get(PUBLIC_URL_ENV)
    if not value:
        try:
            from airflow.configuration import conf

            value = conf.get("api", "base_url", fallback=None)
        except Exception:  # noqa: BLE001
            value = None
    return (value or "http://localhost:8080").rstrip("/")


def notification_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{BC_NOTIFICATION_PATH}"


def jira_webhook_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{JIRA_WEBHOOK_PATH}"


# -- BC subscriptions -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """One resource's result for the run log and the DAG's return value."""

    name: str
    action: str  # created | renewed | ok | recreated | deleted-duplicate | failed | skipped | ...
    expires: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "expires": self.expires,
            "detail": self.detail,
            **self.extra,
        }


def _norm_resource(resource: str) -> str:
    r = (resource or "").strip().lower()
    r = r.split("/api/v2.0/", 1)[-1] if "/api/v2.0/" in r else r.removeprefix("api/v2.0/")
    return r.strip("/").replace("'", "")


def ensure_bc_subscriptions(
    bc: Any,
    store: Any,
    url: str,
    *,
    entities: Sequence[str] | None = None,
    client_state: str | None = None,
    now: Callable[[], datetime] = _now,
    renew_when_left: timedelta = BC_RENEW_WHEN_LEFT,
) -> list[Outcome]:
    """Exactly one live subscription per webhook-capable entity, pointing at ``url``.

    ``bc`` is a BusinessCentralHook. Remote truth first: list subscriptions; for our resource+URL keep the
    one that lives longest and delete the others; subscriptions for our resource at another URL are
    deleted only if we created them (their id is in the state store). Missing -> create (BC handshakes with
    the plugin); expiring -> renew (PATCH, If-Match, handshake); a renew that finds it gone -> create.
    """
    out: list[Outcome] = []
    wanted = list(entities or BC_ENTITIES.values())
    state = client_state if client_state is not None else getattr(bc.settings, "client_state", None)
    remote = bc.list_subscriptions()
    for entity in wanted:
        entity_set = {v: k for k, v in BC_ENTITIES.items()}[entity]
        resource = bc.subscription_resource(entity_set)
        key = _norm_resource(resource)
        known = store.get_subscription(resource) or {}
        mine = [s for s in remote if _norm_resource(s.get("resource", "")) == key]
        at_url = [s for s in mine if (s.get("notificationUrl") or "").rstrip("/") == url.rstrip("/")]
        elsewhere = [s for s in mine if s not in at_url]
        try:
            for s in elsewhere:  # our own old subscription after a URL change: remove, never leave two
                if s.get("subscriptionId") == known.get("subscription_id"):
                    bc.delete_subscription(s["subscriptionId"], s.get("@odata.etag"))
                    out.append(Outcome(entity, "deleted-old-url", detail=s.get("notificationUrl", "")))
                else:
                    log.warning(
                        "bc subscription %s for %s points at %s (not created by this connector): left alone",
                        s.get("subscriptionId"),
                        entity,
                        s.get("notificationUrl"),
                    )
            at_url.sort(
                key=lambda s: _ts(s.get("expirationDateTime")) or datetime.min.replace(tzinfo=UTC),
                reverse=True,
            )
            for extra in at_url[1:]:
                bc.delete_subscription(extra["subscriptionId"], extra.get("@odata.etag"))
                out.append(Outcome(entity, "deleted-duplicate", detail=extra["subscriptionId"]))
            current = at_url[0] if at_url else None
            action = "ok"
            if current is not None:
                left = (_ts(current.get("expirationDateTime")) or now()) - now()
                stale_state = bool(state) and current.get("clientState") not in (None, state)
                if left < renew_when_left or stale_state:
                    try:
                        changes = {"clientState": state} if stale_state else None
                        current = bc.renew_subscription(
                            current["subscriptionId"], current.get("@odata.etag"), changes, current=current
                        )
                        action = "renewed"
                    except (NotFoundError, PreconditionFailed):
                        # deleted (expired, too many failures) or changed under us: look again, else create
                        again = [
                            s
                            for s in bc.list_subscriptions()
                            if s.get("subscriptionId") == current["subscriptionId"]
                        ]
                        if again:
                            current = bc.renew_subscription(
                                again[0]["subscriptionId"],
                                None,
                                {"clientState": state} if stale_state else None,
                            )
                            action = "renewed"
                        else:
                            current = None
            if current is None:
                current = bc.create_subscription(url, resource, client_state=state)
                action = "recreated" if known.get("subscription_id") else "created"
                # Two creators racing (or a lost answer retried) would leave two: look once more.
                same = [
                    s
                    for s in bc.list_subscriptions()
                    if _norm_resource(s.get("resource", "")) == key
                    and (s.get("notificationUrl") or "").rstrip("/") == url.rstrip("/")
                ]
                for extra in same:
                    if extra.get("subscriptionId") != current.get("subscriptionId"):
                        bc.delete_subscription(extra["subscriptionId"], extra.get("@odata.etag"))
                        out.append(Outcome(entity, "deleted-duplicate", detail=extra["subscriptionId"]))
            expires = _ts(current.get("expirationDateTime"))
            store.put_subscription(
                resource,
                entity=entity,
                subscription_id=current.get("subscriptionId"),
                notification_url=url,
                expiration=_iso(expires),
                last_action=action,
                checked_at=_iso(now()),
                last_error=None,
            )
            out.append(Outcome(entity, action, _iso(expires), detail=str(current.get("subscriptionId"))))
        except ApiError as exc:
            store.put_subscription(resource, entity=entity, checked_at=_iso(now()), last_error=str(exc)[:500])
            log.error("bc subscription for %s: %s", entity, exc)
            out.append(Outcome(entity, "failed", known.get("expiration"), detail=str(exc)))
    return out


def bc_subscriptions_task(url: str | None = None) -> list[dict[str, Any]]:
    """The ``bc_subscriptions_renewal`` task: ensure, log, fail when any entity could not be secured."""
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    url = url or notification_url()
    bc = BusinessCentralHook()
    if not bc.settings.client_state:
        log.warning("bc_default has no extra.client_state: notifications cannot be authenticated; set one")
    outcomes = ensure_bc_subscriptions(bc, StateStore.from_airflow(), url)
    for o in outcomes:
        log.info("bc subscription %s: %s (expires %s) %s", o.name, o.action, o.expires, o.detail)
    failed = [o for o in outcomes if o.action == "failed"]
    if failed:
        raise RuntimeError(
            "could not secure BC subscriptions for "
            + ", ".join(f"{o.name} ({o.detail})" for o in failed)
            + f". The notification URL {url} must answer BC's "
            "validationToken handshake: check the Variable bc_jira_public_url and that the api-server with "
            "the bc_jira plugin is reachable from Business Central"
        )
    return [o.as_dict() for o in outcomes]


def settle_covered_events_task() -> dict[str, int]:
    """Backstop: delete staged BC events the outbound watermarks already cover (audited)."""
    from airflow.sdk import Variable

    from bc_jira.config import WATERMARK_PREFIX
    from bc_jira.edges.intake import settle_bc_events
    from bc_jira.store import StateStore

    store = StateStore.from_airflow()
    out = {}
    for entity in BC_ENTITIES.values():
        mark = Variable.get(f"{WATERMARK_PREFIX}{entity}", default=None)
        out[entity] = settle_bc_events(store, entity, mark, run={"dag_id": "bc_subscriptions_renewal"})
        left = store.count_pending(bc_kind(entity))
        if left:
            log.info("%s: %d BC event(s) still staged (newer than watermark %s)", entity, left, mark)
    return out


# -- Jira webhook ---------------------------------------------------------------------------------------


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


def jira_webhook_task(url: str | None = None) -> dict[str, Any]:
    """The ``jira_webhooks_refresh`` task."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore

    url = url or jira_webhook_url()
    cfg = load_config()
    types = [
        cfg.entity(e).issue_type
        for e in ("purchase_invoices", "vendors")
        if cfg.entity(e).enabled and cfg.entity(e).done_action != "none"
    ]
    jql = transitions_jql(cfg.project_key, types or [cfg.purchase_invoices.issue_type])
    store = StateStore.from_airflow()
    jira = JiraCloudHook(store=store)
    if jira.settings.auth == "basic":
        outcome = check_basic_deliveries(store)
        text = outcome.detail.format(url=url, jql=jql)
        if outcome.action == "ok":
            log.info("jira admin webhook: %s", text)
        else:
            log.warning("jira admin webhook: %s", text)
        return {**outcome.as_dict(), "detail": text}
    outcome = ensure_jira_webhook(jira, store, url, jql)
    log.info("jira webhook: %s (expires %s) %s", outcome.action, outcome.expires, outcome.detail)
    if outcome.action == "failed":
        raise RuntimeError(outcome.detail)
    watch = store.get_webhook(APP_DELIVERIES) or {}
    if not watch.get("last_delivery_at") and not watch.get("watch_since"):
        store.put_webhook(APP_DELIVERIES, watch_since=_iso(_now()))
    notice = app_delivery_notice(store.get_webhook(JIRA_WEBHOOK_NAME), watch, _now())
    if notice:
        log.warning("jira webhook: %s", notice)
    return outcome.as_dict()


APP_DELIVERIES = "app_deliveries"  # store row: last JWT-verified delivery of the app's REST webhook
APP_QUIET_AFTER = timedelta(days=1)


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


# -- health ---------------------------------------------------------------------------------------------


def jira_token_health(token: Any, t: datetime) -> tuple[dict[str, Any], list[str]]:
    """The health route's Jira token section and its problems (pure: decides from the stored row only).

    Problems: a refresh Atlassian refused (revoked grant, expired token, wrong client secret), the 365-day
    consent ending within 30 days or over, and a refresh token idle for 75 of its 90 days.
    """
    from bc_jira.tokens import CONSENT_ROUTE, consent_expires_at, consent_problem

    if token is None:
        return {"present": False}, []
    meta = token.meta or {}
    refreshed = token.updated_at
    ends = consent_expires_at(meta)
    failure = meta.get("last_refresh_error") or None
    section = {
        "present": True,
        "has_refresh_token": bool(token.refresh_token_enc),
        "access_token_valid_s": int(token.expires_at - time.time()) if token.expires_at else None,
        "last_saved": _iso(refreshed),
        "cloud_id": meta.get("cloud_id"),
        "consent_expires_at": _iso(datetime.fromtimestamp(ends, UTC)) if ends is not None else None,
        "consent_estimated": bool(meta.get("consent_estimated")),
        "last_refresh_error": failure,
    }
    problems = []
    if failure:
        at = _iso(datetime.fromtimestamp(float(failure.get("at") or 0), UTC))
        problems.append(
            f"Jira token refresh refused at {at} ({failure.get('status')} {failure.get('code')}: "
            f"{failure.get('message')}): every Jira call fails until an Airflow user consents again through "
            f"{CONSENT_ROUTE} (or fixes the client secret when the code is access_denied/invalid_client)"
        )
    consent = consent_problem(meta, t.timestamp())
    if consent:
        problems.append(consent[0].upper() + consent[1:])
    if refreshed and t - refreshed > REFRESH_TOKEN_WARN_AGE:
        problems.append(f"Jira refresh token unused since {_iso(refreshed)} (expires after 90 days idle)")
    return section, problems


def health_report(
    store: Any, *, now: Callable[[], datetime] = _now, jira_token_name: str = "jira:jira_default"
) -> dict[str, Any]:
    """State store reachable, Jira token freshness, subscription/webhook expiry, event backlog."""
    report: dict[str, Any] = {"ok": True, "problems": []}
    problems: list[str] = report["problems"]
    try:
        store.ping()
        report["store"] = {"ok": True, "where": store.describe() if hasattr(store, "describe") else None}
    except Exception as exc:  # noqa: BLE001
        report.update(ok=False, store={"ok": False, "error": type(exc).__name__})
        problems.append("state store unreachable")
        return report
    t = now()
    token = store.get_token(jira_token_name)
    report["jira_token"], token_problems = jira_token_health(token, t)
    problems.extend(token_problems)
    subs = []
    for s in store.list_subscriptions():
        exp = _ts(s.get("expiration"))
        left = (exp - t).total_seconds() if exp else None
        subs.append(
            {
                "entity": s.get("entity"),
                "subscription_id": s.get("subscription_id"),
                "expires": _iso(exp),
                "left_s": int(left) if left is not None else None,
                "last_action": s.get("last_action"),
                "last_error": s.get("last_error"),
            }
        )
        if left is None or left < BC_WARN_LEFT.total_seconds():
            problems.append(f"BC subscription for {s.get('entity')} expires {_iso(exp) or 'unknown'}")
    report["bc_subscriptions"] = subs
    hooks = []
    for w in store.list_webhooks():
        if w.get("name") == "admin_deliveries":
            report["jira_admin_webhook"] = {"last_delivery_at": w.get("last_delivery_at")}
            continue
        if w.get("name") == APP_DELIVERIES:
            report["jira_app_webhook"] = {"last_delivery_at": w.get("last_delivery_at")}
            continue
        exp = _ts(w.get("expiration"))
        left = (exp - t).total_seconds() if exp else None
        hooks.append(
            {
                "name": w.get("name"),
                "ids": w.get("ids"),
                "expires": _iso(exp),
                "left_s": int(left) if left is not None else None,
                "last_error": w.get("last_error"),
            }
        )
        if left is None or left < JIRA_WARN_LEFT.total_seconds():
            problems.append(f"Jira webhook {w.get('name')} expires {_iso(exp) or 'unknown'}")
    report["jira_webhooks"] = hooks
    kinds = [KIND_JIRA_TRANSITION, *(bc_kind(e) for e in BC_ENTITIES.values())]
    report["pending_events"] = {k: store.count_pending(k) for k in kinds}
    report["ok"] = not problems
    return report

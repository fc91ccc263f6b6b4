"""Keep BC API subscriptions alive (3-day expiry): exactly one per webhook-capable entity.

BC deletes what is not renewed and happily creates duplicates when asked twice, so every run starts from what
BC says exists, keeps exactly one per resource (deleting extras it created), renews when less than the margin
is left, and creates only what is missing. The state store mirrors the result for the health route.
:func:`ensure_bc_subscriptions` is idempotent and safe to run as often as wanted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira.edges import Outcome
from bc_jira.edges.intake import BC_ENTITIES
from bc_jira.http import ApiError, NotFoundError, PreconditionFailed

log = logging.getLogger(__name__)

# BC: subscriptions live 3 days. The DAG runs every 6 h and renews when < 48 h are left, i.e. about once a
# day, so eight consecutive failed runs still leave the subscription alive.
BC_SUBSCRIPTION_TTL = timedelta(days=3)
BC_RENEW_WHEN_LEFT = timedelta(hours=48)


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

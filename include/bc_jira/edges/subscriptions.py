"""Keep BC API subscriptions alive (3-day expiry): exactly one per webhook-capable entity.

BC deletes what is not renewed and happily creates duplicates when asked twice, so every run starts from what
BC says exists, keeps exactly one per resource (deleting extras it created), renews when less than the margin
is left, and creates only what is missing. The state store mirrors the result for the health route.
:func:`plan_subscriptions` decides from the remote list alone (pure); :func:`ensure_bc_subscriptions`
carries the plan out, idempotent and safe to run as often as wanted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira import timeutil
from bc_jira.edges import Outcome
from bc_jira.edges.intake import BC_ENTITIES
from bc_jira.http import ApiError, NotFoundError, PreconditionFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from bc_jira.edges.protocols import BcSubscriptions, SubscriptionStore

log = logging.getLogger(__name__)

# BC: subscriptions live 3 days. The DAG runs every 6 h and renews when < 48 h are left, i.e. about once a
# day, so eight consecutive failed runs still leave the subscription alive.
BC_SUBSCRIPTION_TTL = timedelta(days=3)
BC_RENEW_WHEN_LEFT = timedelta(hours=48)

# Action kinds, in the order a plan lists them per entity: removals first, then exactly one of the last three.
DELETE_OLD_URL = "delete-old-url"  # our own subscription at a URL we no longer use
LEAVE_FOREIGN = "leave-foreign"  # someone else's subscription for our resource elsewhere: only logged
DELETE_DUPLICATE = "delete-duplicate"  # a second one at our URL (the longest-living one is kept)
KEEP = "keep"
RENEW = "renew"
CREATE = "create"


@dataclass(frozen=True)
class Known:
    """One wanted subscription: the entity, its BC resource path and what the state store remembers."""

    entity: str
    resource: str
    subscription_id: str | None = None
    expiration: str | None = None
    key: str | None = None  # its state-store row (None: the resource; another connection prefixes it)

    @property
    def store_key(self) -> str:
        return self.key or self.resource


@dataclass(frozen=True)
class Action:
    """One step of the plan; ``subscription`` is the remote row it acts on (empty for a create)."""

    entity: str
    resource: str
    kind: str
    subscription: Mapping[str, Any] | None = None
    changes: Mapping[str, Any] | None = None
    recreate: bool = False  # a create (or a renew that finds it gone) replaces one the store knew


def _norm_resource(resource: str) -> str:
    r = (resource or "").strip().lower()
    r = r.split("/api/v2.0/", 1)[-1] if "/api/v2.0/" in r else r.removeprefix("api/v2.0/")
    return r.strip("/").replace("'", "")


def _at_url(sub: Mapping[str, Any], url: str) -> bool:
    return (sub.get("notificationUrl") or "").rstrip("/") == url.rstrip("/")


def _expiry(sub: Mapping[str, Any]) -> datetime:
    return timeutil.try_parse_ts(sub.get("expirationDateTime")) or datetime.min.replace(tzinfo=UTC)


def _final_action(
    current: Mapping[str, Any] | None,
    known: Known,
    now: datetime,
    client_state: str | None,
    renew_when_left: timedelta,
) -> Action:
    """Keep, renew (expiring, or a rotated ``clientState`` to push) or create the one subscription."""
    recreate = bool(known.subscription_id)
    if current is None:
        return Action(known.entity, known.resource, CREATE, recreate=recreate)
    left = (timeutil.try_parse_ts(current.get("expirationDateTime")) or now) - now
    stale_state = bool(client_state) and current.get("clientState") not in (None, client_state)
    if left < renew_when_left or stale_state:
        changes = {"clientState": client_state} if stale_state else None
        return Action(known.entity, known.resource, RENEW, current, changes, recreate=recreate)
    return Action(known.entity, known.resource, KEEP, current)


def plan_subscriptions(
    remote: Sequence[Mapping[str, Any]],
    known: Sequence[Known],
    url: str,
    now: datetime,
    *,
    client_state: str | None = None,
    renew_when_left: timedelta = BC_RENEW_WHEN_LEFT,
) -> list[Action]:
    """What to do for each wanted subscription, from BC's list alone (pure).

    For our resource at ``url`` the one that lives longest is kept and the others deleted; at another URL
    only the one we created (its id is in the store) is deleted, others are left alone.
    """
    actions: list[Action] = []
    for k in known:
        key = _norm_resource(k.resource)
        mine = [s for s in remote if _norm_resource(s.get("resource", "")) == key]
        for s in mine:
            if not _at_url(s, url):
                kind = DELETE_OLD_URL if s.get("subscriptionId") == k.subscription_id else LEAVE_FOREIGN
                actions.append(Action(k.entity, k.resource, kind, s))
        at_url = sorted((s for s in mine if _at_url(s, url)), key=_expiry, reverse=True)
        actions.extend(Action(k.entity, k.resource, DELETE_DUPLICATE, s) for s in at_url[1:])
        current = at_url[0] if at_url else None
        actions.append(_final_action(current, k, now, client_state, renew_when_left))
    return actions


# -- carrying a plan out ------------------------------------------------------------------------------


def _remove(bc: BcSubscriptions, action: Action, out: list[Outcome]) -> None:
    s = action.subscription or {}
    if action.kind == LEAVE_FOREIGN:
        log.warning(
            "bc subscription %s for %s points at %s (not created by this connector): left alone",
            s.get("subscriptionId"),
            action.entity,
            s.get("notificationUrl"),
        )
        return
    bc.delete_subscription(s["subscriptionId"], s.get("@odata.etag"))
    if action.kind == DELETE_OLD_URL:
        out.append(Outcome(action.entity, "deleted-old-url", detail=s.get("notificationUrl", "")))
    else:
        out.append(Outcome(action.entity, "deleted-duplicate", detail=s["subscriptionId"]))


def _renew(bc: BcSubscriptions, action: Action) -> dict[str, Any] | None:
    """PATCH it; deleted (expired, too many failures) or changed under us: look again, None when gone."""
    s = action.subscription or {}
    try:
        return bc.renew_subscription(s["subscriptionId"], s.get("@odata.etag"), action.changes, current=s)
    except (NotFoundError, PreconditionFailed):
        again = [x for x in bc.list_subscriptions() if x.get("subscriptionId") == s["subscriptionId"]]
        if not again:
            return None
        return bc.renew_subscription(again[0]["subscriptionId"], None, action.changes)


def _create(
    bc: BcSubscriptions, url: str, action: Action, client_state: str | None, out: list[Outcome]
) -> dict[str, Any]:
    """Create (BC handshakes with the plugin); two creators racing would leave two: look once more."""
    current = bc.create_subscription(url, action.resource, client_state=client_state)
    key = _norm_resource(action.resource)
    for extra in bc.list_subscriptions():
        same = _norm_resource(extra.get("resource", "")) == key and _at_url(extra, url)
        if same and extra.get("subscriptionId") != current.get("subscriptionId"):
            bc.delete_subscription(extra["subscriptionId"], extra.get("@odata.etag"))
            out.append(Outcome(action.entity, "deleted-duplicate", detail=extra["subscriptionId"]))
    return current


def _secure(
    bc: BcSubscriptions, url: str, action: Action, client_state: str | None, out: list[Outcome]
) -> tuple[Mapping[str, Any], str]:
    """The one subscription after the final action, and the outcome's action name."""
    if action.kind == KEEP and action.subscription is not None:
        return action.subscription, "ok"
    if action.kind == RENEW:
        renewed = _renew(bc, action)
        if renewed is not None:
            return renewed, "renewed"
    current = _create(bc, url, action, client_state, out)
    return current, "recreated" if action.recreate else "created"


def _apply_entity(
    bc: BcSubscriptions,
    store: SubscriptionStore,
    url: str,
    known: Known,
    actions: Sequence[Action],
    client_state: str | None,
    now: Callable[[], datetime],
    fields: Mapping[str, Any] | None = None,
) -> list[Outcome]:
    """One entity's actions; a BC error is recorded on its row and reported as ``failed``. ``fields``: what
    the row also keeps (the company it belongs to), ``extra`` of every outcome."""
    fields = dict(fields or {})
    out: list[Outcome] = []
    try:
        for action in actions:
            if action.kind in (DELETE_OLD_URL, LEAVE_FOREIGN, DELETE_DUPLICATE):
                _remove(bc, action, out)
                continue
            current, done = _secure(bc, url, action, client_state, out)
            expires = timeutil.try_parse_ts(current.get("expirationDateTime"))
            store.put_subscription(
                known.store_key,
                **fields,
                entity=known.entity,
                subscription_id=current.get("subscriptionId"),
                notification_url=url,
                expiration=timeutil.iso(expires) if expires else None,
                last_action=done,
                checked_at=timeutil.iso(now()),
                last_error=None,
            )
            expires_iso = timeutil.iso(expires) if expires else None
            sid = str(current.get("subscriptionId"))
            out.append(Outcome(known.entity, done, expires_iso, detail=sid, extra=_company_extra(fields)))
    except ApiError as exc:
        store.put_subscription(
            known.store_key,
            **fields,
            entity=known.entity,
            checked_at=timeutil.iso(now()),
            last_error=str(exc)[:500],
        )
        log.error("bc subscription for %s %s: %s", known.entity, fields.get("company_name") or "", exc)
        out.append(
            Outcome(known.entity, "failed", known.expiration, detail=str(exc), extra=_company_extra(fields))
        )
    return out


def _company_extra(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {"company": fields["company_name"]} if fields.get("company_name") else {}


def secure_subscriptions(
    bc: BcSubscriptions,
    store: SubscriptionStore,
    url: str,
    known: Sequence[Known],
    remote: Sequence[Mapping[str, Any]],
    *,
    client_state: str | None,
    now: Callable[[], datetime] = timeutil.now,
    renew_when_left: timedelta = BC_RENEW_WHEN_LEFT,
    fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Outcome]:
    """Plan from ``remote`` (BC's list) and carry it out for ``known``; ``fields``: per store key, what its
    row also keeps (its company)."""
    plan = plan_subscriptions(
        remote, known, url, now(), client_state=client_state, renew_when_left=renew_when_left
    )
    out: list[Outcome] = []
    for k in known:
        mine = [a for a in plan if a.resource == k.resource]
        out += _apply_entity(bc, store, url, k, mine, client_state, now, (fields or {}).get(k.store_key))
    return out


def ensure_bc_subscriptions(
    bc: BcSubscriptions,
    store: SubscriptionStore,
    url: str,
    *,
    entities: Sequence[str] | None = None,
    client_state: str | None = None,
    now: Callable[[], datetime] = timeutil.now,
    renew_when_left: timedelta = BC_RENEW_WHEN_LEFT,
) -> list[Outcome]:
    """Exactly one live subscription per webhook-capable entity, pointing at ``url``.

    Remote truth first: list BC's subscriptions, plan (:func:`plan_subscriptions`), then per entity delete,
    renew (PATCH, If-Match, handshake; gone -> create) or create, and mirror the result in the store.
    """
    state = client_state if client_state is not None else getattr(bc.settings, "client_state", None)
    remote = bc.list_subscriptions()
    entity_sets = {v: k for k, v in BC_ENTITIES.items()}
    known = []
    for entity in entities or BC_ENTITIES.values():
        resource = bc.subscription_resource(entity_sets[entity])
        row = store.get_subscription(resource) or {}
        known.append(Known(entity, resource, row.get("subscription_id"), row.get("expiration")))
    return secure_subscriptions(
        bc, store, url, known, remote, client_state=state, now=now, renew_when_left=renew_when_left
    )

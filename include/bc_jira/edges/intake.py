"""Webhook intake: verify BC notifications and Jira deliveries, stage them durably, answer fast.

Framework-free on purpose: the plugin (FastAPI) only moves bytes and headers in and an :class:`IntakeResult`
out, so every decision below is unit-testable without a web server.

Status-code policy (why each answer is what it is):

* **BC** deletes a subscription when a notification gets any plain 4xx (only 408/429/5xx are retried:
  https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/dynamics-subscriptions
  "Notes for subscribers"). So to anything that *could* be a genuine BC call we answer 2xx, or 503 when our
  own store is down (BC retries 5xx for 36 h). A wrong ``clientState`` is logged and dropped with 202: the
  caller is either a forger (who learns nothing) or a stale subscription we no longer know the secret of
  (which ``bc_subscriptions_renewal`` recreates). A 400/413 is given only to bodies BC never sends: not
  JSON, no ``value`` list, nested deeper than ``MAX_JSON_DEPTH`` (BC's body is three levels deep), or
  larger than BC's 1,000-notification batches can be. A ``validationToken`` query parameter is the
  handshake: echoed as ``text/plain`` with 200, nothing else is looked at.
* **Jira** retries 408/409/425/429/5xx and nothing else (https://developer.atlassian.com/cloud/jira/platform/webhooks,
  "Retry policy"). Invalid or missing credentials -> 401 and nothing staged; a verified but unparsable or
  too deeply nested body -> 400 (retrying would not help); store down or a connection unreadable -> 503 so
  Jira retries; everything else 202.

Deliveries are staged once per delivery: Jira's ``X-Atlassian-Webhook-Identifier`` (unchanged across
retries), BC's item identity. A tombstone per delivery outlives the staged event for
``BC_JIRA_DELIVERY_TOMBSTONE_HOURS`` (default 24) so a late retry after the event was processed and deleted
is a duplicate, not a new event; a reused Jira identifier with a different body is audited as
``duplicate_conflict`` and not staged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from bc_jira.edges.verify import (
    MAX_JSON_DEPTH,
    PoisonBody,
    parse_json,
    verify_hub_signature,
    verify_jwt_hs256,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable, Mapping

    from bc_jira.edges.protocols import DeliveryStore
    from bc_jira.store import AuditRow

log = logging.getLogger(__name__)

SOURCE_BC = "bc"
SOURCE_JIRA = "jira"
# BC entity set -> connector entity (outbound's names) -> staged event kind.
BC_ENTITIES = {"purchaseInvoices": "purchase_invoices", "vendors": "vendors"}
KIND_JIRA_TRANSITION = "jira.transition"

MAX_BC_BODY = 4 * 1024 * 1024  # 1,000 notifications of ~400 bytes is far below this
MAX_JIRA_BODY = 2 * 1024 * 1024  # an issue with all fields and a long description fits easily
MAX_VALIDATION_TOKEN = 4096
TOMBSTONE_HOURS_ENV = "BC_JIRA_DELIVERY_TOMBSTONE_HOURS"
DEFAULT_TOMBSTONE_HOURS = 24.0


def bc_kind(entity: str) -> str:
    """Staged event kind for a connector entity (``purchase_invoices`` -> ``bc.purchase_invoices``)."""
    return f"{SOURCE_BC}.{entity}"


def tombstone_ttl(environ: Mapping[str, str] | None = None) -> timedelta:
    """How long a processed delivery is remembered: ``$BC_JIRA_DELIVERY_TOMBSTONE_HOURS`` (default 24 h).

    Must exceed the senders' retry windows (Jira: about 30 minutes). A bad value falls back to the default
    with a warning rather than failing every delivery.
    """
    import os

    raw = (environ if environ is not None else os.environ).get(TOMBSTONE_HOURS_ENV, "")
    if not raw.strip():
        return timedelta(hours=DEFAULT_TOMBSTONE_HOURS)
    try:
        hours = float(raw)
        if hours <= 0:
            raise ValueError(raw)
    except ValueError:
        log.warning(
            "%s=%r is not a positive number of hours; using %s",
            TOMBSTONE_HOURS_ENV,
            raw,
            DEFAULT_TOMBSTONE_HOURS,
        )
        return timedelta(hours=DEFAULT_TOMBSTONE_HOURS)
    return timedelta(hours=hours)


def _poison(max_body: int, exc: PoisonBody) -> IntakeResult:
    return IntakeResult(
        400,
        {"error": f"{exc}; limits: depth {MAX_JSON_DEPTH}, size {max_body} bytes. Not retryable."},
        reason="too deep",
    )


@dataclass
class IntakeResult:
    """What to answer; ``staged``/``duplicates``/``dropped`` are for logs, tests and the health route."""

    status: int
    body: Any = None  # dict -> JSON, str -> text/plain
    staged: int = 0
    duplicates: int = 0
    dropped: int = 0
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    verified_by: str | None = None  # "hmac" | "jwt" when a Jira delivery's credential checked out

    @property
    def media_type(self) -> str:
        return "text/plain" if isinstance(self.body, str) else "application/json"


def _dedupe_key(prefix: str, *parts: Any) -> str:
    raw = "|".join("" if p is None else str(p) for p in parts)
    if len(prefix) + len(raw) + 1 <= 400:
        return f"{prefix}:{raw}"
    return f"{prefix}:sha256:{hashlib.sha256(raw.encode()).hexdigest()}"


# -- Business Central --------------------------------------------------------------------------------------

_BC_RESOURCE = re.compile(
    r"companies\((?P<company>[^)]*)\)/(?P<entity>[A-Za-z]+)(?:\((?P<key>[^)]*)\))?/?(?:\?(?P<query>.*))?$"
)
_BC_SINCE = re.compile(r"lastModifiedDateTime\s+gt\s+(?P<ts>[0-9T:.\-+Z]+)", re.IGNORECASE)


def parse_bc_resource(resource: str) -> dict[str, Any] | None:
    """``{company, entity_set, record_id, since}`` from a notification's ``resource``; None if unrecognised.

    ``since`` is the collection filter's lower bound (``?$filter=lastModifiedDateTime gt X``), if any.
    """
    m = _BC_RESOURCE.search(resource or "")
    if not m:
        return None
    since = None
    if m.group("query"):
        s = _BC_SINCE.search(unquote(m.group("query")))
        since = s.group("ts") if s else None
    key = (m.group("key") or "").strip("'").strip("{}").lower() or None
    return {
        "company": m.group("company").strip("'").lower(),
        "entity_set": m.group("entity"),
        "record_id": key,
        "since": since,
    }


def subscribed_companies(rows: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """The company GUIDs (lowercase) the stored subscription rows are for: the companies whose notifications
    are wanted (``bc_subscriptions_renewal`` writes a row per configured company and deletes the rows of a
    company removed from ``companies``). None when no row exists yet: nothing to tell, everything accepted."""
    out = set()
    for row in rows:
        named = row.get("company_id") or ""
        if not named:
            parsed = parse_bc_resource(str(row.get("resource") or "").split("|", 1)[-1])
            named = parsed["company"] if parsed else ""
        if named:
            out.add(str(named).lower())
    return frozenset(out) or None


def _bc_handshake(token: str) -> IntakeResult:
    """Handshake (create and renew). Nothing else matters; answer within BC's ~5 s."""
    if len(token) > MAX_VALIDATION_TOKEN:
        return IntakeResult(400, {"error": "validationToken too long"}, reason="handshake token too long")
    return IntakeResult(
        200,
        token,
        reason="handshake",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"},
    )


def _bc_items(body: bytes) -> list[Any] | IntakeResult:
    """The ``value`` list of a BC body, or the 4xx for a body BC never sends."""
    if len(body) > MAX_BC_BODY:
        return IntakeResult(413, {"error": f"body larger than {MAX_BC_BODY} bytes"}, reason="too large")
    try:
        # A body nested deeper than MAX_JSON_DEPTH cannot be a genuine BC call (BC's is three levels deep),
        # so the "never a plain 4xx to BC" rule does not protect it: 400, not a 503 that invites retries.
        doc = parse_json(body.decode("utf-8-sig"))
    except PoisonBody as exc:
        return _poison(MAX_BC_BODY, exc)
    except (UnicodeDecodeError, ValueError):
        return IntakeResult(400, {"error": 'body is not JSON; BC sends {"value": [...]}'}, reason="not json")
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
        return IntakeResult(
            400, {"error": "body has no 'value' list; BC sends {\"value\": [...]}"}, reason="no value list"
        )
    return doc["value"]


def _client_state_ok(item: Mapping[str, Any], client_state: str | None) -> bool:
    """Constant-time ``clientState`` check; without a configured one every item passes (warned once)."""
    if not client_state:
        return True
    if hmac.compare_digest(str(item.get("clientState") or "").encode(), client_state.encode()):
        return True
    log.warning(
        "bc notification for subscription %s dropped: clientState does not match the "
        "connection's client_state",
        str(item.get("subscriptionId") or "") or "?",
    )
    return False


def bc_item_payload(item: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """``(dedupe key, staged payload)`` for one notification item, None (logged) when not ours."""
    sub_id = str(item.get("subscriptionId") or "")
    resource = str(item.get("resource") or "")
    change = str(item.get("changeType") or "")
    parsed = parse_bc_resource(resource)
    entity = BC_ENTITIES.get(parsed["entity_set"]) if parsed else None
    if parsed is None or entity is None or not change:
        log.warning(
            "bc notification for subscription %s dropped: resource %r / changeType %r is not one "
            "the connector subscribes to",
            sub_id or "?",
            resource[:200],
            change,
        )
        return None
    modified = str(item.get("lastModifiedDateTime") or "")
    payload = {
        "subscriptionId": sub_id,
        "resource": resource,
        "changeType": change,
        "lastModifiedDateTime": modified,
        "expirationDateTime": item.get("expirationDateTime"),
        "entity": entity,
        "entity_set": parsed["entity_set"],
        "company_id": parsed["company"],
        "record_id": parsed["record_id"],
        # collection: BC merged >1000 changes; the consumer scans the window (since None -> everything)
        "scan": {"since": parsed["since"]} if change == "collection" else None,
    }
    return _dedupe_key("bc", sub_id, resource, change, modified), payload


def _not_ours(items: list[Any], companies: Collection[str]) -> tuple[list[Any], set[str]]:
    """The items of the wanted companies, and the GUIDs of the others (not staged)."""
    keep, other = [], set()
    for item in items:
        parsed = parse_bc_resource(str(item.get("resource") or "")) if isinstance(item, dict) else None
        if parsed is not None and parsed["company"] not in companies:
            other.add(parsed["company"])
            continue
        keep.append(item)
    return keep, other


def _unwanted_company(other: set[str], n_items: int) -> IntakeResult:
    """Every item names a company not synced here: 410, so BC deletes the subscription (only a subscription
    of a company removed from ``companies`` sends these; a delivery mixing in a wanted company gets 202)."""
    names = ", ".join(sorted(other))
    return IntakeResult(
        410,
        {"error": f"company {names} is not synced by this deployment; its subscription is not wanted"},
        dropped=n_items,
        reason=f"company not configured: {names}",
    )


def handle_bc_notification(
    query: Mapping[str, str],
    body: bytes,
    *,
    client_state: str | None,
    store: DeliveryStore | None,
    companies: Collection[str] | None = None,
) -> IntakeResult:
    """The BC notification endpoint: handshake echo, or verify ``clientState`` and stage every item.

    ``store`` may be None only for the handshake (nothing is staged then). ``companies``: the GUIDs
    (lowercase) whose notifications are wanted (None: any); an item of another company is not staged.
    """
    token = query.get("validationToken")
    if token is not None:
        return _bc_handshake(token)
    items = _bc_items(body)
    if isinstance(items, IntakeResult):
        return items
    if store is None:
        raise ValueError("a state store is needed to stage BC notifications")
    result = IntakeResult(202, {"status": "accepted"})
    ttl = tombstone_ttl()
    if not client_state:
        log.warning(
            "bc notification: connection has no extra.client_state; items are accepted unverified "
            "(set client_state on bc_default and let bc_subscriptions_renewal recreate them)"
        )
    verified = [i for i in items if isinstance(i, dict) and _client_state_ok(i, client_state)]
    result.dropped = len(items) - len(verified)
    if companies is not None:
        wanted, other = _not_ours(verified, companies)
        if other and not wanted and not result.dropped:  # only then can no wanted subscription be in it
            return _unwanted_company(other, len(verified))
        if other:
            log.warning("bc notification: items of companies %s not staged (not configured)", sorted(other))
        result.dropped += len(verified) - len(wanted)
        verified = wanted
    for item in verified:
        staged = bc_item_payload(item)
        if staged is None:
            result.dropped += 1
            continue
        key, payload = staged
        # The item's identity is its content: a repeat is always the same delivery (no conflicts for BC).
        outcome = store.stage_delivery(
            SOURCE_BC,
            bc_kind(payload["entity"]),
            key,
            payload,
            delivery_key=key,
            body_sha256=hashlib.sha256(key.encode()).hexdigest(),
            ttl=ttl,
        )
        if outcome == "staged":
            result.staged += 1
        else:
            result.duplicates += 1
    result.body = {"status": "accepted", "staged": result.staged, "duplicates": result.duplicates}
    return result


# -- Jira --------------------------------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str | None:
    low = name.lower()
    for k, v in headers.items():
        if k.lower() == low:
            return v
    return None


def _status_change(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    for item in (payload.get("changelog") or {}).get("items") or []:
        if isinstance(item, dict) and (item.get("fieldId") == "status" or item.get("field") == "status"):
            return item
    return None


def _verify_jira(
    headers: Mapping[str, str],
    body: bytes,
    webhook_secret: str | None,
    client_secret: str | None,
    now: float | None,
) -> tuple[bool, str]:
    """``(verified, how)``: the admin webhook's HMAC (``X-Hub-Signature``) or the app's bearer JWT."""
    signature = _header(headers, "X-Hub-Signature")
    auth = _header(headers, "Authorization") or ""
    if signature is not None:
        ok = verify_hub_signature(body, signature, webhook_secret)
        if not ok and not webhook_secret:
            log.warning("jira webhook: signed delivery but jira_default has no extra.webhook_secret")
        return ok, "hmac"
    if auth[:7].lower() == "bearer ":
        claims = verify_jwt_hs256(auth[7:].strip(), client_secret, now=now)
        if claims is not None:
            log.debug("jira webhook JWT claims: %s", sorted(claims))
        return claims is not None, "jwt"
    return False, "none"


def _jira_payload(body: bytes) -> dict[str, Any] | IntakeResult:
    """The verified body as a JSON object, or the 400 (retrying would not help)."""
    try:
        payload = parse_json(body.decode("utf-8"))
    except PoisonBody as exc:
        return _poison(MAX_JIRA_BODY, exc)
    except (UnicodeDecodeError, ValueError):
        return IntakeResult(400, {"error": "body is not JSON"}, reason="not json")
    if not isinstance(payload, dict):
        return IntakeResult(400, {"error": "body is not a JSON object"}, reason="not an object")
    return payload


def transition_of(
    payload: Mapping[str, Any], headers: Mapping[str, str], ident: str, how: str
) -> dict[str, Any] | None:
    """The staged row for a status change (``jira:issue_updated`` with a status changelog item), else None."""
    event = str(payload.get("webhookEvent") or "")
    change = _status_change(payload) if event == "jira:issue_updated" else None
    raw_issue = payload.get("issue")
    issue: Mapping[str, Any] = raw_issue if isinstance(raw_issue, dict) else {}
    if change is None or not issue.get("id"):
        return None
    fields = issue.get("fields") or {}
    status = fields.get("status") or {}
    return {
        "issue_id": str(issue["id"]),
        "issue_key": issue.get("key"),
        "webhook_event": event,
        "event_type": payload.get("issue_event_type_name"),
        "timestamp": payload.get("timestamp"),
        "from_status": change.get("fromString"),
        "to_status": change.get("toString") or status.get("name"),
        "to_status_id": change.get("to"),
        "to_category": (status.get("statusCategory") or {}).get("key"),
        "changelog_id": (payload.get("changelog") or {}).get("id"),
        "delivery_id": ident,
        "retry": _header(headers, "X-Atlassian-Webhook-Retry"),
        "verified_by": how,
        "actor": (payload.get("user") or {}).get("accountId"),
    }


def _stage_transition(
    store: DeliveryStore, staged: dict[str, Any], ident: str, body: bytes, how: str
) -> IntakeResult:
    """Stage once per delivery identifier (a tombstone outlives the event).

    The changelog id names the change itself: the same transition seen by two webhooks (or redelivered with
    a new identifier) is staged once.
    """
    changelog_id = staged["changelog_id"]
    key = (
        _dedupe_key("jira", "change", staged["issue_id"], changelog_id)
        if changelog_id
        else _dedupe_key("jira", "delivery", ident)
    )
    body_sha = hashlib.sha256(body).hexdigest()
    outcome = store.stage_delivery(
        SOURCE_JIRA,
        KIND_JIRA_TRANSITION,
        key,
        staged,
        delivery_key=_dedupe_key("jira", "delivery", ident),
        body_sha256=body_sha,
        ttl=tombstone_ttl(),
    )
    if outcome == "staged":
        return IntakeResult(202, {"status": "accepted", "staged": 1}, staged=1, verified_by=how)
    if outcome == "conflict":
        store.audit([conflict_audit_row(ident, staged, body_sha)])
        return IntakeResult(
            202,
            {"status": "accepted", "staged": 0, "duplicate": True, "conflict": True},
            duplicates=1,
            reason="conflicting duplicate",
            verified_by=how,
        )
    return IntakeResult(
        202, {"status": "accepted", "staged": 0, "duplicate": True}, duplicates=1, verified_by=how
    )


def handle_jira_webhook(
    headers: Mapping[str, str],
    body: bytes,
    *,
    webhook_secret: str | None,
    client_secret: str | None,
    store: DeliveryStore,
    now: float | None = None,
) -> IntakeResult:
    """Verify a Jira delivery (HMAC or app JWT), then stage a status change once."""
    if len(body) > MAX_JIRA_BODY:
        return IntakeResult(413, {"error": f"body larger than {MAX_JIRA_BODY} bytes"}, reason="too large")
    ok, how = _verify_jira(headers, body, webhook_secret, client_secret, now)
    if not ok:
        log.warning("jira webhook rejected (401): %s credential missing or invalid", how)
        return IntakeResult(
            401,
            {"error": "invalid or missing webhook signature"},
            reason=f"bad {how}",
            headers={"WWW-Authenticate": "Bearer"},
        )
    payload = _jira_payload(body)
    if isinstance(payload, IntakeResult):
        return payload
    ident = _header(headers, "X-Atlassian-Webhook-Identifier") or hashlib.sha256(body).hexdigest()
    staged = transition_of(payload, headers, ident, how)
    if staged is None:
        return IntakeResult(
            202, {"status": "ignored", "reason": "not a status change"}, reason="ignored", verified_by=how
        )
    return _stage_transition(store, staged, ident, body, how)


def conflict_audit_row(ident: str, staged: Mapping[str, Any], body_sha: str) -> AuditRow:
    """Audit row for a reused delivery identifier with a different, validly signed body (not staged)."""
    from bc_jira.store import AuditRow

    return AuditRow(
        entity="jira_webhook",
        bc_id="*",
        action="duplicate_conflict",
        issue_key=staged.get("issue_key") or staged.get("issue_id"),
        reason=f"delivery {ident} was already staged with a different body; this body was not staged",
        read={
            "delivery_id": ident,
            "issue_id": staged.get("issue_id"),
            "changelog_id": staged.get("changelog_id"),
            "to_status": staged.get("to_status"),
            "body_sha256": body_sha,
            "verified_by": staged.get("verified_by"),
        },
    )


def safely(handler: Callable[[], IntakeResult], what: str) -> IntakeResult:
    """Run a handler; a store failure becomes 503 (both senders retry it), never a 4xx."""
    from bc_jira.airflow_conn import ConnectionUnavailable

    try:
        return handler()
    except ConnectionUnavailable as exc:  # fail closed: nothing is staged unverified
        log.error("%s: answering 503, nothing staged: %s", what, exc)
        return IntakeResult(
            503,
            {"error": "temporarily unavailable"},
            reason="connection unavailable",
            headers={"Retry-After": "30"},
        )
    except Exception as exc:
        log.error("%s: staging failed, answering 503 so the sender retries: %s", what, type(exc).__name__)
        log.debug("%s staging failure", what, exc_info=True)
        return IntakeResult(
            503,
            {"error": "temporarily unavailable"},
            reason=type(exc).__name__,
            headers={"Retry-After": "30"},
        )

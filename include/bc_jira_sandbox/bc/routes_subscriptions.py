"""BC API v2.0 webhook subscriptions: create and renew (with the validation handshake), read, delete."""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.api import ROOT, env_claims, env_url
from bc_jira_sandbox.bc.entities import (
    HANDSHAKE_TIMEOUT_S,
    MAX_SUBSCRIPTIONS,
    NULL_GUID,
    SUBSCRIPTION_TTL,
    WEBHOOK_ENTITIES,
    BcError,
    _bad,
    _etag,
    ts,
)
from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["business central"])


def sub_public(sub: dict[str, Any]) -> dict[str, Any]:
    return {
        "@odata.etag": _etag(sub["subscriptionId"], sub["_version"]),
        **{k: v for k, v in sub.items() if not k.startswith("_")},
    }


def handshake(sb: Sandbox, url: str) -> str | None:
    """None when the receiver echoed the token with 200, else the reason."""
    if not re.match(r"^https?://", url or ""):
        return "notificationUrl must be an absolute http(s) URL"
    token = uuid.uuid4().hex + uuid.uuid4().hex
    sep = "&" if "?" in url else "?"
    target, headers = f"{url}{sep}validationToken={token}", {"clientRequestId": str(uuid.uuid4())}
    if getattr(sb.bc, "handshake_method", "POST") == "GET":
        resp = sb.get(target, headers, timeout=HANDSHAKE_TIMEOUT_S)
    else:
        resp = sb.post_json(target, b"", headers, timeout=HANDSHAKE_TIMEOUT_S)
    sb.stats.bump(f"bc.handshake.{getattr(sb.bc, 'handshake_method', 'POST').lower()}")
    if resp is None:
        return "no answer within the handshake timeout"
    text = resp.text.strip()
    if resp.status_code != 200:
        return f"status {resp.status_code}"
    if text not in (token, f'"{token}"'):
        return "the response body did not contain the validationToken"
    return None


def find_sub(sb: Sandbox, key: str) -> dict[str, Any]:
    sb.bc.purge_expired()
    sub = sb.bc.subscriptions.get(key.strip("'"))
    if sub is None:
        raise BcError(
            404,
            "Internal_RecordNotFound",
            f"The API Webhook Subscription does not exist. Identification fields and values: "
            f"Subscription Id='{key.strip(chr(39))}'",
        )
    return sub


@router.get(ROOT + "/subscriptions", dependencies=[Depends(env_claims)])
def list_subscriptions(request: Request, tenant: str, environment: str, sb: Sandbox = SANDBOX) -> Any:
    with sb.lock:
        sb.bc.purge_expired()
        value = [sub_public(s) for s in sb.bc.subscriptions.values()]
    return {"@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#subscriptions", "value": value}


@router.post(ROOT + "/subscriptions")
def create_subscription(
    request: Request,
    tenant: str,
    environment: str,
    body: dict[str, Any] = Body(...),
    claims: dict[str, Any] = Depends(env_claims),
    sb: Sandbox = SANDBOX,
) -> Any:
    url, resource = body.get("notificationUrl"), body.get("resource")
    if not url or not resource:
        raise _bad("notificationUrl and resource are required.")
    unknown = set(body) - {"notificationUrl", "resource", "clientState"}
    if unknown:
        raise BcError(
            400,
            "BadRequest_PropertyNotFound",
            f"The property '{sorted(unknown)[0]}' does not exist on type 'Microsoft.NAV.subscriptions'.",
        )
    if len(body.get("clientState") or "") > 2048:
        raise BcError(400, "Application_StringExceededLength", "clientState is longer than 2048 characters.")
    with sb.lock:
        cid, entity = sb.bc.subscription_entity(resource)
        cid = companies.for_api(sb, cid).company["id"].lower()  # 404 unknown, 403 no permission there
        if entity not in WEBHOOK_ENTITIES:
            raise _bad(
                f"The entity '{entity}' does not support webhooks (supported here: "
                f"{', '.join(sorted(WEBHOOK_ENTITIES))})."
            )
        sb.bc.purge_expired()
        if len(sb.bc.subscriptions) >= MAX_SUBSCRIPTIONS:
            raise _bad(f"The maximum number of subscriptions ({MAX_SUBSCRIPTIONS}) has been reached.")
    why = handshake(sb, url)  # outside the lock: the receiver may call back into the sandbox
    if why:
        raise _bad(
            f"The subscription could not be validated: the notificationUrl must answer the "
            f"handshake with status 200 and the validationToken ({why})."
        )
    now = sb.now()
    with sb.lock:
        sid = uuid.uuid4().hex
        sub = {
            "subscriptionId": sid,
            "notificationUrl": url,
            "resource": resource,
            "timestamp": int(now.timestamp() * 1000),
            "userId": claims.get("oid", NULL_GUID),
            "lastModifiedDateTime": ts(now),
            "clientState": body.get("clientState") or "",
            "expirationDateTime": ts(now + SUBSCRIPTION_TTL),
            "systemCreatedAt": ts(now),
            "systemCreatedBy": claims.get("oid", NULL_GUID),
            "systemModifiedAt": ts(now),
            "systemModifiedBy": claims.get("oid", NULL_GUID),
            "_entity": entity,
            "_company": cid,
            "_version": 1,
        }
        sb.bc.subscriptions[sid] = sub
        out = sub_public(sub)
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#subscriptions/$entity"
    return JSONResponse({"@odata.context": ctx, **out}, status_code=201, headers={"ETag": out["@odata.etag"]})


@router.get(ROOT + "/subscriptions({key})", dependencies=[Depends(env_claims)])
def get_subscription(request: Request, tenant: str, environment: str, key: str, sb: Sandbox = SANDBOX) -> Any:
    with sb.lock:
        out = sub_public(find_sub(sb, key))
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#subscriptions/$entity"
    return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})


@router.patch(ROOT + "/subscriptions({key})")
def renew_subscription(
    request: Request,
    tenant: str,
    environment: str,
    key: str,
    body: dict[str, Any] = Body(default_factory=dict),
    claims: dict[str, Any] = Depends(env_claims),
    sb: Sandbox = SANDBOX,
) -> Any:
    if_match = request.headers.get("if-match")
    with sb.lock:
        sub = find_sub(sb, key)
        if not if_match:
            raise BcError(
                400,
                "BadRequest_InvalidToken",
                "Could not validate the client concurrency token required by the service.",
            )
        if if_match != "*" and if_match != _etag(sub["subscriptionId"], sub["_version"]):
            raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")
        unknown = set(body) - {"notificationUrl", "clientState", "resource"}
        if unknown:
            raise BcError(
                400,
                "BadRequest_PropertyNotFound",
                f"The property '{sorted(unknown)[0]}' cannot be changed.",
            )
        why = renewal_mismatch(sb.bc, sub, body)
        if why:
            raise _bad(why)
        url = body["notificationUrl"]
    why = handshake(sb, url)
    if why:
        raise _bad(
            f"The subscription could not be validated: the notificationUrl must answer the "
            f"handshake with status 200 and the validationToken ({why})."
        )
    now = sb.now()
    with sb.lock:
        sub = find_sub(sb, key)
        sub.update(
            {
                "notificationUrl": url,
                "expirationDateTime": ts(now + SUBSCRIPTION_TTL),
                "lastModifiedDateTime": ts(now),
                "systemModifiedAt": ts(now),
                "systemModifiedBy": claims.get("oid", NULL_GUID),
                "_version": sub["_version"] + 1,
            }
        )
        if "clientState" in body:
            sub["clientState"] = body["clientState"] or ""
        out = sub_public(sub)
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#subscriptions/$entity"
    return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})


@router.delete(ROOT + "/subscriptions({key})", dependencies=[Depends(env_claims)])
def delete_subscription(
    request: Request, tenant: str, environment: str, key: str, sb: Sandbox = SANDBOX
) -> Any:
    if_match = request.headers.get("if-match")
    with sb.lock:
        sub = find_sub(sb, key)
        if if_match and if_match != "*" and if_match != _etag(sub["subscriptionId"], sub["_version"]):
            raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")
        del sb.bc.subscriptions[sub["subscriptionId"]]
    return Response(status_code=204)


def renewal_mismatch(state: BcState, sub: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Why a renewal PATCH body is refused, or None.

    Learn (api-reference/v2.0/api/dynamics_subscriptions_update) documents renewal as ``PATCH
    subscriptions({'id'})`` with If-Match and the body ``{notificationUrl, resource, clientState}``: "A
    subscription is valid for 3 days unless it is updated. PATCH requests will perform a handshake." Whether
    an empty body renews is not documented, and nothing documents moving a
    subscription to another resource, so the sandbox holds clients to the documented form [inference]:
    ``notificationUrl`` and ``resource`` present, the resource the subscription's own. A new notificationUrl
    is handshaken like on create; ``clientState`` is optional ("can be provided in the POST and PATCH").
    """
    missing = [k for k in ("notificationUrl", "resource") if not body.get(k)]
    if missing:
        return (
            f"The subscription was not renewed: the PATCH body must carry the subscription's "
            f"{' and '.join(missing)} (notificationUrl, resource and optionally clientState)."
        )
    if state.subscription_entity(str(body["resource"])) != (sub["_company"], sub["_entity"]):
        return (
            f"The resource '{body['resource']}' does not match the subscription's resource "
            f"'{sub['resource']}': a subscription cannot be moved to another resource."
        )
    return None

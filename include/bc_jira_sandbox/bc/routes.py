"""BC API v2.0 routes: companies, records and their lines, subscriptions; ``/_sandbox/bc`` control."""

from __future__ import annotations

import bisect
import re
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox import entra
from bc_jira_sandbox.bc.entities import (
    DOCUMENTS,
    HANDSHAKE_METHODS,
    HANDSHAKE_TIMEOUT_S,
    LINES,
    MAX_SUBSCRIPTIONS,
    NULL_GUID,
    SUBSCRIPTION_TTL,
    WEBHOOK_ENTITIES,
    BcError,
    _bad,
    _bc,
    _etag,
    ts,
)
from bc_jira_sandbox.bc.odata import (
    _expand,
    _Filter,
    _int_param,
    _key_for,
    _orderby,
    _page_size,
    _select,
    _token_decode,
    _token_encode,
)
from bc_jira_sandbox.bc.state import BcState

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


def router(sb: Sandbox) -> APIRouter:
    r = APIRouter(tags=["business central"])
    root = "/v2.0/{tenant}/{environment}/api/v2.0"
    company = root + "/companies({company_id})"

    def st() -> BcState:
        return sb.bc

    def env_url(tenant: str, environment: str) -> str:
        return f"{sb.base_url}/v2.0/{tenant}/{environment}/api/v2.0"

    def check(
        request: Request, tenant: str, environment: str, company_id: str | None = None
    ) -> dict[str, Any]:
        auth = request.headers.get("authorization", "")
        www = {
            "WWW-Authenticate": f'Bearer authorization_uri="{sb.base_url}/{sb.creds["tenant_id"]}/oauth2/'
            f'authorize", resource_id="{entra.BC_RESOURCE}"'
        }
        if not auth.lower().startswith("bearer "):
            raise BcError(
                401,
                "Authentication_InvalidCredentials",
                "The server has rejected the client credentials.",
                www,
            )
        claims, why = entra.verify_token(sb, auth[7:].strip())
        if claims is None or claims.get("tid", "").lower() != tenant.lower():
            raise BcError(
                401,
                "Authentication_InvalidCredentials",
                f"The server has rejected the client credentials. ({why or 'wrong tenant'})",
                www,
            )
        if environment != sb.creds["environment"]:
            raise BcError(
                404, "NoEnvironment", f"Environment '{environment}' does not exist for tenant '{tenant}'."
            )
        if company_id is not None and company_id.strip("'").lower() != st().company["id"].lower():
            raise BcError(
                404,
                "Internal_CompanyNotFound",
                f"Cannot process the request because the company '{company_id}' cannot be found.",
            )
        return claims

    def entity_or_404(request: Request, entity: str) -> str:
        if entity not in DOCUMENTS:
            raise BcError(
                404,
                "BadRequest_NotFound",
                f"No HTTP resource was found that matches the request URI '{request.url}'.",
            )
        return entity

    def parse_key(raw: str) -> str:
        return raw.strip("'").lower()

    # -- companies ------------------------------------------------------------------------------------------
    @r.get(root + "/companies")
    @_bc
    def list_companies(request: Request, tenant: str, environment: str) -> Any:
        check(request, tenant, environment)
        sel = _select("companies", request.query_params.get("$select"))
        rec = st().company
        flt = request.query_params.get("$filter")
        values = [rec] if not flt or _Filter("companies", flt).pred(rec) else []
        return {
            "@odata.context": f"{env_url(tenant, environment)}/$metadata#companies",
            "value": [{k: v[k] for k in sel} if sel else dict(v) for v in values],
        }

    @r.get(company)
    @_bc
    def get_company(request: Request, tenant: str, environment: str, company_id: str) -> Any:
        check(request, tenant, environment, company_id)
        return {
            "@odata.context": f"{env_url(tenant, environment)}/$metadata#companies/$entity",
            **st().company,
        }

    # -- single records (declared before the collection route: {entity} would also match "x(...)") ----------
    @r.post(company + "/purchaseInvoices({key})/Microsoft.NAV.post")
    @_bc
    def post_invoice(request: Request, tenant: str, environment: str, company_id: str, key: str) -> Any:
        check(request, tenant, environment, company_id)
        with sb.lock:
            st().post_invoice(parse_key(key))
        return Response(status_code=204)

    @r.get(company + "/{entity}({key})/{nav}")
    @_bc
    def get_lines(
        request: Request, tenant: str, environment: str, company_id: str, entity: str, key: str, nav: str
    ) -> Any:
        check(request, tenant, environment, company_id)
        entity_or_404(request, entity)
        if LINES.get(entity) != nav:
            raise BcError(
                404,
                "BadRequest_NotFound",
                f"No HTTP resource was found that matches the request URI '{request.url}'.",
            )
        with sb.lock:
            doc = st().get(entity, parse_key(key))
            lines = [dict(ln) for ln in st().lines.get(doc["id"], [])]
        sel = _select(nav, request.query_params.get("$select"))
        ctx = f"{env_url(tenant, environment)}/$metadata#companies({company_id})/{entity}({key})/{nav}"
        return {"@odata.context": ctx, "value": [{k: ln[k] for k in sel} if sel else ln for ln in lines]}

    @r.get(company + "/{entity}({key})")
    @_bc
    def get_record(
        request: Request, tenant: str, environment: str, company_id: str, entity: str, key: str
    ) -> Any:
        check(request, tenant, environment, company_id)
        entity_or_404(request, entity)
        sel = _select(entity, request.query_params.get("$select"))
        expand = _expand(entity, request.query_params.get("$expand"))
        with sb.lock:
            rec = st().get(entity, parse_key(key))
            body = st().public(entity, rec, sel, expand)
        ctx = f"{env_url(tenant, environment)}/$metadata#companies({company_id})/{entity}/$entity"
        return JSONResponse({"@odata.context": ctx, **body}, headers={"ETag": body["@odata.etag"]})

    @r.patch(company + "/{entity}({key})")
    @_bc
    def patch_record(
        request: Request,
        tenant: str,
        environment: str,
        company_id: str,
        entity: str,
        key: str,
        body: dict[str, Any] = Body(...),
    ) -> Any:
        check(request, tenant, environment, company_id)
        entity_or_404(request, entity)
        if_match = request.headers.get("if-match")
        with sb.lock:
            state = st()
            rec = state.get(entity, parse_key(key))
            if not if_match:
                raise BcError(
                    400,
                    "BadRequest_InvalidToken",
                    "Could not validate the client concurrency token required by the service. Please "
                    "provide a valid token in the client request.",
                )
            if if_match != "*" and if_match != state.etag(rec["id"]):
                raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")
            if entity == "purchaseInvoices" and rec["status"] != "Draft":
                raise BcError(
                    400,
                    "Application_DialogException",
                    "The purchase invoice has been posted and can no longer be modified.",
                )
            if state.apply(entity, rec, body, api=True):
                state.touch(entity, rec)
            out = state.public(entity, rec)
        ctx = f"{env_url(tenant, environment)}/$metadata#companies({company_id})/{entity}/$entity"
        return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})

    # -- collections ----------------------------------------------------------------------------------------
    @r.get(company + "/{entity}")
    @_bc
    def list_records(request: Request, tenant: str, environment: str, company_id: str, entity: str) -> Any:
        check(request, tenant, environment, company_id)
        entity_or_404(request, entity)
        q = request.query_params
        pred = _Filter(entity, q["$filter"]).pred if q.get("$filter") else None
        sel = _select(entity, q.get("$select"))
        order = _orderby(entity, q.get("$orderby"))
        expand = _expand(entity, q.get("$expand"))
        top, skip = _int_param(request, "$top"), _int_param(request, "$skip")
        size, honoured = _page_size(request)
        token = q.get("$skiptoken")
        with sb.lock:
            state = st()
            rows = [rec for rec in state.records[entity].values() if pred is None or pred(rec)]
            keyed = sorted(((_key_for(entity, order, rec), rec) for rec in rows), key=lambda kr: kr[0])
            served = 0
            if token:
                after, served = _token_decode(entity, order, token)
                start = bisect.bisect_right([k for k, _ in keyed], after)
                keyed = keyed[start:]
            elif skip:
                keyed = keyed[skip:]
            limit = size if top is None else min(size, max(0, top - served))
            page = keyed[:limit]
            more = len(keyed) > limit and (top is None or served + limit < top)
            value = [state.public(entity, rec, sel, expand) for _, rec in page]
        body: dict[str, Any] = {
            "@odata.context": f"{env_url(tenant, environment)}/$metadata#companies({company_id})/{entity}",
            "value": value,
        }
        if more and page:
            params = [(k, v) for k, v in q.multi_items() if k not in ("$skiptoken", "$skip")]
            params.append(("$skiptoken", _token_encode(entity, order, page[-1][1], served + len(page))))
            body["@odata.nextLink"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?" + urlencode(
                params, quote_via=quote, safe="$'(),:"
            )
        headers = {"Preference-Applied": f"odata.maxpagesize={size}"} if honoured else {}
        return JSONResponse(body, headers=headers)

    # -- subscriptions --------------------------------------------------------------------------------------
    def sub_public(tenant: str, environment: str, sub: dict[str, Any]) -> dict[str, Any]:
        return {
            "@odata.etag": _etag(sub["subscriptionId"], sub["_version"]),
            **{k: v for k, v in sub.items() if not k.startswith("_")},
        }

    def handshake(url: str) -> str | None:
        """None when the receiver echoed the token with 200, else the reason."""
        if not re.match(r"^https?://", url or ""):
            return "notificationUrl must be an absolute http(s) URL"
        token = uuid.uuid4().hex + uuid.uuid4().hex
        sep = "&" if "?" in url else "?"
        target, headers = f"{url}{sep}validationToken={token}", {"clientRequestId": str(uuid.uuid4())}
        if getattr(st(), "handshake_method", "POST") == "GET":
            resp = sb.get(target, headers, timeout=HANDSHAKE_TIMEOUT_S)
        else:
            resp = sb.post_json(target, b"", headers, timeout=HANDSHAKE_TIMEOUT_S)
        sb.stats.bump(f"bc.handshake.{getattr(st(), 'handshake_method', 'POST').lower()}")
        if resp is None:
            return "no answer within the handshake timeout"
        text = resp.text.strip()
        if resp.status_code != 200:
            return f"status {resp.status_code}"
        if text not in (token, f'"{token}"'):
            return "the response body did not contain the validationToken"
        return None

    def find_sub(key: str) -> dict[str, Any]:
        st().purge_expired()
        sub = st().subscriptions.get(key.strip("'"))
        if sub is None:
            raise BcError(
                404,
                "Internal_RecordNotFound",
                f"The API Webhook Subscription does not exist. Identification fields and values: "
                f"Subscription Id='{key.strip(chr(39))}'",
            )
        return sub

    @r.get(root + "/subscriptions")
    @_bc
    def list_subscriptions(request: Request, tenant: str, environment: str) -> Any:
        check(request, tenant, environment)
        with sb.lock:
            st().purge_expired()
            value = [sub_public(tenant, environment, s) for s in st().subscriptions.values()]
        return {"@odata.context": f"{env_url(tenant, environment)}/$metadata#subscriptions", "value": value}

    @r.post(root + "/subscriptions")
    @_bc
    def create_subscription(
        request: Request, tenant: str, environment: str, body: dict[str, Any] = Body(...)
    ) -> Any:
        claims = check(request, tenant, environment)
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
            raise BcError(
                400, "Application_StringExceededLength", "clientState is longer than 2048 characters."
            )
        with sb.lock:
            cid, entity = st().subscription_entity(resource)
            if cid != st().company["id"].lower():
                raise BcError(
                    404,
                    "Internal_CompanyNotFound",
                    f"Cannot process the request because the company '{cid}' cannot be found.",
                )
            if entity not in WEBHOOK_ENTITIES:
                raise _bad(
                    f"The entity '{entity}' does not support webhooks (supported here: "
                    f"{', '.join(sorted(WEBHOOK_ENTITIES))})."
                )
            st().purge_expired()
            if len(st().subscriptions) >= MAX_SUBSCRIPTIONS:
                raise _bad(f"The maximum number of subscriptions ({MAX_SUBSCRIPTIONS}) has been reached.")
        why = handshake(url)  # outside the lock: the receiver may call back into the sandbox
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
            st().subscriptions[sid] = sub
            out = sub_public(tenant, environment, sub)
        ctx = f"{env_url(tenant, environment)}/$metadata#subscriptions/$entity"
        return JSONResponse(
            {"@odata.context": ctx, **out}, status_code=201, headers={"ETag": out["@odata.etag"]}
        )

    @r.get(root + "/subscriptions({key})")
    @_bc
    def get_subscription(request: Request, tenant: str, environment: str, key: str) -> Any:
        check(request, tenant, environment)
        with sb.lock:
            out = sub_public(tenant, environment, find_sub(key))
        ctx = f"{env_url(tenant, environment)}/$metadata#subscriptions/$entity"
        return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})

    @r.patch(root + "/subscriptions({key})")
    @_bc
    def renew_subscription(
        request: Request,
        tenant: str,
        environment: str,
        key: str,
        body: dict[str, Any] = Body(default_factory=dict),
    ) -> Any:
        claims = check(request, tenant, environment)
        if_match = request.headers.get("if-match")
        with sb.lock:
            sub = find_sub(key)
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
            why = renewal_mismatch(st(), sub, body)
            if why:
                raise _bad(why)
            url = body["notificationUrl"]
        why = handshake(url)
        if why:
            raise _bad(
                f"The subscription could not be validated: the notificationUrl must answer the "
                f"handshake with status 200 and the validationToken ({why})."
            )
        now = sb.now()
        with sb.lock:
            sub = find_sub(key)
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
            out = sub_public(tenant, environment, sub)
        ctx = f"{env_url(tenant, environment)}/$metadata#subscriptions/$entity"
        return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})

    @r.delete(root + "/subscriptions({key})")
    @_bc
    def delete_subscription(request: Request, tenant: str, environment: str, key: str) -> Any:
        check(request, tenant, environment)
        if_match = request.headers.get("if-match")
        with sb.lock:
            sub = find_sub(key)
            if if_match and if_match != "*" and if_match != _etag(sub["subscriptionId"], sub["_version"]):
                raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")
            del st().subscriptions[sub["subscriptionId"]]
        return Response(status_code=204)

    # -- control: change data as a BC user would ------------------------------------------------------------
    @r.post("/_sandbox/bc/change")
    @_bc
    def change(body: Any = Body(...)) -> Any:
        items = body if isinstance(body, list) else body.get("changes", [body])
        out = []
        with sb.lock:
            for item in items:
                out += _control_change(sb, item)
            sb.mark_dirty()
        return {"ok": True, "records": out}

    @r.post("/_sandbox/bc/options")
    @_bc
    def options(body: Any = Body(default_factory=dict)) -> Any:
        """``{"handshake_method": "POST" | "GET"}``: how the handshake request is sent (create and renew)."""
        with sb.lock:
            if "handshake_method" in body:
                method = str(body["handshake_method"]).upper()
                if method not in HANDSHAKE_METHODS:
                    raise _bad(f"handshake_method must be one of {', '.join(HANDSHAKE_METHODS)}")
                st().handshake_method = method
            return {"handshake_method": getattr(st(), "handshake_method", "POST")}

    @r.get("/_sandbox/bc/records/{entity}")
    @_bc
    def dump(entity: str) -> Any:
        if entity not in DOCUMENTS:
            raise BcError(404, "BadRequest_NotFound", f"unknown entity {entity}")
        with sb.lock:
            return {"value": [st().public(entity, r) for r in st().records[entity].values()]}

    return r


def renewal_mismatch(state: BcState, sub: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Why a renewal PATCH body is refused, or None.

    Learn (api-reference/v2.0/api/dynamics_subscriptions_update) documents renewal as ``PATCH
    subscriptions({'id'})`` with If-Match and the body ``{notificationUrl, resource, clientState}``: "A
    subscription is valid for 3 days unless it is updated. PATCH requests will perform a handshake." Whether
    an empty body renews is not documented (vendor-behaviour-review.md #5), and nothing documents moving a
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


def _control_change(sb: Sandbox, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One user action: create, set fields, post, delete or touch N records; fires subscriptions."""
    state = sb.bc
    entity = item.get("entity")
    if entity not in DOCUMENTS:
        raise _bad(f"entity must be one of {', '.join(DOCUMENTS)}")
    if "touch" in item:  # a batch job re-saving N records (e.g. to trigger a collection notification)
        recs = list(state.records[entity].values())[: int(item["touch"])]
        for rec in recs:
            state.touch(entity, rec)
        return [{"touched": len(recs)}]
    if "create" in item:
        fields = dict(item["create"])
        rng, now = sb.rng, sb.now()
        if entity == "vendors":
            rec = state._make_vendor(rng, now)
            lines = None
        else:
            vendor = None
            if fields.get("vendorId"):
                vendor = state.get("vendors", fields["vendorId"])
            elif fields.get("vendorNumber"):
                vid = state.by_number["vendors"].get(fields["vendorNumber"])
                vendor = state.get("vendors", vid or fields["vendorNumber"])
            vendor = (
                vendor or next(iter(state.records["vendors"].values()), None) or state._make_vendor(rng, now)
            )
            if vendor["id"] not in state.records["vendors"]:
                state._insert("vendors", vendor)
            make = state._make_invoice if entity == "purchaseInvoices" else state._make_order
            rec, lines = make(rng, now, vendor, status="Draft")
            fields.pop("vendorId", None)
            fields.pop("vendorNumber", None)
        state.apply(entity, rec, fields, api=False)
        state._insert(entity, rec, lines)
        state.touch(entity, rec, "created")
        return [state.public(entity, rec)]
    key = item.get("id")
    if key is None and item.get("number") is not None:
        key = state.by_number[entity].get(str(item["number"]))
        if key is None:
            raise BcError(404, "Internal_RecordNotFound", f"No {entity} record with number {item['number']}")
    if key is None:
        raise _bad("give id or number (or create / touch)")
    rec = state.get(entity, str(key))
    if item.get("delete"):
        del state.records[entity][rec["id"]]
        state.by_number[entity].pop(rec["number"], None)
        state.lines.pop(rec["id"], None)
        state.notify(entity, rec["id"], "deleted", state._next_modified())
        return [{"id": rec["id"], "deleted": True}]
    if item.get("action") == "post":
        return [state.public(entity, state.post_invoice(rec["id"]))]
    if state.apply(entity, rec, dict(item.get("set") or {}), api=False):
        state.touch(entity, rec)
    return [state.public(entity, rec)]

"""BC API v2.0 data routes: companies, documents (vendors, purchase invoices and orders) and their lines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.api import (
    COMPANY,
    COMPANY_STATE,
    ROOT,
    company_claims,
    document,
    env_claims,
    env_url,
    not_found,
    parse_key,
)
from bc_jira_sandbox.bc.entities import LINES, BcError
from bc_jira_sandbox.bc.odata import (
    ListQuery,
    _expand,
    _Filter,
    _select,
    _token_encode,
    list_query,
    page_of,
)
from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["business central"])


# -- companies ----------------------------------------------------------------------------------------------
@router.get(ROOT + "/companies", dependencies=[Depends(env_claims)])
def list_companies(request: Request, tenant: str, environment: str, sb: Sandbox = SANDBOX) -> Any:
    sel = _select("companies", request.query_params.get("$select"))
    flt = request.query_params.get("$filter")
    pred = _Filter("companies", flt).pred if flt else None
    with sb.lock:  # every company of the environment (bc.companies), deleted ones gone
        values = [s.company for s in companies.listed(sb) if pred is None or pred(s.company)]
    return {
        "@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#companies",
        "value": [{k: v[k] for k in sel} if sel else dict(v) for v in values],
    }


@router.get(COMPANY, dependencies=[Depends(company_claims)])
def get_company(tenant: str, environment: str, state: BcState = COMPANY_STATE, sb: Sandbox = SANDBOX) -> Any:
    return {
        "@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#companies/$entity",
        **state.company,
    }


# -- single records (declared before the collection route: {entity} would also match "x(...)") --------------
@router.post(COMPANY + "/purchaseInvoices({key})/Microsoft.NAV.post", dependencies=[Depends(company_claims)])
def post_invoice(key: str, state: BcState = COMPANY_STATE, sb: Sandbox = SANDBOX) -> Any:
    with sb.lock:
        state.post_invoice(parse_key(key))
    return Response(status_code=204)


@router.get(COMPANY + "/{entity}({key})/{nav}", dependencies=[Depends(company_claims)])
def get_lines(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    key: str,
    nav: str,
    entity: str = Depends(document),
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    if LINES.get(entity) != nav:
        raise not_found(request)
    with sb.lock:
        doc = state.get(entity, parse_key(key))
        lines = [dict(ln) for ln in state.lines.get(doc["id"], [])]
    sel = _select(nav, request.query_params.get("$select"))
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#companies({company_id})/{entity}({key})/{nav}"
    return {"@odata.context": ctx, "value": [{k: ln[k] for k in sel} if sel else ln for ln in lines]}


@router.get(COMPANY + "/{entity}({key})", dependencies=[Depends(company_claims)])
def get_record(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    key: str,
    entity: str = Depends(document),
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    sel = _select(entity, request.query_params.get("$select"))
    expand = _expand(entity, request.query_params.get("$expand"))
    with sb.lock:
        rec = state.get(entity, parse_key(key))
        body = state.public(entity, rec, sel, expand)
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#companies({company_id})/{entity}/$entity"
    return JSONResponse({"@odata.context": ctx, **body}, headers={"ETag": body["@odata.etag"]})


@router.patch(COMPANY + "/{entity}({key})", dependencies=[Depends(company_claims)])
def patch_record(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    key: str,
    entity: str = Depends(document),
    body: dict[str, Any] = Body(...),
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    if_match = request.headers.get("if-match")
    with sb.lock:
        rec = state.get(entity, parse_key(key))
        _check_if_match(if_match, state.etag(rec["id"]))
        if entity == "purchaseInvoices" and rec["status"] != "Draft":
            raise BcError(
                400,
                "Application_DialogException",
                "The purchase invoice has been posted and can no longer be modified.",
            )
        if state.apply(entity, rec, body, api=True):
            state.touch(entity, rec)
        out = state.public(entity, rec)
    ctx = f"{env_url(sb, tenant, environment)}/$metadata#companies({company_id})/{entity}/$entity"
    return JSONResponse({"@odata.context": ctx, **out}, headers={"ETag": out["@odata.etag"]})


@router.delete(COMPANY + "/{entity}({key})", dependencies=[Depends(company_claims)])
def delete_record(
    request: Request,
    key: str,
    entity: str = Depends(document),
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    """``DELETE`` with a required ``If-Match``; 204 No Content
    (https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/
    dynamics_purchaseinvoice_delete, ``dynamics_vendor_delete``, ``dynamics_purchaseorder_delete``)."""
    if_match = request.headers.get("if-match")
    with sb.lock:
        rec = state.get(entity, parse_key(key))
        _check_if_match(if_match, state.etag(rec["id"]))
        state.delete(entity, rec)
    return Response(status_code=204)


def _check_if_match(if_match: str | None, current: str) -> None:
    """BC's concurrency check (bc-api.md 3.2): missing -> 400 BadRequest_InvalidToken, stale -> 412."""
    if not if_match:
        raise BcError(
            400,
            "BadRequest_InvalidToken",
            "Could not validate the client concurrency token required by the service. Please "
            "provide a valid token in the client request.",
        )
    if if_match != "*" and if_match != current:
        raise BcError(412, "Request_EntityChanged", "Another user has already changed the record.")


# -- collections --------------------------------------------------------------------------------------------
@router.get(COMPANY + "/{entity}", dependencies=[Depends(company_claims)])
def list_records(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    entity: str = Depends(document),
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    query: ListQuery = list_query(request, entity)
    with sb.lock:
        rows = [rec for rec in state.records[entity].values() if query.pred is None or query.pred(rec)]
        page, served, more = page_of(entity, query, rows)
        value = [state.public(entity, rec, query.select, query.expand) for rec in page]
    body: dict[str, Any] = {
        "@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#companies({company_id})/{entity}",
        "value": value,
    }
    if more and page:
        q = request.query_params
        params = [(k, v) for k, v in q.multi_items() if k not in ("$skiptoken", "$skip")]
        params.append(("$skiptoken", _token_encode(entity, query.order, page[-1], served + len(page))))
        body["@odata.nextLink"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?" + urlencode(
            params, quote_via=quote, safe="$'(),:"
        )
    headers = {"Preference-Applied": f"odata.maxpagesize={query.size}"} if query.honoured else {}
    return JSONResponse(body, headers=headers)

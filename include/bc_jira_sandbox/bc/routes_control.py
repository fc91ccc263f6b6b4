"""``/_sandbox/bc`` control routes: change data as a BC user would, handshake options, raw records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.entities import DOCUMENTS, HANDSHAKE_METHODS, LINES, BcError, _bad
from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["sandbox control"])


@router.post("/_sandbox/bc/change")
def change(body: Any = Body(...), sb: Sandbox = SANDBOX) -> Any:
    """One change, a list, or ``{"changes": [...], "company": ...}``; each change may name its ``company``
    (id or name; default: the body's, else company 1)."""
    items = body if isinstance(body, list) else body.get("changes", [body])
    default = None if isinstance(body, list) else body.get("company")
    out = []
    with sb.lock:
        for item in items:
            if not isinstance(item, dict):
                raise _bad("each change must be an object")
            out += control_change(sb, {"company": default, **item} if default else item)
        sb.mark_dirty()
    return {"ok": True, "records": out}


@router.post("/_sandbox/bc/options")
def options(body: Any = Body(default_factory=dict), sb: Sandbox = SANDBOX) -> Any:
    """``{"handshake_method": "POST" | "GET"}``: how the handshake request is sent (create and renew)."""
    with sb.lock:
        if "handshake_method" in body:
            method = str(body["handshake_method"]).upper()
            if method not in HANDSHAKE_METHODS:
                raise _bad(f"handshake_method must be one of {', '.join(HANDSHAKE_METHODS)}")
            sb.bc.handshake_method = method
        return {"handshake_method": getattr(sb.bc, "handshake_method", "POST")}


@router.get("/_sandbox/bc/records/{entity}")
def dump(entity: str, company: str | None = None, sb: Sandbox = SANDBOX) -> Any:
    """The records of one company (``?company=`` id or name, default company 1) as BC holds them."""
    if entity not in DOCUMENTS:
        raise BcError(404, "BadRequest_NotFound", f"unknown entity {entity}")
    with sb.lock:
        state = companies.find(sb, company)
        return {"value": [state.public(entity, r) for r in state.records[entity].values()]}


@router.get("/_sandbox/bc/companies")
def list_companies(sb: Sandbox = SANDBOX) -> Any:
    """Every company, deleted ones too, with what the control below set (tests and the demo)."""
    with sb.lock:
        return {"value": [_company_row(s) for s in sb.bc_companies]}


@router.post("/_sandbox/bc/companies")
def company_control(body: Any = Body(...), sb: Sandbox = SANDBOX) -> Any:
    """``{"company": id or name, "access": false}``: the app's principal loses (``true``: regains) its
    permission in that company, whose API calls then answer 403; ``{"company": ..., "delete": true}``:
    the company is deleted (gone from ``GET companies``, its calls 404)."""
    if not isinstance(body, dict) or not body.get("company"):
        raise _bad("give company (id or name), and access (true/false) or delete: true")
    with sb.lock:
        state = companies.find(sb, str(body["company"]))
        if "access" in body:
            state.revoked = not bool(body["access"])
        if body.get("delete"):
            state.deleted = True
        sb.mark_dirty()
        return _company_row(state)


def _company_row(state: BcState) -> dict[str, Any]:
    return {**state.company, "access": not state.revoked, "deleted": state.deleted, **state.counts()}


def control_change(sb: Sandbox, item: dict[str, Any]) -> list[dict[str, Any]]:
    """One user action: create, set fields or lines, post, delete or touch N records; fires subscriptions.

    Also what the BC pages' buttons call (:mod:`bc_jira_sandbox.pages.bc_web`); the caller holds ``sb.lock``.
    ``item["company"]``: the company (id or name; default company 1).
    """
    state = companies.find(sb, item.get("company"))
    entity = item.get("entity")
    if entity not in DOCUMENTS:
        raise _bad(f"entity must be one of {', '.join(DOCUMENTS)}")
    if "touch" in item:  # a batch job re-saving N records (e.g. to trigger a collection notification)
        recs = list(state.records[entity].values())[: int(item["touch"])]
        for rec in recs:
            state.touch(entity, rec)
        return [{"touched": len(recs)}]
    if "create" in item:
        return [_create(sb, state, entity, dict(item["create"]))]
    rec = state.get(entity, str(_record_key(state, entity, item)))
    if item.get("delete"):
        state.delete(entity, rec)  # a user deleting it in the BC client: the same rules as the API
        return [{"id": rec["id"], "deleted": True}]
    if "line" in item or "add_lines" in item:  # a user editing the document's lines (see bc.lines)
        if entity not in LINES:
            raise _bad(f"{entity} has no lines")
        if "add_lines" in item:
            state.add_lines(entity, rec, int(item["add_lines"]))
        else:
            state.change_line(entity, rec, dict(item["line"]))
        return [state.public(entity, rec)]
    if item.get("action") == "post":
        return [state.public(entity, state.post_invoice(rec["id"]))]
    if state.apply(entity, rec, dict(item.get("set") or {}), api=False):
        state.touch(entity, rec)
    return [state.public(entity, rec)]


def _record_key(state: BcState, entity: str, item: dict[str, Any]) -> Any:
    """The id of the record an action names by ``id`` or ``number``."""
    key = item.get("id")
    if key is None and item.get("number") is not None:
        key = state.by_number[entity].get(str(item["number"]))
        if key is None:
            raise BcError(404, "Internal_RecordNotFound", f"No {entity} record with number {item['number']}")
    if key is None:
        raise _bad("give id or number (or create / touch)")
    return key


def _create(sb: Sandbox, state: BcState, entity: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A record created as a BC user would (a document for the named or the first vendor)."""
    rng, now = state.rng, sb.now()
    if entity == "vendors":
        rec = state._make_vendor(rng, now)
        lines = None
    else:
        vendor = _vendor_for(state, fields) or state._make_vendor(rng, now)
        if vendor["id"] not in state.records["vendors"]:
            state._insert("vendors", vendor)
        make = state._make_invoice if entity == "purchaseInvoices" else state._make_order
        rec, lines = make(rng, now, vendor, status="Draft")
        fields.pop("vendorId", None)
        fields.pop("vendorNumber", None)
    state.apply(entity, rec, fields, api=False)
    state._insert(entity, rec, lines)
    state.touch(entity, rec, "created")
    return state.public(entity, rec)


def _vendor_for(state: BcState, fields: dict[str, Any]) -> dict[str, Any] | None:
    """The vendor named by ``vendorId`` or ``vendorNumber``, else the first vendor (None if there is none)."""
    vendor = None
    if fields.get("vendorId"):
        vendor = state.get("vendors", fields["vendorId"])
    elif fields.get("vendorNumber"):
        vid = state.by_number["vendors"].get(fields["vendorNumber"])
        vendor = state.get("vendors", vid or fields["vendorNumber"])
    return vendor or next(iter(state.records["vendors"].values()), None)

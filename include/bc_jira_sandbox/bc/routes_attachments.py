"""BC API v2.0 attachment routes: ``documentAttachments`` (and the older ``attachments``), their bytes.

Registered before :mod:`bc_jira_sandbox.bc.routes`, whose ``{entity}({key})/{nav}`` would match these paths.
Sources are in :mod:`bc_jira_sandbox.bc.attachments`: ``GET companies({id})/documentAttachments({id})``
(Learn ``api/dynamics_documentattachment_get.md``), the collection with ``$filter=parentId eq …``
(``api/dynamics_attachment_get.md``), the navigation from a purchase invoice (page 30042), and the
``attachmentContent`` stream (``api/dynamics_attachment_update.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.api import COMPANY, COMPANY_STATE, company_claims, env_url, parse_key
from bc_jira_sandbox.bc.attachments import ATTACHMENT_SETS, CONTENT, minimal_pdf, minimal_png
from bc_jira_sandbox.bc.entities import _bad
from bc_jira_sandbox.bc.odata import _Filter, _select
from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["business central"])


class _AttachmentSet(Convertor[str]):
    """A path segment that is one of the attachment entity sets (other paths fall through to the next
    router instead of being answered 404 here)."""

    regex = "|".join(ATTACHMENT_SETS)

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("bc_attachment_set", _AttachmentSet())
SET = "{entity_set:bc_attachment_set}"


def _base(sb: Sandbox, tenant: str, environment: str, company_id: str) -> str:
    return f"{env_url(sb, tenant, environment)}/companies({company_id})"


@router.get(COMPANY + f"/{SET}({{key}})/{CONTENT}", dependencies=[Depends(company_claims)])
def get_content(key: str, entity_set: str, state: BcState = COMPANY_STATE, sb: Sandbox = SANDBOX) -> Response:
    """The file's bytes (an ``Edm.Stream``: no JSON around them)."""
    with sb.lock:
        row = state.attachment(entity_set, parse_key(key))
        data = state.attachment_bytes[row["id"]]
    return Response(data, media_type="application/octet-stream")


@router.get(COMPANY + f"/{SET}({{key}})", dependencies=[Depends(company_claims)])
def get_attachment(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    key: str,
    entity_set: str,
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    sel = _select(entity_set, request.query_params.get("$select"))
    base = _base(sb, tenant, environment, company_id)
    with sb.lock:
        row = state.attachment(entity_set, parse_key(key))
        body = state.attachment_json(entity_set, row, sel, base)
    return {"@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#{entity_set}/$entity", **body}


@router.get(COMPANY + f"/{SET}", dependencies=[Depends(company_claims)])
def list_attachments(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    entity_set: str,
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    q = request.query_params
    sel = _select(entity_set, q.get("$select"))
    pred = _Filter(entity_set, q["$filter"]).pred if q.get("$filter") else None
    base = _base(sb, tenant, environment, company_id)
    with sb.lock:
        state.check_attachment_set(entity_set)
        rows = [r for r in state.attachment_rows.values() if r["_set"] == entity_set]
        value = [state.attachment_json(entity_set, r, sel, base) for r in rows if pred is None or pred(r)]
    return {"@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#{entity_set}", "value": value}


@router.get(COMPANY + f"/purchaseInvoices({{key}})/{SET}", dependencies=[Depends(company_claims)])
def invoice_attachments(
    request: Request,
    tenant: str,
    environment: str,
    company_id: str,
    key: str,
    entity_set: str,
    state: BcState = COMPANY_STATE,
    sb: Sandbox = SANDBOX,
) -> Any:
    sel = _select(entity_set, request.query_params.get("$select"))
    base = _base(sb, tenant, environment, company_id)
    with sb.lock:
        inv = state.get("purchaseInvoices", parse_key(key))
        rows = state.attachments_of(entity_set, inv["id"])
        value = [state.attachment_json(entity_set, r, sel, base) for r in rows]
    return {"@odata.context": f"{env_url(sb, tenant, environment)}/$metadata#{entity_set}", "value": value}


# -- control: attach a file as a BC user would ------------------------------------------------------------
@router.post("/_sandbox/bc/attachments")
def control_attach(body: Any = Body(...), sb: Sandbox = SANDBOX) -> Any:
    """``{"invoice": id or number, "fileName": "x.pdf", "kind": "pdf" | "png", "size": bytes,
    "incoming": false}``: attach a generated real file (a PDF padded to ``size``, or a small PNG); with
    ``"document_attachments_api": false`` alone, the company serves only the older ``attachments``;
    ``"company"``: id or name (default company 1)."""
    if not isinstance(body, dict):
        raise _bad("body must be an object")
    with sb.lock:
        state = companies.find(sb, body.get("company"))
        if "document_attachments_api" in body:
            state.document_attachments_api = bool(body["document_attachments_api"])
            return {"document_attachments_api": state.document_attachments_api}
        ident = str(body.get("invoice") or "")
        inv_id = state.by_number["purchaseInvoices"].get(ident, ident)
        inv = state.get("purchaseInvoices", inv_id)
        kind = body.get("kind", "pdf")
        name = str(body.get("fileName") or f"{inv['number']}.{kind}")
        size = int(body.get("size") or 0)
        if kind == "png":
            data = minimal_png(16, 16, (30, 120, 200))
        elif kind == "pdf":
            data = minimal_pdf(f"Invoice {inv['number']}", size)
        else:
            data = (b"%s\n" % name.encode()) * max(1, size // (len(name) + 1))
        row = state.add_attachment(inv, name, data, sb.now(), incoming=bool(body.get("incoming")))
        sb.mark_dirty()
    return {k: v for k, v in row.items() if not k.startswith("_")}


@router.get("/_sandbox/bc/attachments/{invoice_id}")
def control_list(invoice_id: str, company: str | None = None, sb: Sandbox = SANDBOX) -> Any:
    """Every attachment of an invoice (both entity sets), as BC holds it (tests and the demo);
    ``?company=`` id or name (default company 1)."""
    with sb.lock:
        held = companies.find(sb, company).attachment_rows.values()
        rows = [r for r in held if r["parentId"] == invoice_id.lower()]
        return [{k: v for k, v in r.items() if not k.startswith("_")} | {"set": r["_set"]} for r in rows]

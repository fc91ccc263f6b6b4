"""The sandbox's BC web client: list pages, record cards, and buttons a BC user presses.

URLs as the real web client takes them (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/
developer/devenv-web-client-urls): ``?page=<ID>`` opens a page by its object ID and
``&filter='<field>' IS '<value>'`` filters it, so the connector's "Open in Business Central" link
(``bc_web_client_url`` + ``?page=51&filter='No.' IS '1001'``) lands on that record's card. Page IDs are
BC's: 9308 Purchase Invoices, 146 Posted Purchase Invoices, 27 Vendors, 9307 Purchase Orders, and the
cards 51 Purchase Invoice, 138 Posted Purchase Invoice, 26 Vendor Card, 50 Purchase Order. The buttons
change data through :func:`bc_jira_sandbox.bc.routes_control.control_change`, the function behind
``POST /_sandbox/bc/change``: the same records and the same change notifications.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.entities import SPACE, BcError
from bc_jira_sandbox.bc.routes_control import control_change
from bc_jira_sandbox.deps import SANDBOX
from bc_jira_sandbox.pages import BC_WEB, SITE
from bc_jira_sandbox.pages.forms import FormError, read_form
from bc_jira_sandbox.pages.html import button, esc, facts, link, page, table

if TYPE_CHECKING:
    from collections.abc import Callable

    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["sandbox pages"], include_in_schema=False)

ROWS_PER_LIST = 500
BLOCK_CHOICES = {"Payment": "Block payments", "All": "Block all"}
# filter='<field>' IS '<value>' (a quote inside the value doubled); only 'No.' is offered here.
_FILTER = re.compile(r"^\s*'(?P<field>[^']+)'\s+IS\s+'(?P<value>(?:[^']|'')*)'\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BcPage:
    entity: str
    title: str
    card: bool
    keep: Callable[[dict[str, Any]], bool] | None = None  # which records a list shows


def _draft(rec: dict[str, Any]) -> bool:
    return rec.get("status") == "Draft"


PAGES: dict[int, BcPage] = {
    9308: BcPage("purchaseInvoices", "Purchase Invoices", False, _draft),
    146: BcPage("purchaseInvoices", "Posted Purchase Invoices", False, lambda r: not _draft(r)),
    27: BcPage("vendors", "Vendors", False),
    9307: BcPage("purchaseOrders", "Purchase Orders", False),
    51: BcPage("purchaseInvoices", "Purchase Invoice", True),
    138: BcPage("purchaseInvoices", "Posted Purchase Invoice", True),
    26: BcPage("vendors", "Vendor Card", True),
    50: BcPage("purchaseOrders", "Purchase Order", True),
}
LIST_OF = {"purchaseInvoices": 9308, "vendors": 27, "purchaseOrders": 9307}
NAV = [
    ("Purchase Invoices", 9308),
    ("Posted Purchase Invoices", 146),
    ("Vendors", 27),
    ("Purchase Orders", 9307),
]


def page_url(page_id: int, number: str | None = None, company: str = "") -> str:
    """The web client URL of a page, filtered to one No. (as the connector's link is); ``company``: the
    company's name, as the real client's ``?company=CRONUS%20US&page=22`` (Learn
    ``dev-itpro/developer/devenv-web-client-urls.md``); empty: company 1."""
    query: dict[str, str] = {"company": company} if company else {}
    query["page"] = str(page_id)
    if number is not None:
        query["filter"] = "'No.' IS '" + number.replace("'", "''") + "'"
    return f"{BC_WEB}?{urlencode(query)}"


def card_url(entity: str, rec: dict[str, Any], company: str = "") -> str:
    if entity == "vendors":
        return page_url(26, rec["number"], company)
    if entity == "purchaseOrders":
        return page_url(50, rec["number"], company)
    return page_url(51 if _draft(rec) else 138, rec["number"], company)


def decode(value: object) -> str:
    """An enum value as BC shows it (``In_x0020_Review`` is "In Review", the blank ``_x0020_`` is "")."""
    return str(value or "").replace(SPACE, " ").strip()


def money(value: object) -> str:
    return f"{value:,.2f}" if isinstance(value, (int, float)) else esc(value)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    nav = [("Home", BC_WEB), *[(t, page_url(p)) for t, p in NAV], ("Jira board", f"{SITE}/")]
    return page(title, body, nav=nav, brand="Business Central (sandbox)", css="bc", status=status)


def _error(title: str, message: str, status: int) -> HTMLResponse:
    return _page(title, f"<p class=err>{esc(message)}</p><p>{link(BC_WEB, 'Home')}</p>", status)


# -- lists ---------------------------------------------------------------------------------------------------
def _vendor_actions(rec: dict[str, Any], company: str = "") -> str:
    if decode(rec.get("blocked")):
        return ""
    fields = {"id": rec["id"], **({"company": company} if company else {})}
    return " ".join(
        button(f"{BC_WEB}/vendors/block", label, {**fields, "blocked": value}, css="quiet")
        for value, label in BLOCK_CHOICES.items()
    )


def _row(entity: str, rec: dict[str, Any], company: str = "") -> list[str]:
    num = link(card_url(entity, rec, company), rec["number"])
    if entity == "vendors":
        return [
            num,
            esc(rec.get("displayName")),
            esc(rec.get("city")),
            esc(rec.get("country")),
            esc(decode(rec.get("blocked")) or "No"),
            money(rec.get("balance")),
            _vendor_actions(rec, company),
        ]
    dated = rec.get("invoiceDate") if entity == "purchaseInvoices" else rec.get("orderDate")
    return [
        num,
        esc(rec.get("vendorNumber")),
        esc(rec.get("vendorName")),
        esc(dated),
        money(rec.get("totalAmountIncludingTax")),
        esc(rec.get("currencyCode") or "LCY"),
        esc(decode(rec.get("status"))),
    ]


def _headers(entity: str) -> tuple[list[str], tuple[int, ...]]:
    if entity == "vendors":
        return ["No.", "Name", "City", "Country", "Blocked", "Balance (LCY)", ""], (5,)
    dated = "Invoice Date" if entity == "purchaseInvoices" else "Order Date"
    return ["No.", "Vendor No.", "Vendor Name", dated, "Amount Incl. VAT", "Currency", "Status"], (4,)


def render_list(sb: Sandbox, page_id: int, number: str | None, state: BcState | None = None) -> HTMLResponse:
    spec = PAGES[page_id]
    state = state or sb.bc
    company = _company_arg(sb, state)
    recs = [
        r
        for r in state.records[spec.entity].values()
        if (spec.keep is None or spec.keep(r)) and (number is None or r["number"] == number)
    ]
    recs.sort(key=lambda r: str(r.get("lastModifiedDateTime", "")), reverse=True)
    headers, numeric = _headers(spec.entity)
    rows = [_row(spec.entity, r, company) for r in recs[:ROWS_PER_LIST]]
    note = f"{len(recs)} record(s), last modified first"
    if len(recs) > ROWS_PER_LIST:
        note += f"; the first {ROWS_PER_LIST} shown"
    actions = ""
    if page_id == 9308:
        new = f"{BC_WEB}/purchase-invoices/new" + (f"?{urlencode({'company': company})}" if company else "")
        actions = f"<p>{button(new, 'New draft invoice')}</p>"
    body = f'{actions}<p class="note">{esc(note)}</p>{table(headers, rows, numeric=numeric)}'
    return _page(f"{spec.title} - {state.company['name']}" if company else spec.title, body)


# -- cards ---------------------------------------------------------------------------------------------------
_CARD_FIELDS = {
    "vendors": [
        ("No.", "number"),
        ("Name", "displayName"),
        ("Address", "addressLine1"),
        ("City", "city"),
        ("Post Code", "postalCode"),
        ("Country/Region", "country"),
        ("Phone No.", "phoneNumber"),
        ("Email", "email"),
        ("VAT Registration No.", "taxRegistrationNumber"),
        ("Currency", "currencyCode"),
        ("Blocked", "blocked"),
        ("Balance (LCY)", "balance"),
        ("Last Modified", "lastModifiedDateTime"),
    ],
    "purchaseInvoices": [
        ("No.", "number"),
        ("Vendor No.", "vendorNumber"),
        ("Vendor Name", "vendorName"),
        ("Vendor Invoice No.", "vendorInvoiceNumber"),
        ("Invoice Date", "invoiceDate"),
        ("Due Date", "dueDate"),
        ("Posting Date", "postingDate"),
        ("Purchaser", "purchaser"),
        ("Currency", "currencyCode"),
        ("Amount Excl. VAT", "totalAmountExcludingTax"),
        ("Amount Incl. VAT", "totalAmountIncludingTax"),
        ("Status", "status"),
        ("Last Modified", "lastModifiedDateTime"),
    ],
    "purchaseOrders": [
        ("No.", "number"),
        ("Vendor No.", "vendorNumber"),
        ("Vendor Name", "vendorName"),
        ("Order Date", "orderDate"),
        ("Requested Receipt Date", "requestedReceiptDate"),
        ("Purchaser", "purchaser"),
        ("Currency", "currencyCode"),
        ("Amount Incl. VAT", "totalAmountIncludingTax"),
        ("Status", "status"),
        ("Last Modified", "lastModifiedDateTime"),
    ],
}


def _lines_html(state: BcState, rec: dict[str, Any]) -> str:
    lines = state.lines.get(rec["id"]) or []
    if not lines:
        return ""
    rows = [
        [
            esc(ln.get("lineType")),
            esc(ln.get("lineObjectNumber")),
            esc(ln.get("description")),
            esc(ln.get("quantity")),
            money(ln.get("directUnitCost")),
            money(ln.get("amountIncludingTax")),
        ]
        for ln in lines
    ]
    head = ["Type", "No.", "Description", "Quantity", "Direct Unit Cost", "Amount Incl. VAT"]
    return "<h2>Lines</h2>" + table(head, rows, numeric=(3, 4, 5))


def render_card(sb: Sandbox, page_id: int, number: str, state: BcState | None = None) -> HTMLResponse:
    spec = PAGES[page_id]
    state = state or sb.bc
    rid = state.by_number[spec.entity].get(number)
    rec = state.records[spec.entity].get(rid or "")
    if rec is None:
        hint = " (posting gives an invoice a new No.: see Posted Purchase Invoices)" if page_id == 51 else ""
        return _error(spec.title, f"There is no {spec.title} with No. {number}{hint}.", 404)
    shown = [(label, decode(rec.get(key))) for label, key in _CARD_FIELDS[spec.entity]]
    shown = [(label, "No" if label == "Blocked" and not v else v) for label, v in shown]
    actions = _vendor_actions(rec, _company_arg(sb, state)) if spec.entity == "vendors" else ""
    body = f'<p>{actions}</p>{facts(shown)}{_lines_html(state, rec)}<p class="note">id {esc(rec["id"])}</p>'
    return _page(f"{spec.title} {rec['number']}", body)


def _home() -> HTMLResponse:
    items = "".join(f"<li>{link(page_url(p), t)}</li>" for t, p in NAV)
    body = (
        f"<ul>{items}</ul><p>{button(f'{BC_WEB}/purchase-invoices/new', 'New draft invoice')}</p>"
        '<p class="note">Scripts: POST /_sandbox/bc/change does the same as these buttons.</p>'
    )
    return _page("CRONUS (sandbox) - Purchasing", body)


# -- routes --------------------------------------------------------------------------------------------------
def _company_arg(sb: Sandbox, state: BcState) -> str:
    """The ``company=`` of links: the company's name, or empty for company 1 (URLs as before)."""
    return "" if state is sb.bc else state.company["name"]


@router.get(BC_WEB)
def web_client(
    page_arg: str = Query("", alias="page"),
    filter_arg: str = Query("", alias="filter"),
    company: str = Query(""),
    sb: Sandbox = SANDBOX,
) -> Response:
    """``?page=ID`` (a list, or a card with ``filter='No.' IS 'X'``); no page: the home page;
    ``company=`` a company's name (or id; default company 1)."""
    try:
        state = companies.find(sb, company or None)
    except BcError as exc:
        return _error("Company not found", exc.message, exc.status)
    if not page_arg:
        return _home()
    if not page_arg.isdigit() or int(page_arg) not in PAGES:
        return _error("Page not found", f"Page {page_arg} is not in the sandbox's web client.", 404)
    number = None
    if filter_arg:
        m = _FILTER.match(filter_arg)
        if m is None or m["field"] != "No.":
            return _error("Bad filter", "filter must be 'No.' IS '<number>'", 400)
        number = m["value"].replace("''", "'")
    page_id = int(page_arg)
    with sb.lock:
        if PAGES[page_id].card:
            if number is None:
                return _error(PAGES[page_id].title, "a card needs filter='No.' IS '<number>'", 400)
            return render_card(sb, page_id, number, state)
        return render_list(sb, page_id, number, state)


@router.post(f"{BC_WEB}/purchase-invoices/new")
def new_invoice(company: str = Query(""), sb: Sandbox = SANDBOX) -> Response:
    """A user enters a new draft invoice (for the first vendor), as ``/_sandbox/bc/change`` create does."""
    with sb.lock:
        try:
            rec = control_change(sb, {"entity": "purchaseInvoices", "create": {}, "company": company})[0]
        except BcError as exc:
            return _error("Invoice not created", exc.message, exc.status)
        sb.mark_dirty()
    return RedirectResponse(page_url(51, rec["number"], company), status_code=303)


@router.post(f"{BC_WEB}/vendors/block")
async def block_vendor(request: Request, sb: Sandbox = SANDBOX) -> Response:
    """A user blocks a vendor: ``id``, ``blocked`` (Payment or All); as ``/_sandbox/bc/change`` set does."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return _error("Bad request", str(exc), 400)
    if form.get("blocked") not in BLOCK_CHOICES:
        return _error("Bad request", f"blocked must be one of {', '.join(BLOCK_CHOICES)}", 400)
    with sb.lock:
        try:
            rec = control_change(
                sb,
                {
                    "entity": "vendors",
                    "id": form.get("id", ""),
                    "set": {"blocked": form["blocked"]},
                    "company": form.get("company", ""),
                },
            )[0]
        except BcError as exc:
            return _error("Vendor not changed", exc.message, exc.status)
        sb.mark_dirty()
    return RedirectResponse(page_url(26, rec["number"], form.get("company", "")), status_code=303)

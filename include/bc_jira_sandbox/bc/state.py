"""Business Central API v2.0 emulation: companies, vendors, purchase invoices/orders (+ lines), subscriptions.

Fidelity notes (sources in shared/reference/bc-api.md):
- Field names, JSON types and enum member names come from ``bc-api-v2-entities.json`` (vendored copy of
  shared/specs); enums use the EDM encoding (blank -> ``_x0020_``, ``In_x0020_Review``).
- OData: ``$filter`` (eq/ne/gt/ge/lt/le, and/or/not, parentheses; DateTimeOffset literals unquoted, a quoted
  datetime is rejected like ODataLib does), ``$select``, ``$orderby``, ``$top``, ``$skip``, ``$expand``,
  server paging (default and maximum 20,000 per page, ``Prefer: odata.maxpagesize``, key-based
  ``$skiptoken`` in ``@odata.nextLink``, so a record modified mid-scan moves instead of shifting pages).
- ``@odata.etag`` per record; PATCH needs ``If-Match`` (missing -> 400 BadRequest_InvalidToken, stale -> 412
  Request_EntityChanged). ``Microsoft.NAV.post`` posts drafts only, keeps the id, assigns a posted number,
  status Open; BC's dialog errors for non-drafts, blocked vendors, missing vendor invoice no., no lines.
- Subscriptions: handshake on create and renew (POST, or GET with ``/_sandbox/bc/options``: Microsoft does not
  document the method), renewal only with the documented body (the subscription's own ``notificationUrl`` and
  ``resource``, optional ``clientState``), 3-day expiry, notifications batched per notificationUrl after
  ``notify_delay_s``, ``updated`` merged per record, null updates dropped, ``collection`` over 1,000 changes,
  retries on no answer/408/429/5xx with BC's per-attempt delays (scaled by notify_delay_s / 30 s),
  deletion after 5 failed attempts or on any other answer (e.g. a plain 4xx).
- [inference] codes with no source: unknown environment -> 404 ``NoEnvironment``; unsupported webhook resource
  and failed handshake -> 400 ``BadRequest``.
"""

from __future__ import annotations

import base64
import bisect
import functools
import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox import entra

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

log = logging.getLogger(__name__)

SPEC: dict[str, Any] = json.loads(
    Path(__file__).parent.parent.joinpath("bc-api-v2-entities.json").read_text()
)
PROPS: dict[str, list[dict[str, Any]]] = {k: v["properties"] for k, v in SPEC["entities"].items()}
FIELDS: dict[str, dict[str, dict[str, Any]]] = {k: {p["name"]: p for p in v} for k, v in PROPS.items()}
ENTITY_TYPE: dict[str, str] = {k: v["entity_type"] for k, v in SPEC["entities"].items()}
ENUMS: dict[str, list[str]] = {k: [m["json"] for m in v] for k, v in SPEC["enums"].items()}
READ_ONLY: dict[str, set[str]] = {
    k: {p["name"] for p in v if p.get("read_only_in_al_page") or p["name"] == "id"} for k, v in PROPS.items()
}

DOCUMENTS = ("vendors", "purchaseInvoices", "purchaseOrders")
LINES = {"purchaseInvoices": "purchaseInvoiceLines", "purchaseOrders": "purchaseOrderLines"}
WEBHOOK_ENTITIES = {"vendors", "purchaseInvoices"}  # purchaseOrders is not in the documented list
SPACE = "_x0020_"
NULL_GUID = "00000000-0000-0000-0000-000000000000"
BLANK_DATE = "0001-01-01"
MAX_PAGE = 20000
SUBSCRIPTION_TTL = timedelta(days=3)
MAX_SUBSCRIPTIONS = 200
COLLECTION_THRESHOLD = 1000
MAX_ATTEMPTS = 5
HANDSHAKE_TIMEOUT_S = 5.0
# Learn: "BC issues a request to the notificationUrl, passing a validationToken parameter on the query string"
# (dev-itpro/api-reference/v2.0/dynamics-subscriptions.md); the HTTP method is not stated (review #6).
HANDSHAKE_METHODS = ("POST", "GET")
RETRY_DELAYS_S = {0: 60, 1: 60, 2: 60, 3: 600, 4: 6000}  # BC GetDelayTimeForAttempt; 5+ -> 60000 s
LOCAL_CURRENCY = "DKK"

_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class BcError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            status_code=self.status,
            headers=self.headers,
            content={"error": {"code": self.code, "message": self.message}},
        )


def _bc(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn BcError raised by a handler into BC's error body."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BcError as exc:
            return exc.response()

    return wrapper


def ts(dt: datetime) -> str:
    """Edm.DateTimeOffset as BC writes it: UTC, up to millisecond precision, trailing zeros dropped, ``Z``."""
    dt = dt.astimezone(UTC)
    ms = dt.microsecond // 1000
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        text += f".{ms:03d}".rstrip("0")
    return text + "Z"


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def encode_enum(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return SPACE if value in ("", " ") else value.replace(" ", SPACE)


def _etag(record_id: str, version: int) -> str:
    digits = str(int(hashlib.sha256(f"{record_id}:{version}".encode()).hexdigest(), 16))[:20]
    inner = f"'{len(digits)};{digits};00;'"
    return f'W/"{base64.b64encode(inner.encode()).decode()}"'


def _blank(entity: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in PROPS[entity]:
        fmt = p.get("format")
        if p.get("enum"):
            out[p["name"]] = ENUMS[p["enum"]][0]
        elif fmt == "uuid":
            out[p["name"]] = NULL_GUID
        elif fmt == "date":
            out[p["name"]] = BLANK_DATE
        elif fmt == "date-time":
            out[p["name"]] = "0001-01-01T00:00:00Z"
        elif p["json_type"] == "number":
            out[p["name"]] = 0
        elif p["json_type"] == "integer":
            out[p["name"]] = 0
        elif p["json_type"] == "boolean":
            out[p["name"]] = False
        else:
            out[p["name"]] = ""
    return out


_BLANKS = {k: _blank(k) for k in PROPS}

# -- seed vocabulary ----------------------------------------------------------------------------------------
_NAMES_A = [
    "Fabrikam",
    "Contoso",
    "Litware",
    "Northwind",
    "Adatum",
    "Tailspin",
    "Wide World",
    "Proseware",
    "Fourth Coffee",
    "Alpine Ski",
    "Coho Winery",
    "Lucerne",
    "Trey Research",
    "Woodgrove",
    "Blue Yonder",
    "Humongous",
    "Southridge",
    "Wingtip",
    "Nordlys",
    "Havbryg",
    "Kvadrat",
    "Elmhurst",
    "Brightwater",
    "Redwood",
    "Silverline",
    "Oakridge",
    "Polaris",
    "Granite",
    "Meridian",
    "Vestas Parts",
]
_NAMES_B = [
    "Inc.",
    "Ltd.",
    "GmbH",
    "A/S",
    "ApS",
    "B.V.",
    "Supplies",
    "Logistics",
    "Industries",
    "Trading",
    "Components",
    "Office Solutions",
    "Facilities",
    "IT Services",
]
_PLACES = {  # country -> (currency, [(city, state, postcode)], tax %)
    "DK": ("", [("København", "", "1560"), ("Aarhus", "", "8000"), ("Odense", "", "5000")], 25.0),
    "DE": ("EUR", [("Berlin", "", "10115"), ("München", "BY", "80331"), ("Hamburg", "", "20095")], 0.0),
    "NL": ("EUR", [("Amsterdam", "", "1012 AB"), ("Rotterdam", "", "3011 AA")], 0.0),
    "US": ("USD", [("Atlanta", "GA", "31772"), ("Chicago", "IL", "61236"), ("Seattle", "WA", "98101")], 0.0),
    "GB": ("GBP", [("London", "", "WC1 3DG"), ("Manchester", "", "M1 1AE"), ("Bristol", "", "BS1 4DJ")], 0.0),
}
_COUNTRY_WEIGHTS = [("DK", 40), ("DE", 15), ("NL", 10), ("US", 20), ("GB", 15)]
_STREETS = [
    "Main Street",
    "Industrivej",
    "Hauptstraße",
    "Market Road",
    "Havnegade",
    "Keizersgracht",
    "Peachtree Road",
    "Station Road",
    "Nørregade",
    "Lindenallee",
]
_ITEMS = [
    ("Item", "1896-S", "ATHENS Desk", "PCS"),
    ("Item", "1900-S", "PARIS Guest Chair, black", "PCS"),
    ("Item", "1906-S", "ATHENS Mobile Pedestal", "PCS"),
    ("Item", "1908-S", "LONDON Swivel Chair, blue", "PCS"),
    ("Item", "1920-S", "ANTWERP Conference Table", "PCS"),
    ("Item", "1953-W", "Paper A4, 80 g", "BOX"),
    ("Account", "6130", "Office supplies", ""),
    ("Account", "6310", "Software subscriptions", ""),
    ("Account", "6410", "Consultancy services", ""),
    ("Account", "6210", "Freight", ""),
    ("Account", "6510", "Repairs and maintenance", ""),
]
_INVOICE_STATUSES = ["Draft", "Open", "Draft", "Paid", "Open", "Draft", "Open", "Draft", "Paid"]
_ORDER_STATUSES = ["In_x0020_Review", "Draft", "In_x0020_Review", "Open", "Draft"]
_PURCHASERS = ["JO", "MH", "RB", "AH", ""]
_DEPTS = ["ADM", "PROD", "SALES", ""]
_GROUPS = ["LARGE", "MEDIUM", "SMALL", ""]


def _guid(rng: Any) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _currency_id(code: str) -> str:
    if not code:
        return NULL_GUID
    return str(uuid.UUID(hashlib.md5(f"currency:{code}".encode()).hexdigest()))  # noqa: S324 - an id, not crypto


def _weighted(rng: Any, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


class BcState:
    """All BC data of the sandbox (picklable: no locks or callables; the ``sb`` back-reference is skipped)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        now = self.sb.now()
        self.handshake_method = "POST"
        self.company: dict[str, Any] = {
            "id": self.sb.creds["company_id"],
            "systemVersion": "26.0.30643.32481",
            "timestamp": 27051,
            "name": "CRONUS DK",
            "displayName": "CRONUS Danmark A/S",
            "businessProfileId": "",
            "systemCreatedAt": ts(now - timedelta(days=400)),
            "systemCreatedBy": NULL_GUID,
            "systemModifiedAt": ts(now - timedelta(days=30)),
            "systemModifiedBy": NULL_GUID,
        }
        self.records: dict[str, dict[str, dict[str, Any]]] = {e: {} for e in DOCUMENTS}
        self.lines: dict[str, list[dict[str, Any]]] = {}  # document id -> lines
        self.versions: dict[str, int] = {}
        self.by_number: dict[str, dict[str, str]] = {e: {} for e in DOCUMENTS}
        self.counters = {"vendor": 10000, "draft": 1000, "posted": 108000, "order": 106000, "vinv": 5000}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, dict[str, Any]] = {}  # notificationUrl -> {"subs": {id: [items]}, ...}
        self.last_modified = now - timedelta(days=60)

    def counts(self) -> dict[str, int]:
        return {
            "vendors": len(self.records["vendors"]),
            "invoices": len(self.records["purchaseInvoices"]),
            "orders": len(self.records["purchaseOrders"]),
            "subscriptions": len(self.subscriptions),
        }

    def seed(self, vendors: int = 0, invoices: int = 0, orders: int = 0, draft_invoices: int = 0) -> None:
        """Add records; ``draft_invoices`` adds invoices that all await review (benchmarks)."""
        rng = self.sb.rng
        now = self.sb.now()
        if (invoices or orders or draft_invoices) and not self.records["vendors"] and vendors == 0:
            vendors = 5
        for _ in range(vendors):
            self._insert("vendors", self._make_vendor(rng, now))
        vendor_list = list(self.records["vendors"].values())
        for _ in range(invoices):
            inv, lines = self._make_invoice(rng, now, rng.choice(vendor_list))
            self._insert("purchaseInvoices", inv, lines)
        for _ in range(draft_invoices):
            inv, lines = self._make_invoice(rng, now, rng.choice(vendor_list), status="Draft")
            self._insert("purchaseInvoices", inv, lines)
        for _ in range(orders):
            po, lines = self._make_order(rng, now, rng.choice(vendor_list))
            self._insert("purchaseOrders", po, lines)

    # -- record builders ------------------------------------------------------------------------------------
    def _past(self, rng: Any, now: datetime, max_days: float = 30.0) -> str:
        return ts(now - timedelta(seconds=rng.uniform(120.0, max_days * 86400)))

    def _make_vendor(self, rng: Any, now: datetime, **over: Any) -> dict[str, Any]:
        self.counters["vendor"] += 10
        country = _weighted(rng, _COUNTRY_WEIGHTS)
        currency, cities, _tax = _PLACES[country]
        city, state, post = rng.choice(cities)
        name = f"{rng.choice(_NAMES_A)} {rng.choice(_NAMES_B)}"
        slug = re.sub(r"[^a-z]", "", name.lower())[:20] or "vendor"
        n = len(self.records["vendors"])  # every 9th vendor blocked for payments, every 13th for all
        blocked = "Payment" if n % 9 == 4 else "All" if n % 13 == 6 else SPACE
        rec = dict(_BLANKS["vendors"])
        rec.update(
            {
                "id": _guid(rng),
                "number": f"V{self.counters['vendor']}",
                "displayName": name,
                "addressLine1": f"{rng.randint(1, 250)} {rng.choice(_STREETS)}",
                "city": city,
                "state": state,
                "country": country,
                "postalCode": post,
                "phoneNumber": f"+{rng.randint(10, 99)} {rng.randint(1000000, 9999999)}",
                "email": f"ap@{slug}.example.com",
                "website": f"www.{slug}.example.com",
                "taxRegistrationNumber": f"{country}{rng.randint(10000000, 99999999)}",
                "currencyId": _currency_id(currency),
                "currencyCode": currency,
                "irs1099Code": "",
                "paymentTermsId": _guid(rng),
                "paymentMethodId": _guid(rng),
                "taxLiable": country == "US",
                "blocked": blocked,
                "balance": round(rng.uniform(0, 80000), 2),
                "lastModifiedDateTime": self._past(rng, now, 45),
            }
        )
        rec.update(over)
        return rec

    def _lines(
        self, rng: Any, entity: str, doc_id: str, total: float, tax_pct: float, n: int
    ) -> list[dict[str, Any]]:
        lines = []
        shares = [rng.uniform(0.2, 1.0) for _ in range(n)]
        scale = total / sum(shares)
        for i, share in enumerate(shares, start=1):
            kind, obj, desc, uom = rng.choice(_ITEMS)
            qty = rng.randint(1, 40) if kind == "Item" else 1
            amount = round(share * scale, 2)
            unit = round(amount / qty, 2)
            amount = round(unit * qty, 2)
            tax = round(amount * tax_pct / 100, 2)
            line = dict(_BLANKS[LINES[entity]])
            line.update(
                {
                    "id": _guid(rng),
                    "documentId": doc_id,
                    "sequence": i * 10000,
                    "lineType": kind,
                    "lineObjectNumber": obj,
                    "description": desc,
                    "unitOfMeasureCode": uom,
                    "quantity": qty,
                    "discountAmount": 0,
                    "discountPercent": 0,
                    "amountExcludingTax": amount,
                    "taxCode": "",
                    "taxPercent": tax_pct,
                    "totalTaxAmount": tax,
                    "amountIncludingTax": round(amount + tax, 2),
                    "netAmount": amount,
                    "netTaxAmount": tax,
                    "netAmountIncludingTax": round(amount + tax, 2),
                    "itemId": _guid(rng) if kind == "Item" else NULL_GUID,
                    "accountId": _guid(rng) if kind == "Account" else NULL_GUID,
                }
            )
            if entity == "purchaseInvoices":
                line["unitCost"] = unit
            else:
                line.update({"directUnitCost": unit, "receiveQuantity": qty, "invoiceQuantity": qty})
            lines.append(line)
        return lines

    def _party(self, vendor: dict[str, Any]) -> dict[str, Any]:
        return {
            "vendorId": vendor["id"],
            "vendorNumber": vendor["number"],
            "vendorName": vendor["displayName"],
            "payToName": vendor["displayName"],
            "payToVendorId": vendor["id"],
            "payToVendorNumber": vendor["number"],
            "buyFromAddressLine1": vendor["addressLine1"],
            "buyFromCity": vendor["city"],
            "buyFromCountry": vendor["country"],
            "buyFromState": vendor["state"],
            "buyFromPostCode": vendor["postalCode"],
            "payToAddressLine1": vendor["addressLine1"],
            "payToCity": vendor["city"],
            "payToCountry": vendor["country"],
            "payToState": vendor["state"],
            "payToPostCode": vendor["postalCode"],
            "shipToName": self.company["displayName"],
            "shipToContact": "Receiving",
            "shipToAddressLine1": "Kongens Nytorv 1",
            "shipToCity": "København",
            "shipToCountry": "DK",
            "shipToPostCode": "1050",
            "currencyId": vendor["currencyId"],
            "currencyCode": vendor["currencyCode"],
        }

    def _totals(self, doc: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        excl = round(sum(ln["amountExcludingTax"] for ln in lines), 2)
        tax = round(sum(ln["totalTaxAmount"] for ln in lines), 2)
        doc.update(
            {
                "totalAmountExcludingTax": excl,
                "totalTaxAmount": tax,
                "totalAmountIncludingTax": round(excl + tax, 2),
            }
        )

    def _make_invoice(
        self, rng: Any, now: datetime, vendor: dict[str, Any], status: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        status = status or _INVOICE_STATUSES[len(self.records["purchaseInvoices"]) % len(_INVOICE_STATUSES)]
        inv = dict(_BLANKS["purchaseInvoices"])
        inv_id = _guid(rng)
        key = "draft" if status == "Draft" else "posted"
        self.counters[key] += 1
        self.counters["vinv"] += rng.randint(1, 7)
        inv_date = (now - timedelta(days=rng.randint(0, 40))).date()
        due = inv_date + timedelta(days=rng.choice([14, 30, 30, 45, 60]))
        total = round(10 ** rng.uniform(1.7, 5.4), 2)
        tax_pct = _PLACES.get(vendor["country"], ("", [], 0.0))[2]
        inv.update(self._party(vendor))
        inv.update(
            {
                "id": inv_id,
                "number": str(self.counters[key]),
                "postingDate": inv_date.isoformat(),
                "invoiceDate": inv_date.isoformat(),
                "dueDate": due.isoformat(),
                "vendorInvoiceNumber": f"INV-{self.counters['vinv']}",
                "payToContact": rng.choice(["Accounts Receivable", "Billing", "Finance Dept.", ""]),
                "shortcutDimension1Code": rng.choice(_DEPTS),
                "shortcutDimension2Code": rng.choice(_GROUPS),
                "purchaser": rng.choice(_PURCHASERS),
                "pricesIncludeTax": False,
                "discountAmount": 0,
                "discountAppliedBeforeTax": True,
                "status": status,
                "lastModifiedDateTime": self._past(rng, now, 30),
            }
        )
        lines = self._lines(rng, "purchaseInvoices", inv_id, total, tax_pct, rng.randint(1, 4))
        self._totals(inv, lines)
        return inv, lines

    def _make_order(
        self, rng: Any, now: datetime, vendor: dict[str, Any], status: str | None = None
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        status = status or _ORDER_STATUSES[len(self.records["purchaseOrders"]) % len(_ORDER_STATUSES)]
        po = dict(_BLANKS["purchaseOrders"])
        po_id = _guid(rng)
        self.counters["order"] += 1
        order_date = (now - timedelta(days=rng.randint(0, 20))).date()
        tax_pct = _PLACES.get(vendor["country"], ("", [], 0.0))[2]
        po.update(self._party(vendor))
        po.update(
            {
                "id": po_id,
                "number": str(self.counters["order"]),
                "orderDate": order_date.isoformat(),
                "postingDate": order_date.isoformat(),
                "requestedReceiptDate": (order_date + timedelta(days=rng.randint(3, 30))).isoformat(),
                "shortcutDimension1Code": rng.choice(_DEPTS),
                "shortcutDimension2Code": rng.choice(_GROUPS),
                "paymentTermsId": vendor["paymentTermsId"],
                "shipmentMethodId": _guid(rng),
                "purchaser": rng.choice(_PURCHASERS),
                "discountAppliedBeforeTax": True,
                "fullyReceived": False,
                "status": status,
                "lastModifiedDateTime": self._past(rng, now, 20),
            }
        )
        lines = self._lines(
            rng, "purchaseOrders", po_id, round(10 ** rng.uniform(2.0, 5.0), 2), tax_pct, rng.randint(1, 5)
        )
        for ln in lines:
            ln["expectedReceiptDate"] = po["requestedReceiptDate"]
        self._totals(po, lines)
        return po, lines

    # -- storage --------------------------------------------------------------------------------------------
    def _insert(self, entity: str, rec: dict[str, Any], lines: list[dict[str, Any]] | None = None) -> None:
        self.records[entity][rec["id"]] = rec
        self.by_number[entity][rec["number"]] = rec["id"]
        self.versions[rec["id"]] = 1
        if lines is not None:
            self.lines[rec["id"]] = lines
        modified = parse_ts(rec["lastModifiedDateTime"])
        if modified > self.last_modified:
            self.last_modified = modified

    def etag(self, record_id: str) -> str:
        return _etag(record_id, self.versions.get(record_id, 1))

    def get(self, entity: str, record_id: str) -> dict[str, Any]:
        rec = self.records[entity].get(record_id.lower())
        if rec is None:
            label = {
                "vendors": "Vendor",
                "purchaseInvoices": "Purchase Invoice",
                "purchaseOrders": "Purchase Header",
            }[entity]
            raise BcError(
                404,
                "Internal_RecordNotFound",
                f"The {label} does not exist. Identification fields and values: Id='{record_id}'",
            )
        return rec

    def _next_modified(self) -> datetime:
        now = self.sb.now()
        if now <= self.last_modified:
            now = self.last_modified + timedelta(milliseconds=1)
        self.last_modified = now
        return now

    def touch(self, entity: str, rec: dict[str, Any], change: str = "updated") -> None:
        """A user/API change: bump version and lastModifiedDateTime, notify subscribers."""
        when = self._next_modified()
        self.versions[rec["id"]] = self.versions.get(rec["id"], 0) + 1
        if "lastModifiedDateTime" in rec:
            rec["lastModifiedDateTime"] = ts(when)
        self.notify(entity, rec["id"], change, when)

    def apply(self, entity: str, rec: dict[str, Any], changes: dict[str, Any], *, api: bool) -> bool:
        """Validate and apply field changes; False when nothing changed (a null update is not notified)."""
        fields = FIELDS[entity]
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            prop = fields.get(name)
            if prop is None:
                raise BcError(
                    400,
                    "BadRequest_PropertyNotFound",
                    f"The property '{name}' does not exist on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'. "
                    "Make sure to only use property names that are defined by the type.",
                )
            if api and name in READ_ONLY[entity]:
                raise BcError(
                    400,
                    "BadRequest_MethodNotAllowed" if name == "id" else "Application_FieldNotEditable",
                    f"The property '{name}' is read-only.",
                )
            if prop.get("enum"):
                if not api:
                    value = encode_enum(value)
                if value not in ENUMS[prop["enum"]]:
                    raise BcError(
                        400,
                        "BadRequest",
                        f"Cannot convert the literal '{value}' to the expected type "
                        f"'Microsoft.NAV.{prop['enum']}'.",
                    )
            elif prop["json_type"] == "number" and not isinstance(value, int | float):
                raise BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to 'Edm.Decimal'.")
            elif prop["json_type"] == "boolean" and not isinstance(value, bool):
                raise BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to 'Edm.Boolean'.")
            elif prop["json_type"] == "string" and not isinstance(value, str):
                raise BcError(400, "BadRequest", f"Cannot convert the literal '{value}' to 'Edm.String'.")
            max_len = prop.get("max_length")
            if max_len and isinstance(value, str) and len(value) > max_len:
                raise BcError(
                    400,
                    "Application_StringExceededLength",
                    f"The length of the string is {len(value)}, but it must be less than or equal to "
                    f"{max_len} characters. Value: {value}",
                )
            clean[name] = value
        changed = {k: v for k, v in clean.items() if rec.get(k) != v}
        if not changed:
            return False
        rec.update(changed)
        if "number" in changed:
            self.by_number[entity] = {r["number"]: i for i, r in self.records[entity].items()}
        return True

    def post_invoice(self, record_id: str) -> dict[str, Any]:
        inv = self.get("purchaseInvoices", record_id)
        if inv["status"] != "Draft":
            raise BcError(
                400, "Application_DialogException", "The action can be applied to a draft invoice only."
            )
        vendor = self.records["vendors"].get(inv["vendorId"])
        if vendor is not None and vendor["blocked"] == "All":
            raise BcError(
                400,
                "Application_DialogException",
                f"You cannot post this type of document when Vendor {vendor['number']} is blocked with "
                "type All",
            )
        if not inv["vendorInvoiceNumber"]:
            raise BcError(
                400,
                "Application_DialogException",
                f"Vendor Invoice No. must have a value in Purchase Header: Document Type=Invoice, "
                f"No.={inv['number']}. It cannot be zero or empty.",
            )
        if not [ln for ln in self.lines.get(inv["id"], []) if ln["quantity"]]:
            raise BcError(400, "Application_DialogException", "There is nothing to post.")
        self.counters["posted"] += 1
        del self.by_number["purchaseInvoices"][inv["number"]]
        inv["number"] = str(self.counters["posted"])
        self.by_number["purchaseInvoices"][inv["number"]] = inv["id"]
        inv["status"] = "Open"
        if inv["postingDate"] == BLANK_DATE:
            inv["postingDate"] = self.sb.now().date().isoformat()
        if vendor is not None:  # Balance (LCY) is a FlowField: changes without touching the vendor
            vendor["balance"] = round(vendor["balance"] + inv["totalAmountIncludingTax"], 2)
        self.touch("purchaseInvoices", inv)
        return inv

    # -- output ---------------------------------------------------------------------------------------------
    def public(
        self,
        entity: str,
        rec: dict[str, Any],
        select: list[str] | None = None,
        expand: list[str] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self.etag(rec["id"])} if entity in DOCUMENTS else {}
        if select:
            out.update({k: rec[k] for k in select})
        else:
            out.update(rec)
        for nav in expand or []:
            out[nav] = [dict(ln) for ln in self.lines.get(rec["id"], [])]
        return out

    # -- subscriptions & notifications ----------------------------------------------------------------------
    def purge_expired(self) -> None:
        now = self.sb.now()
        for sid in [s for s, sub in self.subscriptions.items() if parse_ts(sub["expirationDateTime"]) <= now]:
            log.info("bc sandbox: subscription %s expired", sid)
            del self.subscriptions[sid]

    def subscription_entity(self, resource: str) -> tuple[str, str]:
        """(company id, entity set) from absolute, ``/api/v2.0/...`` or ``companies(...)/...`` forms."""
        m = re.search(r"companies\((?P<cid>[^)]+)\)/(?P<entity>[A-Za-z]+)/?$", resource.split("?")[0])
        if not m:
            raise BcError(
                400,
                "BadRequest",
                f"The resource '{resource}' is not valid. Use /api/v2.0/companies(<id>)/<entity set>.",
            )
        return m.group("cid").strip("'").lower(), m.group("entity")

    def notify(self, entity: str, record_id: str, change: str, when: datetime) -> None:
        if entity not in WEBHOOK_ENTITIES or not self.subscriptions:
            return
        self.purge_expired()
        for sub in self.subscriptions.values():
            if sub["_entity"] != entity or sub["_company"] != self.company["id"].lower():
                continue
            url = sub["notificationUrl"]
            batch = self.pending.get(url)
            if batch is None:
                batch = self.pending[url] = {"subs": {}, "first": {}}
                delay = float(self.sb.options.notify_delay_s)
                self.sb.schedule(delay, functools.partial(self.flush, url))
            items = batch["subs"].setdefault(sub["subscriptionId"], {})
            batch["first"].setdefault(sub["subscriptionId"], when)
            key = f"{record_id}:deleted" if change == "deleted" else record_id
            if change == "updated" and key in items:  # merged into the pending created/updated one
                items[key]["at"] = when
            else:
                items[key] = {"id": record_id, "changeType": change, "at": when}

    def _payload(self, url: str, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
        value: list[dict[str, Any]] = []
        sub_ids: list[str] = []
        for sid, keyed in batch["subs"].items():
            items = list(keyed.values())
            sub = self.subscriptions.get(sid)
            if sub is None or not items:
                continue
            sub_ids.append(sid)
            resource = f"api/v2.0/companies({sub['_company']})/{sub['_entity']}"
            common = {
                "subscriptionId": sid,
                "clientState": sub.get("clientState", ""),
                "expirationDateTime": sub["expirationDateTime"],
            }
            if len(items) > COLLECTION_THRESHOLD:
                first = batch["first"][sid] - timedelta(milliseconds=50)
                has_delete = any(i["changeType"] == "deleted" for i in items)
                res = (
                    resource if has_delete else f"{resource}?$filter=lastModifiedDateTime%20gt%20{ts(first)}"
                )
                value.append(
                    {
                        **common,
                        "resource": res,
                        "changeType": "collection",
                        "lastModifiedDateTime": ts(max(i["at"] for i in items)),
                    }
                )
            else:
                value += [
                    {
                        **common,
                        "resource": f"{resource}({i['id']})",
                        "changeType": i["changeType"],
                        "lastModifiedDateTime": ts(i["at"]),
                    }
                    for i in items
                ]
        return value, sub_ids

    def flush(self, url: str) -> None:
        with self.sb.lock:
            batch = self.pending.pop(url, None)
            if not batch:
                return
            self.purge_expired()
            value, sub_ids = self._payload(url, batch)
        if value:
            self.deliver(url, value, sub_ids, 0)

    def deliver(self, url: str, value: list[dict[str, Any]], sub_ids: list[str], attempt: int) -> None:
        correlation = str(uuid.uuid4())
        body = json.dumps({"value": value}, separators=(",", ":")).encode("utf-8")
        resp = self.sb.post_json(
            url, body, {"clientRequestId": correlation, "x-ms-correlation-id": correlation}
        )
        status = None if resp is None else resp.status_code
        if status is not None and 200 <= status < 300:
            self.sb.stats.bump("bc.notifications.sent")
            self.sb.stats.bump("bc.notifications.items", len(value))
            return
        with self.sb.lock:
            if status is None or status in (408, 429) or status >= 500:
                attempt += 1
                if attempt > MAX_ATTEMPTS:
                    log.warning("bc sandbox: %s failed %s times, deleting its subscriptions", url, attempt)
                    self.sb.stats.bump("bc.subscriptions.deleted")
                    for sid in sub_ids:
                        self.subscriptions.pop(sid, None)
                    return
                scale = float(self.sb.options.notify_delay_s) / 30.0
                delay = RETRY_DELAYS_S.get(attempt - 1, 60000) * scale
                self.sb.stats.bump("bc.notifications.retried")
                self.sb.schedule(delay, functools.partial(self.deliver, url, value, sub_ids, attempt))
                return
            log.warning("bc sandbox: %s answered %s, deleting its subscriptions", url, status)
            self.sb.stats.bump("bc.subscriptions.deleted")
            for sid in sub_ids:
                self.subscriptions.pop(sid, None)


# -- OData query engine ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<guid>" + _GUID + r")(?![\w-])"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})(?![\w:])|(?P<num>-?\d+(?:\.\d+)?)(?![\w-])"
    r"|(?P<ident>[A-Za-z_][\w]*)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}


def _bad(message: str) -> BcError:
    return BcError(400, "BadRequest", message)


class _Filter:
    """Recursive-descent parser for the $filter subset; compiles to a predicate on stored records."""

    def __init__(self, entity: str, text: str) -> None:
        self.entity = entity
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _bad(f"Syntax error at position {pos} in '{text}'.")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.i = 0
        self.pred = self._or()
        if self.i != len(self.tokens):
            raise _bad(f"Syntax error: unexpected '{self.tokens[self.i][1]}' in '{text}'.")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise _bad("Syntax error: unexpected end of $filter.")
        self.i += 1
        return tok

    def _kw(self, word: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "ident" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def _or(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._and()]
        while self._kw("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def _and(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._unary()]
        while self._kw("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def _unary(self) -> Callable[[dict[str, Any]], bool]:
        if self._kw("not"):
            inner = self._unary()
            return lambda r: not inner(r)
        tok = self._peek()
        if tok and tok[0] == "lp":
            self.i += 1
            inner = self._or()
            if self._take()[0] != "rp":
                raise _bad("Syntax error: ')' expected.")
            return inner
        return self._comparison()

    def _comparison(self) -> Callable[[dict[str, Any]], bool]:
        kind, name = self._take()
        if kind != "ident":
            raise _bad(f"Syntax error: property name expected, found '{name}'.")
        prop = FIELDS[self.entity].get(name)
        if prop is None:
            raise _bad(
                f"Could not find a property named '{name}' on type "
                f"'Microsoft.NAV.{ENTITY_TYPE[self.entity]}'."
            )
        op_kind, op = self._take()
        if op_kind != "ident" or op.lower() not in _OPS:
            raise _bad(f"Syntax error: comparison operator expected after '{name}', found '{op}'.")
        op = op.lower()
        lit_kind, lit = self._take()
        value = self._literal(prop, lit_kind, lit, op)
        convert = _converter(prop)

        def pred(rec: dict[str, Any]) -> bool:
            left = convert(rec.get(name))
            if op == "eq":
                return left == value
            if op == "ne":
                return left != value
            try:
                return {"gt": left > value, "ge": left >= value, "lt": left < value, "le": left <= value}[op]
            except TypeError:
                return False

        return pred

    def _literal(self, prop: dict[str, Any], kind: str, lit: str, op: str) -> Any:
        edm = prop["edm_type"]
        fmt = prop.get("format")
        names = {
            "gt": "GreaterThan",
            "ge": "GreaterThanOrEqual",
            "lt": "LessThan",
            "le": "LessThanOrEqual",
            "eq": "Equal",
            "ne": "NotEqual",
        }
        found = {
            "str": "Edm.String",
            "guid": "Edm.Guid",
            "dt": "Edm.DateTimeOffset",
            "date": "Edm.Date",
            "num": "Edm.Decimal",
            "ident": "Edm.Boolean",
        }.get(kind, kind)

        def incompatible() -> BcError:
            return _bad(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{found}' for operator kind '{names[op]}'."
            )

        if kind == "ident" and lit == "null":
            return None
        if prop.get("enum"):
            if kind != "str":
                raise incompatible()
            value = lit[1:-1].replace("''", "'")
            if value not in ENUMS[prop["enum"]]:
                raise _bad(
                    f"The string '{value}' is not a valid enumerated type constant for "
                    f"'Microsoft.NAV.{prop['enum']}'."
                )
            return value
        if fmt == "date-time":
            if kind == "dt":
                return parse_ts(lit)
            if kind == "date":
                return parse_ts(lit + "T00:00:00Z")
            raise incompatible()
        if fmt == "date":
            if kind != "date":
                raise incompatible()
            return lit
        if fmt == "uuid":
            if kind == "guid":
                return lit.lower()
            raise incompatible()
        if prop["json_type"] in ("number", "integer"):
            if kind != "num":
                raise incompatible()
            return float(lit)
        if prop["json_type"] == "boolean":
            if kind != "ident" or lit not in ("true", "false"):
                raise incompatible()
            return lit == "true"
        if kind != "str":
            raise incompatible()
        return lit[1:-1].replace("''", "'")


def _converter(prop: dict[str, Any]) -> Callable[[Any], Any]:
    fmt = prop.get("format")
    if fmt == "date-time":
        return lambda v: parse_ts(v) if isinstance(v, str) else v
    if fmt == "uuid":
        return lambda v: v.lower() if isinstance(v, str) else v
    if prop["json_type"] in ("number", "integer") and not prop.get("enum"):
        return lambda v: float(v) if isinstance(v, int | float) else v
    return lambda v: v


def _orderby(entity: str, text: str | None) -> list[tuple[str, bool]]:
    if not text:
        return [("number", False)] if "number" in FIELDS[entity] else [("id", False)]
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise _bad(f"Syntax error in $orderby '{text}'.")
        if bits[0] not in FIELDS[entity]:
            raise _bad(
                f"Could not find a property named '{bits[0]}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'."
            )
        out.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return out


def _select(entity: str, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n not in FIELDS[entity]:
            raise _bad(
                f"Could not find a property named '{n}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'."
            )
    return names


class _Key:
    """Sort key honouring per-field direction; the record id breaks ties (key-based $skiptoken)."""

    __slots__ = ("values", "desc")

    def __init__(self, values: tuple[Any, ...], desc: tuple[bool, ...]) -> None:
        self.values, self.desc = values, desc

    def _cmp(self, other: _Key) -> int:
        for a, b, d in zip(self.values, other.values, self.desc, strict=True):
            if a == b:
                continue
            if a is None or b is None:
                lt = a is None
            else:
                lt = a < b
            return (1 if lt else -1) if d else (-1 if lt else 1)
        return 0

    def __lt__(self, other: _Key) -> bool:
        return self._cmp(other) < 0


def _key_for(entity: str, order: list[tuple[str, bool]], rec: dict[str, Any]) -> _Key:
    vals = tuple(_converter(FIELDS[entity][f])(rec.get(f)) for f, _ in order) + (rec["id"],)
    return _Key(vals, tuple(d for _, d in order) + (False,))


def _token_encode(entity: str, order: list[tuple[str, bool]], rec: dict[str, Any], served: int) -> str:
    raw = json.dumps({"k": [rec.get(f) for f, _ in order] + [rec["id"]], "n": served}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _token_decode(entity: str, order: list[tuple[str, bool]], token: str) -> tuple[_Key, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        *vals, rid = data["k"]
        rec = dict(zip([f for f, _ in order], vals, strict=True))
        rec["id"] = rid
        return _key_for(entity, order, rec), int(data["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad("The $skiptoken is not valid.") from exc


def _page_size(request: Request) -> tuple[int, bool]:
    prefer = request.headers.get("prefer", "")
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    if not m:
        return MAX_PAGE, False
    return max(1, min(int(m.group(1)), MAX_PAGE)), True


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise _bad(f"Invalid value '{raw}' for {name}: a non-negative integer is expected.")
    return int(raw)


# -- routes ------------------------------------------------------------------------------------------------


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


def _expand(entity: str, text: str | None) -> list[str]:
    if not text:
        return []
    navs = [t.strip() for t in text.split(",") if t.strip()]
    for nav in navs:
        if LINES.get(entity) != nav:
            raise _bad(
                f"Could not find a property named '{nav}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'."
            )
    return navs


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

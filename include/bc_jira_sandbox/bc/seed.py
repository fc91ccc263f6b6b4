"""Seed data: plausible Danish/European vendors, purchase invoices and orders, reproducible per seed."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from bc_jira_sandbox.bc.base import BcBase
from bc_jira_sandbox.bc.entities import _BLANKS, LINES, NULL_GUID, SPACE, ts

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
    return str(uuid.UUID(hashlib.md5(f"currency:{code}".encode()).hexdigest()))


def _weighted(rng: Any, pairs: list[tuple[Any, int]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


class SeedMixin(BcBase):
    """Record generation of :class:`BcState`."""

    def seed(self, vendors: int = 0, invoices: int = 0, orders: int = 0, draft_invoices: int = 0) -> None:
        """Add records; ``draft_invoices`` adds invoices that all await review (benchmarks)."""
        rng = self.rng
        now = self.sb.now()
        if (invoices or orders or draft_invoices) and not self.records["vendors"] and vendors == 0:
            vendors = 5
        for _ in range(vendors):
            self._insert("vendors", self._make_vendor(rng, now))
        vendor_list = list(self.records["vendors"].values())
        for _ in range(invoices):
            inv, lines = self._make_invoice(rng, now, rng.choice(vendor_list))
            self._insert("purchaseInvoices", inv, lines)
            self.seed_attachments(inv, now)
        for _ in range(draft_invoices):
            inv, lines = self._make_invoice(rng, now, rng.choice(vendor_list), status="Draft")
            self._insert("purchaseInvoices", inv, lines)
            self.seed_attachments(inv, now)
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

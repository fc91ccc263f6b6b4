"""A BC user's change to a document line, and what BC does to the document's header because of it.

BC keeps the API's header (``Purch. Inv. Entity Aggregate`` / ``Purchase Order Entity Buffer``) in step with
the Purchase Line table through event subscribers: ``OnAfterModifyPurchaseLine`` calls
``ModifyTotalsPurchaseLine``, which exits unless the line's ``Recalculate Invoice Disc.`` flag is set and
otherwise re-assigns the totals and calls ``Modify(true)`` on the header record (microsoft/BCApps,
``src/Apps/W1/APIV2`` dependencies in Base App: codeunit 5529 "Purch. Inv. Aggregator" and codeunit 5497
"Graph Mgt - Purch Order Buffer"). The header's ``lastModifiedDateTime`` is that record's
``SystemModifiedAt`` (bc-api.md 2.2), so it moves, and its webhook fires ("For Document APIs, a notification
is sent for the header if a change is made to a line", Learn ``dynamics-subscriptions.md``), when an
amount-relevant line field changes (quantity, cost, discount, the line's No.: Purchase Line's amount
validation sets the flag). A description-only edit leaves the header (and its timestamp) alone.
"""

from __future__ import annotations

import uuid
from typing import Any

from bc_jira_sandbox.bc.base import BcBase
from bc_jira_sandbox.bc.entities import _BLANKS, LINES, NULL_GUID, BcError, _bad, checked_value

_TEXT_FIELDS = frozenset({"description", "description2", "unitOfMeasureCode"})
_AMOUNT_FIELDS = {
    "purchaseInvoices": frozenset(
        {"quantity", "unitCost", "discountAmount", "discountPercent", "lineObjectNumber"}
    ),
    "purchaseOrders": frozenset(
        {"quantity", "directUnitCost", "discountAmount", "discountPercent", "lineObjectNumber"}
    ),
}
_COST = {"purchaseInvoices": "unitCost", "purchaseOrders": "directUnitCost"}


class LinesMixin(BcBase):
    """Line changes of :class:`BcState` (``POST /_sandbox/bc/change`` with ``line`` or ``add_lines``)."""

    def _editable(self, entity: str, doc: dict[str, Any]) -> None:
        if entity == "purchaseInvoices" and doc["status"] != "Draft":
            raise BcError(
                400,
                "Application_DialogException",
                "The purchase invoice has been posted and can no longer be modified.",
            )
        if entity == "purchaseOrders" and doc["status"] != "Draft":
            current = "Released" if doc["status"] == "Open" else "Pending Approval"
            raise BcError(
                400,
                "Application_DialogException",
                "Status must be equal to 'Open'  in Purchase Header: Document Type=Order, "
                f"No.={doc['number']}. Current value is '{current}'.",
            )

    def change_line(self, entity: str, doc: dict[str, Any], change: dict[str, Any]) -> bool:
        """Set fields of the line ``change["sequence"]``; True when the header was touched (amounts moved)."""
        self._editable(entity, doc)
        lines = self.lines.get(doc["id"], [])
        seq = change.get("sequence")
        line = next((ln for ln in lines if ln["sequence"] == seq), None)
        if line is None:
            raise BcError(
                404, "Internal_RecordNotFound", f"The Purchase Line does not exist. Line No.='{seq}'"
            )
        allowed = _TEXT_FIELDS | _AMOUNT_FIELDS[entity]
        sets = dict(change.get("set") or {})
        unknown = sorted(set(sets) - allowed)
        if unknown:
            raise _bad(f"line fields a user can change here: {', '.join(sorted(allowed))} (not {unknown})")
        clean = {k: checked_value(LINES[entity], k, v, api=False) for k, v in sets.items()}
        changed = {k: v for k, v in clean.items() if line.get(k) != v}
        if not changed:
            return False
        line.update(changed)
        if not set(changed) & _AMOUNT_FIELDS[entity]:
            return False  # no "Recalculate Invoice Disc.": the header record is not modified
        _recalculate(entity, line)
        self._retotal(doc, lines)
        self.touch(entity, doc)
        return True

    def add_lines(self, entity: str, doc: dict[str, Any], count: int) -> None:
        """Append ``count`` account lines (a user typing lines in); the header is modified once per line."""
        self._editable(entity, doc)
        lines = self.lines.setdefault(doc["id"], [])
        start = max((ln["sequence"] for ln in lines), default=0)
        for i in range(1, count + 1):
            line = dict(_BLANKS[LINES[entity]])
            line.update(
                {
                    "id": self._line_id(),
                    "documentId": doc["id"],
                    "sequence": start + i * 10000,
                    "lineType": "Account",
                    "lineObjectNumber": "6130",
                    "description": f"Office supplies {i}",
                    "quantity": 1,
                    _COST[entity]: 10.0,
                    "taxPercent": lines[0]["taxPercent"] if lines else 0.0,
                    "itemId": NULL_GUID,
                }
            )
            _recalculate(entity, line)
            lines.append(line)
        self._retotal(doc, lines)
        self.touch(entity, doc)

    def _line_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _retotal(self, doc: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        excl = round(sum(ln["amountExcludingTax"] for ln in lines), 2)
        tax = round(sum(ln["totalTaxAmount"] for ln in lines), 2)
        doc.update(
            {
                "totalAmountExcludingTax": excl,
                "totalTaxAmount": tax,
                "totalAmountIncludingTax": round(excl + tax, 2),
            }
        )


def _recalculate(entity: str, line: dict[str, Any]) -> None:
    """Line amounts from quantity, cost and discount (Purchase Line's UpdateAmounts, plain rounding)."""
    gross = round(float(line["quantity"]) * float(line[_COST[entity]]), 2)
    if line.get("discountPercent"):
        line["discountAmount"] = round(gross * float(line["discountPercent"]) / 100, 2)
    amount = round(gross - float(line.get("discountAmount") or 0), 2)
    tax = round(amount * float(line["taxPercent"]) / 100, 2)
    line.update(
        {
            "amountExcludingTax": amount,
            "totalTaxAmount": tax,
            "amountIncludingTax": round(amount + tax, 2),
            "netAmount": amount,
            "netTaxAmount": tax,
            "netAmountIncludingTax": round(amount + tax, 2),
        }
    )
    if entity == "purchaseOrders":
        line.update({"receiveQuantity": line["quantity"], "invoiceQuantity": line["quantity"]})

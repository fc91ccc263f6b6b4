"""BC's state: records, etags, changes as the API and a BC user make them."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.attachments import ATTACHMENT_SETS, AttachmentsMixin
from bc_jira_sandbox.bc.entities import (
    BLANK_DATE,
    DOCUMENTS,
    NULL_GUID,
    BcError,
    _etag,
    checked_value,
    parse_ts,
    ts,
)
from bc_jira_sandbox.bc.expand import Expand, expanded
from bc_jira_sandbox.bc.lines import LinesMixin
from bc_jira_sandbox.bc.notifications import NotificationsMixin
from bc_jira_sandbox.bc.seed import SeedMixin

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


class BcState(SeedMixin, LinesMixin, NotificationsMixin, AttachmentsMixin):
    """All BC data of the sandbox (picklable: no locks or callables; the ``sb`` back-reference is skipped)."""

    def __init__(self, sb: Sandbox, index: int = 0) -> None:
        self.sb = sb
        self.index = index  # 0: company 1, ``creds["company_id"]`` (see bc.companies)
        self.reset()

    @property
    def rng(self) -> random.Random:
        """Company 1 draws from the sandbox's stream (its data as before); others from their own."""
        return self.sb.rng if self.index == 0 else self._rng

    # -- lifecycle ------------------------------------------------------------------------------------------
    def reset(self) -> None:
        now = self.sb.now()
        self.handshake_method = "POST"
        self._rng = random.Random(f"bc-company-{self.sb.options.seed}-{self.index}")
        self.revoked = False  # the principal lost its permission in this company: 403 (bc.companies)
        self.deleted = False  # the company was deleted: 404 Internal_CompanyNotFound
        name, display = companies.profile(self.index)
        self.company: dict[str, Any] = {
            "id": companies.company_id(self.sb, self.index),
            "systemVersion": "26.0.30643.32481",
            "timestamp": 27051 + self.index,
            "name": name,
            "displayName": display,
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
        self.reset_attachments()

    def counts(self) -> dict[str, int]:
        return {
            "vendors": len(self.records["vendors"]),
            "invoices": len(self.records["purchaseInvoices"]),
            "orders": len(self.records["purchaseOrders"]),
            "subscriptions": len(self.subscriptions),
        }

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
        clean = {name: checked_value(entity, name, value, api=api) for name, value in changes.items()}
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

    def delete(self, entity: str, rec: dict[str, Any]) -> None:
        """Delete a record as BC does (``DELETE`` with ``If-Match``, or a user in the client); fires a
        ``deleted`` notification (changeType values: https://learn.microsoft.com/en-us/dynamics365/
        business-central/dev-itpro/api-reference/v2.0/dynamics-subscriptions, "Notification payload").

        [inference from the AL tables' OnDelete triggers] A posted invoice (Purch. Inv. Header) is not
        deleted through the API, and a vendor with outstanding purchase documents cannot be deleted.
        """
        if entity == "purchaseInvoices" and rec["status"] != "Draft":
            raise BcError(
                400,
                "Application_DialogException",
                f"You cannot delete posted purchase invoice {rec['number']}: posted documents are kept.",
            )
        if entity == "vendors":
            open_docs = [
                d
                for e in ("purchaseInvoices", "purchaseOrders")
                for d in self.records[e].values()
                if d.get("vendorId") == rec["id"] and (e == "purchaseOrders" or d.get("status") == "Draft")
            ]
            if open_docs:
                raise BcError(
                    400,
                    "Application_DialogException",
                    f"You cannot delete Vendor {rec['number']} because there is at least one outstanding "
                    "Purchase document for this vendor.",
                )
        del self.records[entity][rec["id"]]
        self.by_number[entity].pop(rec["number"], None)
        self.lines.pop(rec["id"], None)
        self.versions.pop(rec["id"], None)
        self.notify(entity, rec["id"], "deleted", self._next_modified())

    # -- output ---------------------------------------------------------------------------------------------
    def public(
        self,
        entity: str,
        rec: dict[str, Any],
        select: list[str] | None = None,
        expand: list[Expand] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {"@odata.etag": self.etag(rec["id"])} if entity in DOCUMENTS else {}
        if select:
            out.update({k: rec[k] for k in select})
        else:
            out.update(rec)
        for item in expand or []:
            if item.nav in ATTACHMENT_SETS:
                if item.nav == "documentAttachments" and not getattr(self, "document_attachments_api", True):
                    raise BcError(
                        400,
                        "BadRequest",
                        f"Could not find a property named '{item.nav}' on type 'Microsoft.NAV.{entity}'.",
                    )
                base = f"{self.sb.base_url}/v2.0/{self.sb.creds['tenant_id']}/{self.sb.creds['environment']}"
                base += f"/api/v2.0/companies({self.company['id']})"
                rows = self.attachments_of(item.nav, rec["id"])
                out[item.nav] = [self.attachment_json(item.nav, r, item.select, base) for r in rows]
        others = [item for item in expand or [] if item.nav not in ATTACHMENT_SETS]
        if others:
            out.update(expanded(entity, rec, self.lines.get(rec["id"], []), others))
        return out

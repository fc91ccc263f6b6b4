"""Every fact about a synced BC entity, in one registry.

Config defaults, the BC entity set, which entities BC sends change notifications for, the Jira noun and issue
type, the watermark Variable, the done action, the fields that carry a record's number, vendor, amount and
status: a fourth entity is one :class:`EntitySpec` here plus its mapping (``bc_jira.mapping``). Field names
are BC API v2.0 JSON names (see the entity list in the BC API v2.0 reference,
https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/api-reference/v2.0/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

WATERMARK_PREFIX = "bc_jira_watermark_"
BLANK = "_x0020_"

# Fields a summary template may reference on purchase documents (BC API v2.0 JSON names).
_COMMON_DOC = [
    "id",
    "number",
    "vendorId",
    "vendorNumber",
    "vendorName",
    "payToName",
    "payToVendorNumber",
    "shipToName",
    "shipToContact",
    "buyFromCity",
    "buyFromCountry",
    "shortcutDimension1Code",
    "shortcutDimension2Code",
    "currencyCode",
    "purchaser",
    "pricesIncludeTax",
    "discountAmount",
    "totalAmountExcludingTax",
    "totalTaxAmount",
    "totalAmountIncludingTax",
    "status",
    "postingDate",
    "lastModifiedDateTime",
]

# Line fields read with the document (BC API v2.0 purchaseInvoiceLines / purchaseOrderLines; the unit cost is
# ``unitCost`` on invoice lines and ``directUnitCost`` on order lines). ``amountExcludingTax`` is the line
# amount (quantity x cost - line discount) before the invoice discount; ``sequence`` is BC's "Line No.".
_LINE_FIELDS = ("sequence", "lineType", "lineObjectNumber", "description", "quantity", "amountExcludingTax")
# Per line, its dimension set (navigation ``dimensionSetLines``: dimension code and value code).
DIMENSION_SET_LINES = "dimensionSetLines"
DIMENSION_FIELDS = ("code", "valueCode")


@dataclass(frozen=True)
class EntitySpec:
    """One synced BC entity (config key ``entities.<name>``)."""

    name: str  # config key, link-table entity, DAG/task argument
    entity_set: str  # BC API v2.0 entity set
    noun: str  # in messages and comments: "purchase invoice"
    issue_type: str  # default Jira issue type
    done_actions: tuple[str, ...]  # what the write-back may do when its issue is done
    done_action: str  # the default of those
    selection: tuple[str, tuple[str, ...]]  # default: the enum field and the values that need a human
    summary: str  # default summary template
    enums: dict[str, tuple[str, ...]]  # enum JSON encodings ($metadata member names)
    template_fields: frozenset[str]
    webhook: bool  # BC sends change notifications for it (purchase orders are cron only)
    document: bool  # a purchase document (number, vendor, amounts) rather than master data (a vendor)
    vendor_number_field: str
    vendor_name_field: str | None
    amount_field: str
    status_field: str
    page: int  # BC web client page id of the record
    posted_page: int | None = None  # page id once the document is posted (status no longer Draft)
    has_purchaser: bool = True  # assignee rules on ``purchaser`` apply
    extra_facts: tuple[tuple[str, str], ...] = ()  # (label, field) rows of the issue description
    lines: str | None = None  # the document's lines navigation property (read with $expand)
    line_fields: tuple[str, ...] = ()  # the line fields the description's table shows ($select on the lines)
    due_date_field: str | None = None  # goes into Jira's system field ``duedate``

    @property
    def watermark_key(self) -> str:
        """The Airflow Variable holding this entity's sync watermark."""
        return f"{WATERMARK_PREFIX}{self.name}"

    @property
    def kind(self) -> str:
        """The noun at the start of a sentence: "Purchase invoice"."""
        return self.noun[:1].upper() + self.noun[1:]


SPECS: dict[str, EntitySpec] = {
    spec.name: spec
    for spec in (
        EntitySpec(
            name="purchase_invoices",
            entity_set="purchaseInvoices",
            noun="purchase invoice",
            issue_type="Invoice",
            done_actions=("post", "none"),
            done_action="post",
            selection=("status", ("Draft",)),
            summary="Purchase invoice {number}: {vendorName} {amount} {currency}",
            enums={"status": (BLANK, "Draft", "In_x0020_Review", "Open", "Paid", "Canceled", "Corrective")},
            template_fields=frozenset(
                _COMMON_DOC + ["invoiceDate", "dueDate", "vendorInvoiceNumber", "orderNumber", "payToContact"]
            ),
            webhook=True,
            document=True,
            vendor_number_field="vendorNumber",
            vendor_name_field="vendorName",
            amount_field="totalAmountIncludingTax",
            status_field="status",
            page=51,
            posted_page=138,
            extra_facts=(
                ("Vendor invoice No.", "vendorInvoiceNumber"),
                ("Invoice date", "invoiceDate"),
                ("Due date", "dueDate"),
            ),
            lines="purchaseInvoiceLines",
            line_fields=_LINE_FIELDS + ("unitCost",),  # invoice lines: unitCost (BC "Direct Unit Cost")
            due_date_field="dueDate",
        ),
        EntitySpec(
            name="vendors",
            entity_set="vendors",
            noun="vendor",
            issue_type="Vendor",
            done_actions=("unblock", "none"),
            done_action="unblock",
            selection=("blocked", ("Payment", "All")),
            summary="Blocked vendor {number}: {displayName} ({status_text})",
            enums={"blocked": (BLANK, "Payment", "All")},
            template_fields=frozenset(
                [
                    "id",
                    "number",
                    "displayName",
                    "addressLine1",
                    "city",
                    "state",
                    "country",
                    "postalCode",
                    "phoneNumber",
                    "email",
                    "website",
                    "taxRegistrationNumber",
                    "currencyCode",
                    "blocked",
                    "balance",
                    "lastModifiedDateTime",
                ]
            ),
            webhook=True,
            document=False,
            vendor_number_field="number",
            vendor_name_field="displayName",
            amount_field="balance",
            status_field="blocked",
            page=26,
            has_purchaser=False,
        ),
        EntitySpec(
            name="purchase_orders",
            entity_set="purchaseOrders",
            noun="purchase order",
            issue_type="Purchase Order",
            done_actions=("none",),
            done_action="none",
            selection=("status", ("In_x0020_Review",)),
            summary="Purchase order {number}: {vendorName} {amount} {currency}",
            enums={"status": ("Draft", "In_x0020_Review", "Open")},
            template_fields=frozenset(_COMMON_DOC + ["orderDate", "requestedReceiptDate", "fullyReceived"]),
            webhook=False,
            document=True,
            vendor_number_field="vendorNumber",
            vendor_name_field="vendorName",
            amount_field="totalAmountIncludingTax",
            status_field="status",
            page=50,
            extra_facts=(("Order date", "orderDate"), ("Requested receipt", "requestedReceiptDate")),
            lines="purchaseOrderLines",
            line_fields=_LINE_FIELDS + ("directUnitCost",),
        ),
    )
}

ENTITIES: tuple[str, ...] = tuple(SPECS)
# BC sends change notifications for these (the rest are cron only).
EVENT_ENTITIES: frozenset[str] = frozenset(n for n, s in SPECS.items() if s.webhook)
# Entities whose issue, when done, the write-back acts on in BC.
WRITEBACK_ENTITIES: tuple[str, ...] = tuple(n for n, s in SPECS.items() if set(s.done_actions) - {"none"})
BY_ENTITY_SET: dict[str, str] = {s.entity_set: n for n, s in SPECS.items()}

# Navigation properties read with each record in the same list request (one OData ``$expand``, nested
# ``$select``), per entity: navigation -> its fields. Every reader adds its own entry here so the expands
# combine into one ``$expand=a($select=…),b($select=…)`` instead of one request per record.
ATTACHMENT_SETS = ("documentAttachments", "attachments")  # BC API v2.0: newer, and older Incoming Documents
ATTACHMENT_FIELDS = ("id", "fileName", "byteSize", "lastModifiedDateTime")
EXPANDS: dict[str, dict[str, tuple[str, ...]]] = {
    "purchase_invoices": {"documentAttachments": ATTACHMENT_FIELDS},
}


def navigation_expands(
    name: str, *, rename: Mapping[str, str] | None = None, skip: Iterable[str] = ()
) -> str | None:
    """The ``EXPANDS`` part of ``name``'s list request ``$expand`` (None when nothing is expanded; the lines
    come from the spec, ``sync.extract.lines_expand``).

    ``rename``: read a navigation under another name (``documentAttachments`` -> ``attachments`` where an
    environment has only those); ``skip``: navigations switched off by configuration.
    """
    parts = []
    for nav, fields in EXPANDS.get(name, {}).items():
        if nav in set(skip):
            continue
        nav = (rename or {}).get(nav, nav)
        parts.append(f"{nav}($select={','.join(fields)})" if fields else nav)
    return ",".join(parts) or None


def has_attachments(name: str) -> bool:
    """Whether the vendor's files of ``name``'s records are read (and attached to their issues)."""
    return any(nav in ATTACHMENT_SETS for nav in EXPANDS.get(name, {}))


def spec(name: str) -> EntitySpec:
    """The registry entry of ``name``; a clear KeyError naming the known entities otherwise."""
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown entity {name!r}; expected one of {', '.join(SPECS)}") from None


def noun(name: str | None, default: str = "record") -> str:
    """The entity's noun for messages ("vendor"), or ``default`` for an unknown/None entity."""
    found = SPECS.get(name or "")
    return found.noun if found else default

"""``$expand`` as BC answers it: navigation properties with nested ``$select`` / ``$expand`` options.

OData v4 URL conventions, 5.1.3 System Query Option $expand
(https://docs.oasis-open.org/odata/odata/v4.01/odata-v4.01-part2-url-conventions.html#sec_SystemQueryOptionexpand):
``$expand=nav(option;option)``, options separated by ``;``. BC's own example nests them:
``salesOrders?$expand=salesOrderLines($expand=account,item($expand=itemCategory))`` (Learn,
``devenv-connect-apps-tips.md``). The sandbox serves the lines of purchase invoices and orders and the
dimension set lines of documents and their lines (Learn ``dynamics_dimensionSetLine.md``: navigation
``purchaseInvoice``/``purchaseInvoiceLine``/``purchaseOrder``/``purchaseOrderLine``); nested options other
than ``$select`` and ``$expand`` answer 400 here rather than being ignored.

Expanded collections come back whole, inside each record of the page: BC pages the top-level collection
(``@odata.nextLink``, which keeps ``$expand``), the lines travel with their header.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from bc_jira_sandbox.bc.attachments import ATTACHMENT_SETS
from bc_jira_sandbox.bc.entities import ENTITY_TYPE, FIELDS, LINES, _bad

DIMENSION_SET_LINES = "dimensionSetLines"
# Learn dynamics_dimensionSetLine.md (v2.0) "Properties"; not in the vendored field list, so spelled out here.
DIMENSION_FIELDS = (
    "id",
    "code",
    "parentId",
    "parentType",
    "displayName",
    "valueId",
    "valueCode",
    "valueDisplayName",
)
# Navigation properties served per entity set (the rest of BC's navigation answers 400 here).
NAVIGATION: dict[str, tuple[str, ...]] = {
    "purchaseInvoices": ("purchaseInvoiceLines", DIMENSION_SET_LINES, *ATTACHMENT_SETS),
    "purchaseOrders": ("purchaseOrderLines", DIMENSION_SET_LINES),
    "purchaseInvoiceLines": (DIMENSION_SET_LINES,),
    "purchaseOrderLines": (DIMENSION_SET_LINES,),
}
# dimensionSetEntryBufferParentType members (Learn lists "Purchase Invoice", "Purchase Invoice Line"; the
# purchase order members are [inference], named the same way).
PARENT_TYPE = {
    "purchaseInvoices": "Purchase_x0020_Invoice",
    "purchaseInvoiceLines": "Purchase_x0020_Invoice_x0020_Line",
    "purchaseOrders": "Purchase_x0020_Order",
    "purchaseOrderLines": "Purchase_x0020_Order_x0020_Line",
}
# CRONUS: global dimension 1 is DEPARTMENT, 2 is CUSTOMERGROUP (the seed's shortcut codes are their values).
_DIMENSIONS = (
    ("shortcutDimension1Code", "DEPARTMENT", "Department"),
    ("shortcutDimension2Code", "CUSTOMERGROUP", "Customer Group"),
)
_VALUE_NAMES = {
    "ADM": "Administration",
    "PROD": "Production",
    "SALES": "Sales",
    "LARGE": "Large Business",
    "MEDIUM": "Medium Business",
    "SMALL": "Small Business",
}
_NS = uuid.UUID("6f1c2a4e-93b0-4d47-9a55-0b5f1f8f2d10")


@dataclass(frozen=True)
class Expand:
    """One ``$expand`` item: the navigation property and its nested ``$select`` / ``$expand``."""

    nav: str
    select: list[str] | None = None
    expand: list[Expand] = field(default_factory=list)


def _split(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside parentheses (400 when they do not balance)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise _bad(f"Syntax error: unbalanced ')' in $expand '{text}'.")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth:
        raise _bad(f"Syntax error: '(' without ')' in $expand '{text}'.")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _target(entity: str, nav: str) -> str:
    if nav not in NAVIGATION.get(entity, ()):
        raise _bad(f"Could not find a property named '{nav}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'.")
    if nav in ATTACHMENT_SETS:  # bc_jira_sandbox.bc.attachments: documentAttachments / attachments
        return nav
    return LINES[entity] if nav == LINES.get(entity) else DIMENSION_SET_LINES


def _fields(target: str) -> tuple[str, ...]:
    return DIMENSION_FIELDS if target == DIMENSION_SET_LINES else tuple(FIELDS[target])


def _nested_select(target: str, text: str) -> list[str]:
    names = [s.strip() for s in text.split(",") if s.strip()]
    known = _fields(target)
    for n in names:
        if n not in known:
            kind = "dimensionSetLine" if target == DIMENSION_SET_LINES else ENTITY_TYPE[target]
            raise _bad(f"Could not find a property named '{n}' on type 'Microsoft.NAV.{kind}'.")
    return names


def parse_expand(entity: str, text: str | None) -> list[Expand]:
    """The ``$expand`` of a request on ``entity``; BC's 400 for unknown properties and bad syntax."""
    if not text:
        return []
    out = []
    for item in _split(text, ","):
        nav, _, rest = item.partition("(")
        nav = nav.strip()
        target = _target(entity, nav)
        select: list[str] | None = None
        nested: list[Expand] = []
        if rest:
            if not rest.endswith(")"):
                raise _bad(f"Syntax error at '{item}' in $expand.")
            for opt in _split(rest[:-1], ";"):
                name, eq, value = opt.partition("=")
                name = name.strip()
                if not eq:
                    raise _bad(f"Syntax error: '{opt}' is not a query option in $expand.")
                if name == "$select":
                    select = _nested_select(target, value)
                elif name == "$expand" and target not in (DIMENSION_SET_LINES, *ATTACHMENT_SETS):
                    nested = parse_expand(target, value)
                else:
                    raise _bad(f"The query option '{name}' is not supported inside $expand here.")
        out.append(Expand(nav, select, nested))
    return out


def dimension_set_lines(header: dict[str, Any], parent_id: str, parent_entity: str) -> list[dict[str, Any]]:
    """The dimension set of a document or of one of its lines: the header's global dimension values (a line
    inherits its document's dimensions unless a user changes them)."""
    out = []
    for source, code, name in _DIMENSIONS:
        value = header.get(source) or ""
        if not value:
            continue
        out.append(
            {
                "id": str(uuid.uuid5(_NS, f"{parent_id}:{code}")),
                "code": code,
                "parentId": parent_id,
                "parentType": PARENT_TYPE[parent_entity],
                "displayName": name,
                "valueId": str(uuid.uuid5(_NS, f"{code}:{value}")),
                "valueCode": value,
                "valueDisplayName": _VALUE_NAMES.get(value, value),
            }
        )
    return out


def _pick(row: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    return {k: row[k] for k in select} if select else dict(row)


def expanded(
    entity: str, header: dict[str, Any], lines: list[dict[str, Any]], items: list[Expand]
) -> dict[str, list[dict[str, Any]]]:
    """The navigation values of one document for ``items``: its lines and/or dimension set lines."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        if item.nav == DIMENSION_SET_LINES:
            dims = dimension_set_lines(header, header["id"], entity)
            out[item.nav] = [_pick(d, item.select) for d in dims]
            continue
        rows = []
        for ln in lines:
            row = _pick(ln, item.select)
            for sub in item.expand:  # only dimensionSetLines below a line
                dims = dimension_set_lines(header, ln["id"], LINES[entity])
                row[sub.nav] = [_pick(d, sub.select) for d in dims]
            rows.append(row)
        out[item.nav] = rows
    return out

"""The description's lines table, the due date and the rule-based priority (bc_jira.mapping_lines)."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

from bc_jira import adf
from bc_jira.config import FieldNames, parse_config
from bc_jira.mapping import field_ids, map_record
from bc_jira.mapping_lines import MAX_LINES, due_date, lines_blocks
from bc_jira_sandbox.jira.adf import validate_adf

IDS = field_ids(
    FieldNames(),
    {
        "BC Record Id": "customfield_10001",
        "BC Document No.": "customfield_10002",
        "BC Vendor": "customfield_10003",
        "BC Amount": "customfield_10004",
        "BC Currency": "customfield_10005",
        "BC Status": "customfield_10006",
    },
)
URL = "https://bc.example.com/t/production"
TODAY = date(2026, 11, 25)


def _line(n: int, **over: Any) -> dict[str, Any]:
    line = {
        "sequence": n * 10000,
        "lineType": "Item",
        "lineObjectNumber": f"19{n:02d}-S",
        "description": f"Desk {n}",
        "quantity": 2,
        "unitCost": 150.5,
        "amountExcludingTax": 301,
        "dimensionSetLines": [],
    }
    line.update(over)
    return line


def invoice(lines: list[dict[str, Any]], **over: Any) -> dict[str, Any]:
    rec = {
        "id": "5d115c9c-44e3-ea11-bb43-000d3a2feca1",
        "number": "1001",
        "dueDate": "2026-12-01",
        "vendorNumber": "V0010",
        "vendorName": "Fabrikam, Inc.",
        "currencyCode": "USD",
        "totalAmountIncludingTax": 1234.5,
        "status": "Draft",
        "lastModifiedDateTime": "2026-11-20T10:00:00Z",
        "purchaseInvoiceLines": lines,
    }
    rec.update(over)
    return rec


def cfg(**extra: Any) -> Any:
    return parse_config({"project_key": "FIN", "bc_web_client_url": URL, **extra})


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "text" else []
        return own + [t for child in node.get("content", []) for t in _texts(child)]
    return []


def _table_rows(blocks: list[dict[str, Any]]) -> list[list[str]]:
    table = next(b for b in blocks if b["type"] == "table")
    return [[" ".join(_texts(cell)) for cell in row["content"]] for row in table["content"]]


def test_the_table_shows_each_line_in_bc_order() -> None:
    lines = [
        _line(
            2,
            lineType="Account",
            lineObjectNumber="6130",
            quantity=1.5,
            unitCost=1000,
            amountExcludingTax=1500,
        ),
        _line(1),
    ]
    blocks = lines_blocks("purchase_invoices", invoice(lines), URL)
    rows = _table_rows(blocks)
    assert rows[0] == ["Type", "No.", "Description", "Quantity", "Unit cost", "Line amount"]  # no dimensions
    assert rows[1] == ["Item", "1901-S", "Desk 1", "2", "150.50", "301.00"]
    assert rows[2] == ["Account", "6130", "Desk 2", "1.5", "1,000.00", "1,500.00"]
    assert _texts(blocks[0]) == ["Lines (2)"]
    assert len(blocks) == 2  # no "more lines" paragraph
    assert validate_adf(adf.doc(*blocks)) is None
    assert adf.validate(adf.doc(*blocks)) == []


def test_dimensions_get_a_column_when_a_line_has_them() -> None:
    dims = [{"code": "DEPARTMENT", "valueCode": "SALES"}, {"code": "CUSTOMERGROUP", "valueCode": "LARGE"}]
    rows = _table_rows(
        lines_blocks("purchase_invoices", invoice([_line(1, dimensionSetLines=dims), _line(2)]), URL)
    )
    assert rows[0][-1] == "Dimensions"
    assert rows[1][-1] == "DEPARTMENT: SALES, CUSTOMERGROUP: LARGE"
    assert rows[2][-1] == ""


def test_order_lines_show_direct_unit_cost() -> None:
    order = {
        "id": "o-1",
        "number": "106001",
        "purchaseOrderLines": [_line(1, unitCost=None, directUnitCost=7.25)],
    }
    rows = _table_rows(lines_blocks("purchase_orders", order, None))
    assert rows[1][4] == "7.25"


def test_at_most_50_lines_then_how_many_more_with_the_link() -> None:
    lines = [_line(n) for n in range(1, 58)]
    blocks = lines_blocks("purchase_invoices", invoice(lines), URL)
    rows = _table_rows(blocks)
    assert len(rows) == 1 + MAX_LINES
    assert rows[-1][2] == "Desk 50"
    more = blocks[-1]
    assert " ".join(_texts(more)) == "… and 7 more lines in  Business Central"
    link = more["content"][-1]
    assert link["marks"] == [{"type": "link", "attrs": {"href": URL}}]
    assert validate_adf(adf.doc(*blocks)) is None
    one_more = lines_blocks("purchase_invoices", invoice([_line(n) for n in range(1, 52)]), None)
    assert _texts(one_more[-1]) == ["… and 1 more line in ", "Business Central"]  # no URL: no link
    assert "marks" not in one_more[-1]["content"][-1]


def test_no_lines_no_table() -> None:
    assert lines_blocks("purchase_invoices", invoice([]), URL) == []
    assert lines_blocks("vendors", {"id": "v"}, URL) == []


def test_the_hash_changes_with_a_line_and_only_then() -> None:
    c = cfg()
    rec = invoice([_line(1), _line(2)])
    first = map_record(c, "purchase_invoices", rec, IDS, today=TODAY)
    assert (
        map_record(c, "purchase_invoices", copy.deepcopy(rec), IDS, today=TODAY).content_hash
        == first.content_hash
    )
    changed = copy.deepcopy(rec)
    changed["purchaseInvoiceLines"][1]["quantity"] = 3
    assert map_record(c, "purchase_invoices", changed, IDS, today=TODAY).content_hash != first.content_hash
    renamed = copy.deepcopy(rec)
    renamed["purchaseInvoiceLines"][0]["description"] = "Desk, oak"
    assert map_record(c, "purchase_invoices", renamed, IDS, today=TODAY).content_hash != first.content_hash
    reordered = copy.deepcopy(rec)
    reordered["purchaseInvoiceLines"].reverse()  # same lines, other order in the payload: same issue
    assert map_record(c, "purchase_invoices", reordered, IDS, today=TODAY).content_hash == first.content_hash


def test_duedate_from_the_invoice_and_blank_dates() -> None:
    draft = map_record(cfg(), "purchase_invoices", invoice([_line(1)]), IDS, today=TODAY)
    assert draft.fields["duedate"] == "2026-12-01"
    blank = map_record(cfg(), "purchase_invoices", invoice([], dueDate="0001-01-01"), IDS, today=TODAY)
    assert blank.fields["duedate"] is None  # owned: an edit clears it
    assert due_date("purchase_orders", {"dueDate": "2026-01-01"}) is None  # orders have no due date
    order = map_record(
        cfg(), "purchase_orders", {"id": "o", "number": "1", "status": "Draft"}, IDS, today=TODAY
    )
    assert "duedate" not in order.fields
    assert "priority" not in draft.fields  # no rules: Jira's default priority


def test_priority_rules_first_match_wins() -> None:
    c = cfg(
        priority_rules=[
            {"priority": "Highest", "amount_at_least": 50000},
            {"priority": "High", "due_within_days": 7, "entities": ["purchase_invoices"]},
            {"priority": "Low", "amount_at_least": 0, "entities": ["purchase_orders"]},
        ]
    )

    def prio(rec: dict[str, Any], entity: str = "purchase_invoices") -> Any:
        return map_record(c, entity, rec, IDS, today=TODAY).fields.get("priority")

    assert prio(invoice([], totalAmountIncludingTax=50000, dueDate="2027-06-01")) == {"name": "Highest"}
    assert prio(invoice([], totalAmountIncludingTax=60000, dueDate="2026-11-26")) == {"name": "Highest"}
    assert prio(invoice([], dueDate="2026-12-02")) == {"name": "High"}  # 7 days away
    assert prio(invoice([], dueDate="2026-11-01")) == {"name": "High"}  # overdue
    assert prio(invoice([], dueDate="2026-12-03")) is None  # 8 days: no rule matches
    assert prio(invoice([], dueDate="0001-01-01")) is None
    order = {"id": "o", "number": "1", "status": "Draft", "totalAmountIncludingTax": 10}
    assert prio(order, "purchase_orders") == {"name": "Low"}
    with_prio = map_record(c, "purchase_invoices", invoice([], dueDate="2026-12-02"), IDS, today=TODAY)
    without = map_record(c, "purchase_invoices", invoice([], dueDate="2026-12-03"), IDS, today=TODAY)
    assert with_prio.content_hash != without.content_hash

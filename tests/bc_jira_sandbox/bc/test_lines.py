"""The sandbox's document lines: ``$expand`` with nested options, paging with ``$expand``, dimension set
lines, and a BC user's line change moving the header only when BC's aggregator would (see
``bc_jira_sandbox.bc.lines``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bc_jira.http import ClientError
from tests.support.bc_hook import sandbox_bc_hook

if TYPE_CHECKING:
    from bc_jira.hooks.business_central import BusinessCentralHook

SPEC = json.loads(
    (Path(__file__).resolve().parents[3] / "include/bc_jira_sandbox/bc-api-v2-entities.json").read_text()
)
LINE_FIELDS = {e: {p["name"] for p in SPEC["entities"][e]["properties"]} for e in SPEC["entities"]}
SELECT = "lineType,lineObjectNumber,description,quantity,unitCost,netAmount"


@pytest.fixture
def hook(sandbox: Any) -> BusinessCentralHook:
    return sandbox_bc_hook(sandbox)


def _invoices(hook: BusinessCentralHook, params: dict[str, str], **kw: Any) -> dict[str, Any]:
    return hook.client.get_json(
        f"companies({hook.settings.company_id})/purchaseInvoices", params=params, **kw
    )


def test_expand_with_nested_select_returns_only_the_selected_line_fields(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=5, invoices=12, orders=0)
    body = _invoices(hook, {"$select": "id,number", "$expand": f"purchaseInvoiceLines($select={SELECT})"})
    raw = sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
    assert len(body["value"]) == 12
    for rec in body["value"]:
        assert set(rec) == {"@odata.etag", "id", "number", "purchaseInvoiceLines"}
        assert rec["purchaseInvoiceLines"], rec["number"]  # every seeded invoice has lines
        for line in rec["purchaseInvoiceLines"]:
            assert set(line) == set(SELECT.split(","))
            assert line["lineType"] in ("Item", "Account")
    total = sum(len(r["purchaseInvoiceLines"]) for r in body["value"])
    full = _invoices(hook, {"$expand": "purchaseInvoiceLines"})["value"]
    assert total == sum(len(r["purchaseInvoiceLines"]) for r in full)
    for rec in full:  # without a nested $select: every field of the line entity, nothing else
        for line in rec["purchaseInvoiceLines"]:
            assert set(line) == LINE_FIELDS["purchaseInvoiceLines"]
            assert line["documentId"] == rec["id"]
    assert {r["id"] for r in raw} == {r["id"] for r in full}


def test_order_lines_use_direct_unit_cost_and_invoice_field_is_refused(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=5, invoices=0, orders=4)
    path = f"companies({hook.settings.company_id})/purchaseOrders"
    body = hook.client.get_json(
        path, params={"$expand": "purchaseOrderLines($select=directUnitCost,quantity)"}
    )
    assert all(
        set(ln) == {"directUnitCost", "quantity"} for r in body["value"] for ln in r["purchaseOrderLines"]
    )
    with pytest.raises(ClientError) as err:  # unitCost is the invoice line's name (bc-api.md 2.5)
        hook.client.get_json(path, params={"$expand": "purchaseOrderLines($select=unitCost)"})
    assert err.value.status == 400
    assert "Could not find a property named 'unitCost'" in str(err.value)


def test_dimension_set_lines_nested_in_lines(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=5, invoices=30, orders=0)
    expand = "purchaseInvoiceLines($select=sequence;$expand=dimensionSetLines($select=code,valueCode))"
    body = _invoices(hook, {"$select": "id,shortcutDimension1Code,shortcutDimension2Code", "$expand": expand})
    seen_with, seen_without = 0, 0
    for rec in body["value"]:
        want = [
            (code, value)
            for code, value in (
                ("DEPARTMENT", rec["shortcutDimension1Code"]),
                ("CUSTOMERGROUP", rec["shortcutDimension2Code"]),
            )
            if value
        ]
        for line in rec["purchaseInvoiceLines"]:
            dims = [(d["code"], d["valueCode"]) for d in line["dimensionSetLines"]]
            assert dims == want
            assert all(set(d) == {"code", "valueCode"} for d in line["dimensionSetLines"])
        seen_with += bool(want)
        seen_without += not want
    assert seen_with  # the seed has documents with dimensions
    assert seen_without  # and without


@pytest.mark.parametrize(
    ("expand", "message"),
    [
        ("purchaseInvoiceLines($select=nope)", "Could not find a property named 'nope'"),
        ("purchaseInvoiceLines($top=1)", "query option '$top' is not supported"),
        ("purchaseInvoiceLines($select=quantity", "'(' without ')'"),
        ("purchaseOrderLines", "Could not find a property named 'purchaseOrderLines'"),
        ("dimensionSetLines($expand=purchaseInvoiceLines)", "query option '$expand' is not supported"),
    ],
)
def test_bad_expand_is_a_400_naming_the_problem(
    sandbox: Any, hook: BusinessCentralHook, expand: str, message: str
) -> None:
    with pytest.raises(ClientError) as err:
        _invoices(hook, {"$expand": expand})
    assert err.value.status == 400
    assert message in str(err.value)


def test_paging_keeps_expand_in_the_next_link_and_lines_stay_with_their_header(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=5, invoices=7, orders=0)
    expand = "purchaseInvoiceLines($select=description,quantity)"
    first = _invoices(hook, {"$expand": expand}, headers={"Prefer": "odata.maxpagesize=3"})
    nxt = first["@odata.nextLink"]
    assert parse_qs(urlsplit(nxt).query)["$expand"] == [expand]
    pages = [first["value"]]
    while nxt:
        page = hook.client.get_json(nxt, headers={"Prefer": "odata.maxpagesize=3"})
        pages.append(page["value"])
        nxt = page.get("@odata.nextLink")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert all(r["purchaseInvoiceLines"] for p in pages for r in p)
    assert len({r["id"] for p in pages for r in p}) == 7


def _draft(sandbox: Any) -> dict[str, Any]:
    return next(
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Draft"
    )


def _lines(hook: BusinessCentralHook, inv_id: str) -> list[dict[str, Any]]:
    return hook.list_lines("purchaseInvoices", inv_id)


def test_amount_change_on_a_line_moves_the_header_and_notifies(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=3, invoices=6, orders=0)
    inv = _draft(sandbox)
    line = _lines(hook, inv["id"])[0]
    qty = line["quantity"] + 3
    out = sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {
            "entity": "purchaseInvoices",
            "id": inv["id"],
            "line": {"sequence": line["sequence"], "set": {"quantity": qty}},
        },
    )["records"][0]
    after = _lines(hook, inv["id"])[0]
    assert after["quantity"] == qty
    assert after["amountExcludingTax"] == round(qty * line["unitCost"], 2)
    assert out["lastModifiedDateTime"] > inv["lastModifiedDateTime"]
    assert out["totalAmountExcludingTax"] == round(
        sum(ln["amountExcludingTax"] for ln in _lines(hook, inv["id"])), 2
    )
    assert out["@odata.etag"] != inv["@odata.etag"]


def test_description_only_change_leaves_the_header_alone(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=3, invoices=6, orders=0)
    inv = _draft(sandbox)
    line = _lines(hook, inv["id"])[0]
    out = sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {
            "entity": "purchaseInvoices",
            "id": inv["id"],
            "line": {"sequence": line["sequence"], "set": {"description": "Renamed by a user"}},
        },
    )["records"][0]
    assert _lines(hook, inv["id"])[0]["description"] == "Renamed by a user"
    assert out["lastModifiedDateTime"] == inv["lastModifiedDateTime"]
    assert out["@odata.etag"] == inv["@odata.etag"]


def test_lines_of_a_posted_invoice_cannot_change(sandbox: Any) -> None:
    sandbox.reset(vendors=3, invoices=6, orders=0)
    posted = next(
        r
        for r in sandbox.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
        if r["status"] == "Open"
    )
    resp = requests.post(
        f"{sandbox.url}/_sandbox/bc/change",
        json={
            "entity": "purchaseInvoices",
            "id": posted["id"],
            "line": {"sequence": 10000, "set": {"quantity": 9}},
        },
        timeout=10,
    )
    assert resp.status_code == 400
    assert "has been posted" in resp.json()["error"]["message"]


def test_add_lines_appends_and_totals_follow(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=3, invoices=6, orders=0)
    inv = _draft(sandbox)
    before = _lines(hook, inv["id"])
    out = sandbox.control(
        "POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "id": inv["id"], "add_lines": 60}
    )["records"][0]
    after = _lines(hook, inv["id"])
    assert len(after) == len(before) + 60
    assert len({ln["sequence"] for ln in after}) == len(after)
    assert out["totalAmountExcludingTax"] == round(sum(ln["amountExcludingTax"] for ln in after), 2)

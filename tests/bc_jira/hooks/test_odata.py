"""The OData spelling of Business Central values: literals, ``$filter``, the enum codec (pure functions)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

from bc_jira.hooks.odata import build_filter, decode_enum, encode_enum, odata_datetime, odata_literal


def test_odata_datetime_literal() -> None:
    assert odata_datetime(datetime(2026, 11, 24, 10, 0, tzinfo=UTC)) == "2026-11-24T10:00:00Z"
    cet = timezone(timedelta(hours=1))
    assert odata_datetime(datetime(2026, 11, 24, 11, 0, 0, 530000, tzinfo=cet)) == "2026-11-24T10:00:00.53Z"
    assert odata_datetime("2026-11-24T10:00:00.123Z") == "2026-11-24T10:00:00.123Z"
    assert odata_datetime(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05Z"  # naive = UTC


def test_build_filter_and_literals() -> None:
    f = build_filter(
        "purchaseInvoices",
        since=datetime(2026, 11, 24, 10, tzinfo=UTC),
        until="2026-11-24T10:15:00Z",
        extra={"status": "Draft", "number": "O'Neil"},
    )
    assert f == (
        "lastModifiedDateTime gt 2026-11-24T10:00:00Z and "
        "lastModifiedDateTime le 2026-11-24T10:15:00Z and status eq 'Draft' and number eq 'O''Neil'"
    )
    assert build_filter("vendors", extra={"blocked": ""}) == "blocked eq '_x0020_'"
    assert (
        build_filter("purchaseOrders", extra="status eq 'Draft' or status eq 'Open'")
        == "(status eq 'Draft' or status eq 'Open')"
    )
    gid = str(uuid.uuid4())
    assert odata_literal("purchaseInvoices", "vendorId", gid) == gid
    assert odata_literal("purchaseInvoices", "pricesIncludeTax", True) == "true"


def test_enum_decode_encode() -> None:
    assert decode_enum("_x0020_") == ""
    assert decode_enum(" ") == ""
    assert decode_enum("In_x0020_Review") == "In Review"
    assert decode_enum("All") == "All"
    assert encode_enum("") == "_x0020_"
    assert encode_enum("In Review") == "In_x0020_Review"
    assert encode_enum("Payment") == "Payment"
    assert decode_enum(None) is None


def test_expand_clause_nests_select_and_expand_like_bc_reads_them() -> None:
    from bc_jira.hooks.odata import expand_clause
    from bc_jira.sync.extract import lines_expand

    assert expand_clause("purchaseInvoiceLines", ["a", "b"]) == "purchaseInvoiceLines($select=a,b)"
    assert (
        expand_clause("purchaseOrderLines", ["q"], {"dimensionSetLines": ["code", "valueCode"]})
        == "purchaseOrderLines($select=q;$expand=dimensionSetLines($select=code,valueCode))"
    )
    assert lines_expand("vendors") is None
    inv = lines_expand("purchase_invoices") or ""
    assert inv.startswith("purchaseInvoiceLines($select=sequence,lineType,")
    assert ",unitCost;$expand=dimensionSetLines($select=code,valueCode))" in inv


def test_expanded_lines_are_decoded_too() -> None:
    from bc_jira.hooks.odata import decode_record

    rec = decode_record(
        "purchaseInvoices",
        {"status": "In_x0020_Review", "purchaseInvoiceLines": [{"lineType": "Fixed_x0020_Asset"}]},
    )
    assert rec == {"status": "In Review", "purchaseInvoiceLines": [{"lineType": "Fixed Asset"}]}

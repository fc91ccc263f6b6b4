from __future__ import annotations

import copy

import pytest

from bc_jira import adf
from bc_jira.config import ConfigError, FieldNames, parse_config
from bc_jira.mapping import (
    content_hash,
    create_payload,
    edit_payload,
    field_ids,
    map_record,
    render_summary,
    resolved_comment,
)

DISCOVERED = {
    "BC Record Id": "customfield_10001",
    "BC Document No.": "customfield_10002",
    "BC Vendor": "customfield_10003",
    "BC Amount": "customfield_10004",
    "BC Currency": "customfield_10005",
    "BC Status": "customfield_10006",
    "Story Points": "customfield_10099",
}
IDS = field_ids(FieldNames(), DISCOVERED)

INVOICE = {
    "@odata.etag": 'W/"abc"',
    "id": "5d115c9c-44e3-ea11-bb43-000d3a2feca1",
    "number": "108001",
    "invoiceDate": "2026-11-01",
    "dueDate": "2026-12-01",
    "vendorInvoiceNumber": "INV-77",
    "vendorNumber": "V0010",
    "vendorName": "Fabrikam, Inc.",
    "currencyCode": "USD",
    "purchaser": "AH",
    "totalAmountExcludingTax": 1000,
    "totalTaxAmount": 234.5,
    "totalAmountIncludingTax": 1234.5,
    "status": "Draft",
    "lastModifiedDateTime": "2026-11-20T10:00:00Z",
}
VENDOR = {
    "id": "v-1",
    "number": "V0010",
    "displayName": "Fabrikam",
    "blocked": "Payment",
    "balance": 10,
    "currencyCode": "",
    "lastModifiedDateTime": "2026-11-20T10:00:00Z",
}


def cfg(**extra):
    return parse_config(
        {
            "project_key": "FIN",
            "bc_web_client_url": "https://bc.example.com/t/production",
            "labels": ["bc-jira"],
            **extra,
        }
    )


def test_field_ids_reports_every_missing_field() -> None:
    with pytest.raises(ConfigError) as exc:
        field_ids(FieldNames(), {"BC Record Id": "customfield_1"})
    assert len(exc.value.problems) == 5
    assert "bc_jira_connect" in str(exc.value)


def test_invoice_maps_to_owned_fields() -> None:
    c = cfg(entities={"purchase_invoices": {"labels": ["invoice"]}})
    d = map_record(c, "purchase_invoices", INVOICE, IDS)
    f = d.fields
    assert f["summary"] == "Purchase invoice 108001: Fabrikam, Inc. 1,234.50 USD"
    assert f["customfield_10001"] == INVOICE["id"]
    assert f["customfield_10002"] == "108001"
    assert f["customfield_10003"] == "V0010 - Fabrikam, Inc."
    assert f["customfield_10004"] == 1234.5
    assert f["customfield_10005"] == "USD"
    assert f["customfield_10006"] == "Draft"
    assert "customfield_10099" not in f
    assert d.labels == ("bc-jira", "invoice")
    assert d.needs_human is True
    assert adf.validate(f["description"]) == []
    texts = str(f["description"])
    assert "INV-77" in texts
    assert "Open in Business Central" in texts
    assert "page=51" in texts
    assert "filter=%27No.%27%20IS%20%27108001%27" in texts


def test_create_and_edit_payloads() -> None:
    c = cfg()
    d = map_record(c, "vendors", VENDOR, IDS)
    body = create_payload(c, d)["fields"]
    assert body["project"] == {"key": "FIN"}
    assert body["issuetype"] == {"name": "Vendor"}
    assert body["labels"] == ["bc-jira"]
    assert "customfield_10005" not in body  # blank currency omitted on create
    edit = edit_payload(d)
    assert edit["fields"]["customfield_10005"] is None  # cleared on edit
    assert "labels" not in edit["fields"]
    assert edit["update"] == {"labels": [{"add": "bc-jira"}]}
    assert "project" not in edit["fields"]
    assert "issuetype" not in edit["fields"]


def test_hash_is_stable_and_tracks_only_owned_fields() -> None:
    c = cfg()
    h1 = map_record(c, "purchase_invoices", INVOICE, IDS).content_hash
    rec = copy.deepcopy(INVOICE)
    rec["lastModifiedDateTime"] = "2026-11-21T00:00:00Z"
    rec["@odata.etag"] = 'W/"zzz"'
    rec["shipToName"] = "not shown anywhere"
    assert map_record(c, "purchase_invoices", rec, IDS).content_hash == h1
    rec["totalAmountIncludingTax"] = 99
    assert map_record(c, "purchase_invoices", rec, IDS).content_hash != h1
    # key order and label order do not matter
    assert content_hash({"a": 1, "b": 2}, ("x", "y")) == content_hash({"b": 2, "a": 1}, ("y", "x"))


def test_posted_invoice_stops_needing_a_human_and_links_posted_page() -> None:
    rec = dict(INVOICE, status="Open", number="PPI-1")
    d = map_record(cfg(), "purchase_invoices", rec, IDS)
    assert d.needs_human is False
    assert "page=138" in str(d.fields["description"])
    comment = resolved_comment("purchase_invoices", rec)
    assert adf.validate(comment) == []
    assert "PPI-1" in str(comment)


def test_vendor_status_and_unblocked() -> None:
    d = map_record(cfg(), "vendors", VENDOR, IDS)
    assert d.fields["customfield_10006"] == "Blocked: Payment"
    assert d.fields["summary"] == "Blocked vendor V0010: Fabrikam (Blocked: Payment)"
    un = map_record(cfg(), "vendors", dict(VENDOR, blocked="_x0020_"), IDS)
    assert un.needs_human is False
    assert un.fields["customfield_10006"] == "Not blocked"


def test_assignee_rules_account_and_email() -> None:
    c = cfg(
        assignees=[
            {"purchaser": "AH", "email": "ap@example.com"},
            {"vendor_number": "V0010", "account_id": "acc-vendor"},
        ]
    )
    # email rule first but unresolved -> falls through to vendor rule
    assert map_record(c, "purchase_invoices", INVOICE, IDS).fields["assignee"] == {"accountId": "acc-vendor"}
    d = map_record(c, "purchase_invoices", INVOICE, IDS, users={"AP@example.com": "acc-ap"})
    assert d.fields["assignee"] == {"accountId": "acc-ap"}
    assert "assignee" not in map_record(cfg(), "purchase_invoices", INVOICE, IDS).fields


def test_summary_template_and_limits() -> None:
    assert render_summary("{number} {missing}", "purchase_invoices", {"number": "1"}) == "1"
    long = render_summary("{vendorName}", "purchase_invoices", {"vendorName": "x" * 400, "number": "1"})
    assert len(long) == 254
    assert render_summary("{vendorName}", "purchase_invoices", {"number": "7"}) == "Purchase invoice 7"
    assert render_summary("{status}", "purchase_orders", {"status": "In_x0020_Review"}) == "In Review"
    assert "\n" not in render_summary("{vendorName}", "purchase_invoices", {"vendorName": "a\nb"})


def test_no_web_client_url_means_no_link() -> None:
    c = parse_config({"project_key": "FIN"})
    d = map_record(c, "purchase_orders", dict(INVOICE, status="In_x0020_Review"), IDS)
    assert "Open in Business Central" not in str(d.fields["description"])
    assert d.needs_human is True
    assert d.fields["summary"].startswith("Purchase order 108001")

"""The sandbox's BC document attachments over real HTTP: metadata, $expand with nested $select, the bytes."""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Any

import pytest

from bc_jira.http import ClientError, NotFoundError
from tests.support.bc_hook import sandbox_bc_hook

if TYPE_CHECKING:
    from bc_jira.hooks.business_central import BusinessCentralHook

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DOC_FIELDS = {
    "id",
    "fileName",
    "byteSize",
    "parentType",
    "parentId",
    "lineNumber",
    "documentFlowSales",
    "documentFlowPurchase",
    "lastModifiedDateTime",
    "attachmentContent@odata.mediaEditLink",
    "attachmentContent@odata.mediaReadLink",
}


@pytest.fixture
def hook(sandbox: Any) -> BusinessCentralHook:
    return sandbox_bc_hook(sandbox)


def _with_files(hook: BusinessCentralHook) -> list[dict[str, Any]]:
    expand = "documentAttachments($select=id,fileName,byteSize)"
    invoices = list(hook.iter_records("purchaseInvoices", expand=expand, select=["id", "number"]))
    return [i for i in invoices if i["documentAttachments"]]


def test_some_seeded_invoices_carry_real_pdfs_and_pngs(hook: BusinessCentralHook) -> None:
    invoices = list(hook.iter_records("purchaseInvoices", expand="documentAttachments"))
    with_files = [i for i in invoices if i["documentAttachments"]]
    assert 0 < len(with_files) < len(invoices)  # some, not all
    names = [a["fileName"] for i in with_files for a in i["documentAttachments"]]
    assert any(n.endswith(".pdf") for n in names)
    assert any(n.endswith(".png") for n in names)
    for inv in with_files:
        for att in inv["documentAttachments"]:
            assert set(att) == DOC_FIELDS
            assert GUID.match(att["id"])
            assert att["parentId"] == inv["id"]
            assert att["parentType"] == "Purchase_x0020_Invoice"  # the EDM member name of "Purchase Invoice"
            data = hook.client.request("GET", att["attachmentContent@odata.mediaReadLink"]).content
            assert len(data) == att["byteSize"]
            if att["fileName"].endswith(".pdf"):
                assert data.startswith(b"%PDF-1.4")
                assert data.rstrip().endswith(b"%%EOF")
                xref = int(data.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
                assert data[xref:].startswith(b"xref")  # a real PDF: the trailer points at its xref table
            else:
                assert data.startswith(b"\x89PNG\r\n\x1a\n")
                length = int.from_bytes(data[8:12], "big")
                ihdr = data[12 : 16 + length]
                assert int.from_bytes(data[16 + length : 20 + length], "big") == zlib.crc32(ihdr)


def test_nested_select_and_two_expands_combine(hook: BusinessCentralHook) -> None:
    """``$expand=a($select=…),b($select=…)``: both navigations in one request, each with its own fields."""
    expand = "purchaseInvoiceLines($select=sequence,description),documentAttachments($select=id,fileName)"
    rec = next(iter(hook.iter_records("purchaseInvoices", expand=expand, top=1)))
    assert rec["purchaseInvoiceLines"]
    assert all(set(ln) == {"sequence", "description"} for ln in rec["purchaseInvoiceLines"])
    assert all(set(a) == {"id", "fileName"} for a in rec["documentAttachments"])


def test_unknown_navigation_or_field_is_a_400_like_bc(hook: BusinessCentralHook) -> None:
    with pytest.raises(ClientError) as exc:
        list(hook.iter_records("purchaseInvoices", expand="documentAttachment"))
    assert exc.value.status == 400
    assert "Could not find a property named 'documentAttachment'" in str(exc.value)
    with pytest.raises(ClientError):
        list(hook.iter_records("purchaseInvoices", expand="documentAttachments($select=nope)"))
    with pytest.raises(ClientError):
        list(hook.iter_records("vendors", expand="documentAttachments"))


def test_single_attachment_collection_filter_and_navigation(hook: BusinessCentralHook) -> None:
    inv = _with_files(hook)[0]
    att = inv["documentAttachments"][0]
    one = hook.client.get_json(f"companies({hook.settings.company_id})/documentAttachments({att['id']})")
    assert one["fileName"] == att["fileName"]
    assert one["byteSize"] == att["byteSize"]
    listed = hook.client.get_json(
        f"companies({hook.settings.company_id})/documentAttachments",
        params={"$filter": f"parentId eq {inv['id']}"},
    )["value"]
    assert {a["id"] for a in listed} == {a["id"] for a in inv["documentAttachments"]}
    nav = hook.client.get_json(
        f"companies({hook.settings.company_id})/purchaseInvoices({inv['id']})/documentAttachments"
    )["value"]
    assert {a["id"] for a in nav} == {a["id"] for a in inv["documentAttachments"]}
    with pytest.raises(NotFoundError) as exc:
        hook.client.get_json(
            f"companies({hook.settings.company_id})/documentAttachments(00000000-0000-0000-0000-000000000001)"
        )
    assert exc.value.code == "Internal_RecordNotFound"


def test_older_attachments_entity_and_an_environment_without_document_attachments(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    inv = next(iter(hook.iter_records("purchaseInvoices", top=1)))
    row = sandbox.control(
        "POST", "/_sandbox/bc/attachments", {"invoice": inv["id"], "fileName": "in.pdf", "incoming": True}
    )
    rec = hook.get_record("purchaseInvoices", inv["id"], expand="attachments($select=id,fileName,byteSize)")
    assert [a["fileName"] for a in rec["attachments"]] == ["in.pdf"]
    assert row["id"] not in {a["id"] for a in rec.get("documentAttachments", [])}
    data = hook.client.request(
        "GET", f"companies({hook.settings.company_id})/attachments({row['id']})/attachmentContent"
    ).content
    assert data.startswith(b"%PDF")
    assert len(data) == row["byteSize"]

    sandbox.control("POST", "/_sandbox/bc/attachments", {"document_attachments_api": False})
    with pytest.raises(ClientError) as exc:
        hook.get_record("purchaseInvoices", inv["id"], expand="documentAttachments")
    assert exc.value.status == 400
    with pytest.raises(NotFoundError):
        hook.client.get_json(f"companies({hook.settings.company_id})/documentAttachments")
    assert hook.get_record("purchaseInvoices", inv["id"], expand="attachments")["attachments"]


def test_control_attach_pads_a_pdf_to_the_size_asked(sandbox: Any, hook: BusinessCentralHook) -> None:
    inv = next(iter(hook.iter_records("purchaseInvoices", top=1)))
    row = sandbox.control(
        "POST", "/_sandbox/bc/attachments", {"invoice": inv["number"], "fileName": "big.pdf", "size": 50_000}
    )
    assert row["byteSize"] >= 50_000
    data = hook.client.request(
        "GET", f"companies({hook.settings.company_id})/documentAttachments({row['id']})/attachmentContent"
    ).content
    assert len(data) == row["byteSize"]
    assert data.startswith(b"%PDF-1.4")

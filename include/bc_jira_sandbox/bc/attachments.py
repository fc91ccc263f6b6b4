"""BC document attachments: the ``documentAttachments`` entity, the older ``attachments`` one, and the files.

Sources (Microsoft Learn, ``MicrosoftDocs/dynamics365smb-devitpro-pb``):

- ``api-reference/v2.0/resources/dynamics_documentattachment.md``: properties ``id``, ``fileName``,
  ``byteSize``, ``attachmentContent`` (stream), ``parentType`` (``NAV.attachmentEntityBufferDocumentType``:
  " ", "Journal", "Sales Order", "Sales Quote", "Sales Credit Memo", "Sales Invoice", "Purchase Invoice"),
  ``parentId``, ``lineNumber``, ``documentFlowSales``, ``documentFlowPurchase``, ``lastModifiedDateTime``;
  ``GET businesscentralPrefix/companies({id})/documentAttachments({id})``.
- ``api-reference/v2.0/resources/dynamics_attachment.md`` (the older ``attachments``, an Incoming Document):
  ``id``, ``parentId``, ``fileName``, ``byteSize``, ``attachmentContent``, ``lastModifiedDateTime``,
  ``parentType``; ``api/dynamics_attachment_get.md`` lists them with ``$filter=parentId eq {id}``.
- ``api/dynamics_attachment_update.md``: the bytes live at ``…/attachments({id})/attachmentContent``.
- ``purchaseInvoices`` navigation properties include ``attachments`` and ``documentAttachments``
  (``reference/bc-api.md`` 2.2, from page 30042), so OData ``$expand`` reaches them, with nested ``$select``.
- A stream property is represented in JSON by ``attachmentContent@odata.mediaReadLink`` (OData JSON format
  4.01, section 8.3 "Stream property"); the same annotation appears in client code written against real BC.
- Adding an attachment in BC writes the Document Attachment table, not the invoice, so it does not change
  the invoice's ``lastModifiedDateTime`` [inference: SystemModifiedAt is per table].
"""

from __future__ import annotations

import random
import struct
import zlib
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.bc.base import BcBase
from bc_jira_sandbox.bc.entities import ENTITY_TYPE, FIELDS, BcError, ts

if TYPE_CHECKING:
    from datetime import datetime

ATTACHMENT_SETS = ("documentAttachments", "attachments")
PARENT_TYPES = {"purchaseInvoices": "Purchase_x0020_Invoice"}
CONTENT = "attachmentContent"
_COMMON = [
    ("id", "string", "uuid"),
    ("parentId", "string", "uuid"),
    ("fileName", "string", None),
    ("byteSize", "integer", None),
    ("parentType", "string", None),
    ("lastModifiedDateTime", "string", "date-time"),
]
_DOC_ONLY = [("lineNumber", "integer", None), ("documentFlowSales", "boolean", None)]
_DOC_ONLY += [("documentFlowPurchase", "boolean", None)]


_EDM = {
    "uuid": "Edm.Guid",
    "date-time": "Edm.DateTimeOffset",
    "integer": "Edm.Int32",
    "boolean": "Edm.Boolean",
}


def _props(rows: list[tuple[str, str, str | None]]) -> dict[str, dict[str, Any]]:
    return {
        n: {
            "name": n,
            "json_type": t,
            "edm_type": "Edm.Stream" if n == CONTENT else _EDM.get(f or t, "Edm.String"),
            **({"format": f} if f else {}),
        }
        for n, t, f in [*rows, (CONTENT, "string", None)]
    }


# Registered beside the vendored entities so $select/$filter check names the way they do for the others.
FIELDS.setdefault("documentAttachments", _props(_COMMON + _DOC_ONLY))
FIELDS.setdefault("attachments", _props(_COMMON))
ENTITY_TYPE.setdefault("documentAttachments", "documentAttachment")
ENTITY_TYPE.setdefault("attachments", "attachment")


# -- small real files -------------------------------------------------------------------------------------
def minimal_pdf(title: str, size: int = 0) -> bytes:
    """A valid one-page PDF 1.4 (correct xref offsets) showing ``title``; at least ``size`` bytes (a comment
    in the content stream pads it)."""
    text = title.replace("\\", "").replace("(", "").replace(")", "")[:80]
    plain = _pdf(text, 0)
    return plain if size <= len(plain) else _pdf(text, size - len(plain))


def _pdf(text: str, pad: int) -> bytes:
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    if pad > 0:
        stream += b"\n%" + b"0" * pad
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def minimal_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid truecolour PNG of one colour (real chunks and CRCs)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class AttachmentsMixin(BcBase):
    """Attachments of :class:`BcState` (``attachment_rows``: id -> row; ``attachment_bytes``: id -> file)."""

    attachment_rows: dict[str, dict[str, Any]]
    attachment_bytes: dict[str, bytes]
    document_attachments_api: bool

    def reset_attachments(self) -> None:
        self.attachment_rows = {}
        self.attachment_bytes = {}
        # False: an environment without the documentAttachments API page (only the older attachments)
        self.document_attachments_api = True

    def add_attachment(
        self,
        parent: dict[str, Any],
        file_name: str,
        content: bytes,
        when: datetime,
        *,
        incoming: bool = False,
    ) -> dict[str, Any]:
        """Attach ``content`` to ``parent`` (a purchase invoice); ``incoming``: an Incoming Document
        (the older ``attachments`` entity) instead of a Document Attachment."""
        rng = random.Random(f"attachment-{parent['id']}-{len(self.attachment_rows)}-{file_name}")
        att_id = str(_uuid(rng))
        siblings = [r for r in self.attachment_rows.values() if r["parentId"] == parent["id"]]
        row = {
            "id": att_id,
            "fileName": file_name,
            "byteSize": len(content),
            "parentType": PARENT_TYPES["purchaseInvoices"],
            "parentId": parent["id"],
            "lineNumber": 10000 * (len(siblings) + 1),
            "documentFlowSales": False,
            "documentFlowPurchase": False,
            "lastModifiedDateTime": ts(when),
            "_set": "attachments" if incoming else "documentAttachments",
        }
        self.attachment_rows[att_id] = row
        self.attachment_bytes[att_id] = content
        return row

    def seed_attachments(self, inv: dict[str, Any], when: datetime) -> None:
        """Some invoices come with the vendor's document: a PDF, sometimes a scanned PNG too (own RNG, so
        seeding attachments leaves every other seeded value as it was)."""
        rng = random.Random(f"attachments-{inv['id']}")
        if rng.random() >= 0.3:
            return
        number = inv.get("vendorInvoiceNumber") or inv["number"]
        self.add_attachment(inv, f"{number}.pdf", minimal_pdf(f"Invoice {number}"), when)
        if rng.random() < 0.4:
            colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
            png = minimal_png(rng.randint(8, 40), rng.randint(8, 40), colour)
            self.add_attachment(inv, f"scan-{number}.png", png, when)

    def attachments_of(self, entity_set: str, parent_id: str) -> list[dict[str, Any]]:
        self.check_attachment_set(entity_set)
        rows = getattr(self, "attachment_rows", {})
        return [r for r in rows.values() if r["parentId"] == parent_id and r["_set"] == entity_set]

    def attachment(self, entity_set: str, att_id: str) -> dict[str, Any]:
        self.check_attachment_set(entity_set)
        row = getattr(self, "attachment_rows", {}).get(att_id.lower())
        if row is None or row["_set"] != entity_set:
            label = "Document Attachment" if entity_set == "documentAttachments" else "Incoming Document"
            raise BcError(
                404,
                "Internal_RecordNotFound",
                f"The {label} does not exist. Identification fields and values: Id='{att_id}'",
            )
        return row

    def check_attachment_set(self, entity_set: str) -> None:
        if entity_set == "documentAttachments" and not getattr(self, "document_attachments_api", True):
            raise BcError(
                404,
                "BadRequest_NotFound",
                "No HTTP resource was found that matches the request URI 'documentAttachments'.",
            )

    def attachment_json(
        self, entity_set: str, row: dict[str, Any], select: list[str] | None, base: str
    ) -> dict[str, Any]:
        names = [n for n in FIELDS[entity_set] if n != CONTENT]
        out = {k: row[k] for k in (select or names) if k != CONTENT}
        if not select or CONTENT in select:
            link = f"{base}/{entity_set}({row['id']})/{CONTENT}"
            out[f"{CONTENT}@odata.mediaEditLink"] = link
            out[f"{CONTENT}@odata.mediaReadLink"] = link
        return out


def _uuid(rng: random.Random) -> str:
    import uuid

    return str(uuid.UUID(int=rng.getrandbits(128), version=4))

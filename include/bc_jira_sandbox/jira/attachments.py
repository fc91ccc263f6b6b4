"""Jira issue attachments: upload (multipart, XSRF header, size limit), metadata, content, the issue field.

Sources (the official OpenAPI document, ``specs/jira-platform-openapi-v3.json``):

- ``POST /rest/api/3/issue/{issueIdOrKey}/attachments`` (addAttachment): "Attachments are posted as
  multipart/form-data"; "The request must have a ``X-Atlassian-Token: no-check`` header, if not it is
  blocked"; "The name of the multipart/form-data parameter that contains the attachments must be
  ``file``"; 200 answers an array of ``Attachment`` (id, filename, size, mimeType, content, self, created,
  author, thumbnail); 413 when "the attachments exceed the maximum attachment size for issues", "more than
  60 files are requested to be uploaded" or the per-issue limit is breached; 404 for an unknown issue.
- Jira blocks a request without the header with 403 and the text "XSRF check failed" (its XSRF filter runs
  before the resource; https://developer.atlassian.com/cloud/jira/platform/rest/v3/intro/#special-headers).
- ``GET /rest/api/3/attachment/{id}`` (getAttachment) -> ``AttachmentMetadata``;
  ``GET /rest/api/3/attachment/content/{id}`` (getAttachmentContent): ``redirect`` (default true) answers
  303 to the file, ``redirect=false`` the bytes; ``GET /rest/api/3/attachment/meta`` ->
  ``{"enabled", "uploadLimit"}``.
- Adding an attachment updates the issue and sends ``jira:issue_updated`` with a changelog item of field
  "Attachment" (https://developer.atlassian.com/cloud/jira/platform/webhooks/, issue_updated).
"""

from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

from starlette.datastructures import UploadFile

from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import API, JiraError, jira_ts

if TYPE_CHECKING:
    from fastapi import Request

    from bc_jira_sandbox.core import Sandbox

MAX_FILES = 60  # addAttachment 413: "more than 60 files are requested to be uploaded"
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024  # sandbox default; POST /_sandbox/jira/options attachment_max_bytes


async def read_files(sb: Sandbox, request: Request) -> list[tuple[str, str | None, bytes]]:
    """The ``file`` parts of a multipart upload as (filename, content type, bytes); Jira's refusals."""
    if request.headers.get("x-atlassian-token", "").lower() != "no-check":
        raise JiraError(403, ["XSRF check failed"])
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        # JAX-RS answers a body of another media type 415 (undocumented for this operation in the spec)
        raise JiraError(415, ["Attachments must be posted as multipart/form-data."])
    limit = sb.jira.attachment_limit()
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024 * MAX_FILES:
        raise JiraError(413, [f"The attachments exceed the maximum attachment size ({limit} bytes)."])
    try:
        form = await request.form(max_files=MAX_FILES + 1)
    except Exception:  # noqa: BLE001 - a malformed body is the client's error, never a 5xx
        raise JiraError(400, ["The multipart/form-data body could not be read."]) from None
    # A body without a ``file`` part is answered 200 with an empty list, not an error (a known Jira trait:
    # uploads under another part name "succeed" with []): a client must check what it got back.
    parts = [p for p in form.getlist("file") if isinstance(p, UploadFile)]
    if len(parts) > MAX_FILES:
        raise JiraError(413, [f"More than {MAX_FILES} files are requested to be uploaded."])
    out = []
    for part in parts:
        data = await part.read()
        if len(data) > limit:
            raise JiraError(
                413, [f"The file '{part.filename}' exceeds the maximum attachment size ({limit} bytes)."]
            )
        out.append((part.filename or "attachment", part.content_type, data))
    return out


class AttachmentsMixin(JiraBase):
    """Attachments of :class:`JiraState`: ``rec["attachments"]`` per issue, bytes in ``attachment_bytes``."""

    def attachment_limit(self) -> int:
        return int(self.__dict__.get("attachment_max_bytes", DEFAULT_UPLOAD_LIMIT))

    def add_attachments(
        self, rec: dict[str, Any], files: list[tuple[str, str | None, bytes]], actor: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """Store the files on the issue (all or none: the checks ran before) and answer their JSON."""
        store: dict[str, bytes] = self.__dict__.setdefault("attachment_bytes", {})
        if not files:
            return []
        self._touch(rec)
        added = []
        for name, ctype, data in files:
            next_id = int(self.__dict__.get("next_attachment_id", 10000))
            self.__dict__["next_attachment_id"] = next_id + 1
            mime = ctype if ctype and ctype != "application/octet-stream" else None
            att = {
                "id": str(next_id),
                "filename": name,
                "size": len(data),
                "mimeType": mime or mimetypes.guess_type(name)[0] or "application/octet-stream",
                "created": self.sb.now(),
                "author": actor["accountId"],
            }
            store[att["id"]] = data
            rec.setdefault("attachments", []).append(att)
            added.append(att)
        items = [
            {"field": "Attachment", "fieldId": "attachment", "fieldtype": "jira"}
            | {"to": a["id"], "toString": a["filename"]}
            for a in added
        ]
        self._fire(rec, "jira:issue_updated", "issue_updated", actor, items)
        return [self.attachment_json(a) for a in added]

    def attachment_json(self, att: dict[str, Any]) -> dict[str, Any]:
        out = {
            "self": self.url(f"{API}/attachment/{att['id']}"),
            "id": att["id"],
            "filename": att["filename"],
            "author": self.user_json(self.user(att["author"]), details=True),
            "created": jira_ts(att["created"]),
            "size": att["size"],
            "mimeType": att["mimeType"],
            "content": self.url(f"{API}/attachment/content/{att['id']}"),
        }
        if att["mimeType"].startswith("image/"):
            out["thumbnail"] = self.url(f"{API}/attachment/thumbnail/{att['id']}")
        return out

    def attachments_json(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.attachment_json(a) for a in rec.get("attachments") or []]

    def find_attachment(self, att_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the issue, the attachment) of ``att_id``; 404 like Jira otherwise."""
        for rec in self.issues.values():
            for att in rec.get("attachments") or []:
                if att["id"] == att_id:
                    return rec, att
        raise JiraError(404, ["The attachment was not found."])

    def attachment_content(self, att_id: str) -> bytes:
        self.find_attachment(att_id)
        return self.__dict__.get("attachment_bytes", {})[att_id]

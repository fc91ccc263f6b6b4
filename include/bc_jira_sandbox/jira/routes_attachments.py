"""Jira REST v3 attachment routes (sources in :mod:`bc_jira_sandbox.jira.attachments`)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from bc_jira_sandbox.jira.api import READ, UPLOAD, Call, JiraReply, JiraRoute
from bc_jira_sandbox.jira.catalog import API

api = APIRouter(route_class=JiraRoute)


@api.post(f"{API}/issue/{{issueIdOrKey}}/attachments")
def add_attachment(issueIdOrKey: str, call: Call = UPLOAD) -> JiraReply:
    rec = call.jira.issue(issueIdOrKey)
    return JiraReply(200, call.jira.add_attachments(rec, call.body, call.actor))


@api.get(f"{API}/attachment/meta")
def attachment_meta(call: Call = READ) -> JiraReply:
    return JiraReply(200, {"enabled": True, "uploadLimit": call.jira.attachment_limit()})


@api.get(f"{API}/attachment/content/{{id}}")
def attachment_content(id: str, call: Call = READ) -> Response:
    """``redirect`` (default true): 303 to the file, as Jira Cloud answers; ``redirect=false``: the bytes."""
    _, att = call.jira.find_attachment(id)
    if call.request.query_params.get("redirect", "true").lower() != "false":
        return RedirectResponse(f"{call.request.url.path}?redirect=false", status_code=303)
    return Response(call.jira.attachment_content(id), media_type=att["mimeType"])


@api.get(f"{API}/attachment/{{id}}")
def get_attachment(id: str, call: Call = READ) -> JiraReply:
    """``AttachmentMetadata``: unlike the ``Attachment`` of an upload answer, its ``id`` is an integer."""
    _, att = call.jira.find_attachment(id)
    return JiraReply(200, call.jira.attachment_json(att) | {"id": int(att["id"])})

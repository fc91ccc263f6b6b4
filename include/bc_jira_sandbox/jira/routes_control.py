"""``/_sandbox/jira`` control routes: what a Jira user or admin does by hand (transitions, admin webhooks,
screens, field types, options), and views for tests and the demo (issues, deliveries)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox.deps import SANDBOX
from bc_jira_sandbox.jira.catalog import (
    _KEEP,
    CUSTOM_TYPES,
    EXPIRATION_DATE_FORMATS,
    ISSUE_TYPES,
    SCREEN_SYSTEM_FIELDS,
    STATUSES,
    JiraError,
)

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

router = APIRouter(tags=["sandbox control"])


# -- sandbox control -------------------------------------------------------------------------------------
@router.post("/_sandbox/jira/transition")
def control_transition(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """Move an issue as a user would (Alice Approver by default) and fire the webhooks."""
    with sb.lock:
        j = sb.jira
        try:
            rec = j.issue(str(body.get("issue", "")))
        except JiraError as exc:
            return JSONResponse(exc.body, status_code=404)
        target = j.status(str(body.get("to", "")))
        if target is None:
            return JSONResponse(
                {"error": f"unknown status {body.get('to')!r}; one of {[s[1] for s in STATUSES]}"},
                status_code=400,
            )
        actor = j.user(body["user"]) if body.get("user") else j.users[1]
        if actor is None:
            return JSONResponse({"error": "unknown user accountId"}, status_code=400)
        if target[0] != rec["fields"]["status"]:
            j._move(rec, target, actor)
            sb.mark_dirty()
        return JSONResponse({"key": rec["key"], "id": rec["id"], "status": target[1]})


@router.post("/_sandbox/jira/edit")
def control_edit(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """Edit an issue as a person would (Alice Approver by default): ``{"issue", "fields"?, "update"?,
    "user"?}``, applied exactly like ``PUT /rest/api/3/issue/{issueIdOrKey}`` (spec editIssue: the same
    field checks, edit screen and ADF rules, a 400 with every field error and nothing changed), and the
    ``jira:issue_updated`` webhooks fire with that user as the actor."""
    with sb.lock:
        j = sb.jira
        try:
            rec = j.issue(str(body.get("issue", "")))
        except JiraError as exc:
            return JSONResponse(exc.body, status_code=404)
        actor = j.user(body["user"]) if body.get("user") else j.users[1]
        if actor is None:
            return JSONResponse({"error": "unknown user accountId"}, status_code=400)
        edit = {k: body[k] for k in ("fields", "update") if k in body}
        try:
            j.edit(rec, edit, actor)
        except JiraError as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        sb.mark_dirty()
        return JSONResponse({"key": rec["key"], "id": rec["id"]})


@router.get("/_sandbox/jira/issues")
def control_issues(sb: Sandbox = SANDBOX) -> list[dict[str, Any]]:
    """Every issue, current state, no search lag (tests and the demo)."""
    with sb.lock:
        j = sb.jira
        return [j.issue_json(rec, "*all") | {"comments": len(rec["comments"])} for rec in j.issues.values()]


@router.post("/_sandbox/jira/admin-webhooks")
def control_admin_webhook(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """Create an admin webhook as a Jira admin would (Settings > System > WebHooks, or
    ``POST /rest/webhooks/1.0/webhook``): ``{"url", "events"?, "jqlFilter"?, "secret"?}``. With a
    secret its deliveries carry ``X-Hub-Signature: sha256=<hex HMAC of the body>``
    (https://developer.atlassian.com/cloud/jira/platform/webhooks, "Secure admin webhooks"); admin
    webhooks do not expire. The secret is never shown again (like Jira)."""
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return JSONResponse({"error": "url (http or https) is required"}, status_code=400)
    events = body.get("events") or ["jira:issue_updated"]
    jql = body.get("jqlFilter") or ""
    with sb.lock:
        j = sb.jira
        if jql:
            why = j.webhook_jql_error(jql)
            if why:
                return JSONResponse({"error": why}, status_code=400)
        wid = j.next_admin_webhook_id
        j.next_admin_webhook_id += 1
        j.admin_webhooks[wid] = {
            "id": wid,
            "url": url,
            "events": list(events),
            "jqlFilter": jql,
            "secret": body.get("secret") or None,
        }
        sb.mark_dirty()
    return JSONResponse({"id": wid, "url": url, "events": list(events), "jqlFilter": jql}, status_code=201)


@router.delete("/_sandbox/jira/admin-webhooks/{wid}")
def control_admin_webhook_delete(wid: int, sb: Sandbox = SANDBOX) -> Response:
    with sb.lock:
        sb.jira.admin_webhooks.pop(int(wid), None)
        sb.mark_dirty()
    return Response(status_code=204)


@router.get("/_sandbox/jira/deliveries")
def control_deliveries(sb: Sandbox = SANDBOX) -> list[dict[str, Any]]:
    with sb.lock:
        return list(sb.jira.deliveries)


@router.post("/_sandbox/jira/screen")
def control_screen(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """Take fields off (``remove``) or put them on (``add``) the ``create``/``edit`` screen (default both)
    of an issue type (``issue_type``, name or id; default every type), as a Jira admin would."""
    with sb.lock:
        j = sb.jira
        types = [j.issue_type(str(body["issue_type"]))] if body.get("issue_type") else list(ISSUE_TYPES)
        if None in types:
            return JSONResponse({"error": f"unknown issue type {body.get('issue_type')!r}"}, status_code=400)
        which = body.get("screen", "both")
        if which not in ("create", "edit", "both"):
            return JSONResponse({"error": "screen must be create, edit or both"}, status_code=400)
        ids: dict[str, list[str]] = {}
        for verb in ("remove", "add"):
            ids[verb] = []
            for ident in body.get(verb) or []:
                fd = j.field(str(ident))
                if fd is None or not (fd["custom"] or fd["id"] in SCREEN_SYSTEM_FIELDS):
                    return JSONResponse({"error": f"no screen field {ident!r}"}, status_code=400)
                ids[verb].append(fd["id"])
        if "summary" in ids["remove"]:
            return JSONResponse({"error": "Summary is required on every screen"}, status_code=400)
        j.__dict__.setdefault(
            "screens",
            {t[0]: {"create": j.screen(t[0], "create"), "edit": j.screen(t[0], "edit")} for t in ISSUE_TYPES},
        )
        for t in types:
            for w in ("create", "edit") if which == "both" else (which,):
                j.screens[t[0]][w] -= set(ids["remove"])
                j.screens[t[0]][w] |= set(ids["add"])
        sb.mark_dirty()
        return JSONResponse(
            {t[1]: {w: sorted(j.screens[t[0]][w]) for w in ("create", "edit")} for t in ISSUE_TYPES}
        )


@router.post("/_sandbox/jira/field")
def control_field(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """Change a custom field's ``type`` (textfield, textarea, url, float) and/or ``searcher`` (a searcher
    key, or null for none: the field is then not searchable), as a Jira admin would."""
    with sb.lock:
        j = sb.jira
        fd = j.field(str(body.get("field", "")))
        if fd is None or not fd["custom"]:
            return JSONResponse({"error": f"no custom field {body.get('field')!r}"}, status_code=400)
        kind = body.get("type")
        if kind is not None and kind not in CUSTOM_TYPES:
            return JSONResponse({"error": f"type must be one of {sorted(CUSTOM_TYPES)}"}, status_code=400)
        j.set_field_type(fd, kind, body.get("searcher", _KEEP))
        sb.mark_dirty()
        return JSONResponse(fd)


@router.post("/_sandbox/jira/projects")
def control_projects(body: dict[str, Any], sb: Sandbox = SANDBOX) -> JSONResponse:
    """``{"key": "CA", "name": "Canada Approvals"}``: a project as a Jira admin creates it (same issue types,
    workflow, fields and screens as the seeded one; see ``bc_jira_sandbox.jira.projects``)."""
    with sb.lock:
        try:
            project = sb.jira.add_project(str(body.get("key") or ""), str(body.get("name") or ""))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        sb.mark_dirty()
        return JSONResponse(sb.jira.project_json(project=project), status_code=201)


@router.get("/_sandbox/jira/projects")
def control_projects_list(sb: Sandbox = SANDBOX) -> list[dict[str, Any]]:
    with sb.lock:
        return [sb.jira.project_json(project=p) for p in sb.jira.all_projects().values()]


@router.post("/_sandbox/jira/options")
def control_options(body: dict[str, Any], sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """``{"validate": true}``: check every Jira request/response body against the OpenAPI spec;
    ``{"expiration_date_format": "epoch_ms" | "iso"}``: how webhook ``expirationDate`` is answered;
    ``{"issue_linking": false}``: issue linking turned off by an admin (its endpoints answer 404);
    ``{"attachment_max_bytes": N}``: the site's maximum attachment size (larger uploads answer 413)."""
    with sb.lock:
        if "validate" in body:
            sb.jira.validate = bool(body["validate"])
        if "expiration_date_format" in body:
            form = body["expiration_date_format"]
            if form not in EXPIRATION_DATE_FORMATS:
                raise HTTPException(400, f"expiration_date_format must be one of {EXPIRATION_DATE_FORMATS}")
            sb.jira.expiration_date_format = form
        if "issue_linking" in body:
            sb.jira.issue_linking = bool(body["issue_linking"])
        if "attachment_max_bytes" in body:
            limit = body["attachment_max_bytes"]
            if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
                raise HTTPException(400, "attachment_max_bytes must be a positive integer")
            sb.jira.attachment_max_bytes = limit
        return {
            "validate": sb.jira.validate,
            "expiration_date_format": getattr(sb.jira, "expiration_date_format", "epoch_ms"),
        }

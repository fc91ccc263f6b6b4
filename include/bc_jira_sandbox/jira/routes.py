"""Jira REST v3 routes under ``/ex/jira/{cloudId}`` (OAuth bearer) and ``/site`` (basic auth)."""

from __future__ import annotations

import base64
import hmac
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox import atlassian
from bc_jira_sandbox.jira.catalog import (
    _KEEP,
    API,
    BULK_LIMIT,
    COMMENT_PAGE_MAX,
    CREATEMETA_MAX,
    CUSTOM_TYPES,
    EXPIRATION_DATE_FORMATS,
    ISSUE_TYPES,
    LINK_TYPES,
    SCREEN_SYSTEM_FIELDS,
    STATUSES,
    WEBHOOK_TTL_S,
    JiraError,
    expiration_date_out,
)

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

log = logging.getLogger(__name__)

_SCOPES = {
    "read": "read:jira-work",
    "write": "write:jira-work",
    "user": "read:jira-user",
    "webhook": "manage:jira-webhook",
}


def query_list(rq: Request, name: str) -> list[str] | None:
    """An array query parameter as Jira reads it: repeated (``fields=summary&fields=status``, OpenAPI's form
    style) or comma-separated (the spec: "This parameter accepts a comma-separated list"), or both mixed."""
    raw = rq.query_params.getlist(name)
    if not raw:
        return None
    return [x.strip() for v in raw for x in v.split(",") if x.strip()]


def query_int(rq: Request, name: str, default: int) -> int:
    """An integer query parameter; a 400 (never a 500) when it is not a number."""
    raw = rq.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a number, got '{raw[:50]}'."]) from None


def query_ints(rq: Request, name: str) -> list[int] | None:
    vals = query_list(rq, name)
    if vals is None:
        return None
    try:
        return [int(v) for v in vals]
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a list of numbers."]) from None


def router(sb: Sandbox) -> APIRouter:
    r = APIRouter(tags=["jira"])
    st = lambda: sb.jira  # noqa: E731 - state is replaced on load; always look it up

    def respond(request: Request, status: int, body: Any = None) -> Response:
        if st().validate:
            _validate_response(sb, request, status, body)
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status_code=status)

    def auth(request: Request, basic: bool, cloud_id: str | None, scope: str) -> dict[str, Any] | Response:
        """The acting user, or the error answer (401 gateway style for OAuth, Jira style for basic)."""
        header = request.headers.get("authorization")
        jira = st()
        if basic:
            want = (
                "Basic "
                + base64.b64encode(f"{sb.creds['jira_email']}:{sb.creds['jira_api_token']}".encode()).decode()
            )
            if not header or not hmac.compare_digest(header, want):
                return JSONResponse(
                    {
                        "errorMessages": ["Client must be authenticated to access this resource."],
                        "errors": {},
                    },
                    status_code=401,
                )
            return jira.users[0]
        rec = atlassian.check_access_token(sb, header)
        if rec is None:
            return JSONResponse({"code": 401, "message": "Unauthorized"}, status_code=401)
        if cloud_id != sb.creds["cloud_id"]:
            return JSONResponse(
                {"code": 404, "message": "Site not found or not accessible with this token"}, status_code=404
            )
        if _SCOPES[scope] not in rec["scopes"]:
            return JSONResponse(
                {"code": 401, "message": "Unauthorized; scope does not match"}, status_code=401
            )
        return jira.users[0]

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            raise JiraError(400, ["Unexpected character: the request body is not valid JSON."]) from None
        if st().validate:
            _validate_request(sb, request, body)
        return body

    def endpoint(method: str, path: str, scope: str, handler: Callable[..., Any]) -> None:
        """Register ``handler(request, actor, body, **path_params)`` under the OAuth and basic-auth roots."""
        for prefix, basic in (("/ex/jira/{cloudId}", False), ("/site", True)):
            r.add_api_route(
                prefix + path,
                make_route(method, path, scope, handler, basic),
                methods=[method],
                name=f"{method} {path} ({prefix})",
            )

    def make_route(
        method: str, path: str, scope: str, handler: Callable[..., Any], basic: bool
    ) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            params = dict(request.path_params)
            cloud_id = params.pop("cloudId", None)
            actor = auth(request, basic, cloud_id, scope)
            if isinstance(actor, Response):
                return actor
            if path.startswith(f"{API}/webhook") and basic:
                return respond(
                    request,
                    403,
                    {
                        "errorMessages": ["Only Connect and OAuth 2.0 apps can use this operation."],
                        "errors": {},
                    },
                )
            try:
                body = await body_of(request) if method in ("POST", "PUT", "DELETE") else None
                with sb.lock:
                    status, out = handler(request, actor, body, **params)
                    sb.mark_dirty()
            except JiraError as exc:
                return respond(request, exc.status, exc.body)
            return respond(request, status, out)

        return route

    # -- metadata --------------------------------------------------------------------------------------------
    endpoint("GET", f"{API}/field", "read", lambda rq, a, b: (200, st().fields))
    endpoint("GET", f"{API}/myself", "read", lambda rq, a, b: (200, st().user_json(a)))
    endpoint("GET", f"{API}/status", "read", lambda rq, a, b: (200, [st().status_json(s) for s in STATUSES]))

    def get_project(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        p = st().project
        if projectIdOrKey not in (p["id"], p["key"]):
            raise JiraError(404, [f"No project could be found with key '{projectIdOrKey}'."])
        return 200, st().project_json(full=True)

    endpoint("GET", f"{API}/project/{{projectIdOrKey}}", "read", get_project)

    def project_statuses(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        get_project(rq, a, b, projectIdOrKey)
        j = st()
        return 200, [
            {
                "self": j.url(f"{API}/issuetype/{t[0]}"),
                "id": t[0],
                "name": t[1],
                "subtask": False,
                "statuses": [j.status_json(s) for s in STATUSES],
            }
            for t in ISSUE_TYPES
        ]

    endpoint("GET", f"{API}/project/{{projectIdOrKey}}/statuses", "read", project_statuses)

    def issuetypes_for_project(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        pid = rq.query_params.get("projectId")
        if pid != st().project["id"]:
            raise JiraError(404, ["The project is not found or you don't have permission to view it."])
        return 200, [st().issue_type_json(t) for t in ISSUE_TYPES]

    endpoint("GET", f"{API}/issuetype/project", "read", issuetypes_for_project)

    def meta_page(rq: Request, items: list[Any], key: str) -> tuple[int, Any]:
        """A createmeta page (spec: startAt, maxResults default 50, at most 200, total)."""
        start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 50)
        if limit > CREATEMETA_MAX:
            raise JiraError(400, [f"Parameter 'maxResults' must not exceed the limit '{CREATEMETA_MAX}'"])
        if start < 0 or limit < 0:
            raise JiraError(400, ["Parameters 'startAt' and 'maxResults' must not be negative"])
        return 200, {
            key: items[start : start + limit],
            "maxResults": limit,
            "startAt": start,
            "total": len(items),
        }

    def createmeta_project(projectIdOrKey: str) -> None:  # noqa: N803
        p = st().project
        if projectIdOrKey not in (p["id"], p["key"]):
            # the spec documents only 200/400/401 for createmeta
            raise JiraError(400, [f"No project could be found with key '{projectIdOrKey}'."])

    def createmeta_types(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        createmeta_project(projectIdOrKey)
        return meta_page(rq, [st().issue_type_json(t) for t in ISSUE_TYPES], "issueTypes")

    endpoint("GET", f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes", "read", createmeta_types)

    def createmeta_fields(
        rq: Request,
        a: Any,
        b: Any,
        projectIdOrKey: str,  # noqa: N803
        issueTypeId: str,  # noqa: N803
    ) -> tuple[int, Any]:
        createmeta_project(projectIdOrKey)
        t = next((t for t in ISSUE_TYPES if t[0] == issueTypeId), None)
        if t is None:
            raise JiraError(400, [f"The issue type with id '{issueTypeId}' does not exist in this project."])
        return meta_page(rq, st().create_meta_fields(t[0]), "fields")

    endpoint(
        "GET",
        f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes/{{issueTypeId}}",
        "read",
        createmeta_fields,
    )

    # -- issues ----------------------------------------------------------------------------------------------
    def create_issue(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        return 201, st().create(b, a)

    endpoint("POST", f"{API}/issue", "write", create_issue)

    def bulk_create(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        updates = (b or {}).get("issueUpdates") if isinstance(b, dict) else None
        if not isinstance(updates, list) or not updates:
            raise JiraError(400, ["issueUpdates must be a non-empty list."])
        if len(updates) > BULK_LIMIT:
            return 400, {
                "issues": [],
                "errors": [
                    {
                        "status": 400,
                        "failedElementNumber": BULK_LIMIT,
                        "elementErrors": {
                            "errorMessages": [
                                f"Bulk create supports at most {BULK_LIMIT} issues per request."
                            ],
                            "errors": {},
                        },
                    }
                ],
            }
        created, errors = [], []
        for i, upd in enumerate(updates):
            try:
                created.append(st().create(upd, a))
            except JiraError as exc:
                errors.append({"status": exc.status, "elementErrors": exc.body, "failedElementNumber": i})
        return (201 if created else 400), {"issues": created, "errors": errors}

    endpoint("POST", f"{API}/issue/bulk", "write", bulk_create)

    def get_issue(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        fields = query_list(rq, "fields")
        return 200, st().issue_json(rec, fields or "*all", properties=query_list(rq, "properties"))

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}", "read", get_issue)

    def get_editmeta(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        """Spec getEditIssueMeta: the fields an edit of this issue may set (those on its edit screen)."""
        j = st()
        rec = j.issue(issueIdOrKey)
        screen = j.screen(rec["fields"]["issuetype"], "edit")
        ops = {"labels": ["add", "set", "remove"]}
        return 200, {
            "fields": {
                fd["id"]: {
                    "key": fd["key"],
                    "name": fd["name"],
                    "required": fd["id"] == "summary",
                    "operations": ops.get(fd["id"], ["set"]),
                    "schema": dict(fd.get("schema") or {"type": "string"}),
                }
                for fd in j.fields
                if fd["id"] in screen
            }
        }

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/editmeta", "read", get_editmeta)

    def edit_issue(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        st().edit(rec, b, a)
        if rq.query_params.get("returnIssue", "false").lower() == "true":
            return 200, st().issue_json(rec, "*all")
        return 204, None

    endpoint("PUT", f"{API}/issue/{{issueIdOrKey}}", "write", edit_issue)

    def get_transitions(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        return 200, {"expand": "transitions", "transitions": st().transitions(rec)}

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/transitions", "read", get_transitions)

    def do_transition(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        st().transition(st().issue(issueIdOrKey), b, a)
        return 204, None

    endpoint("POST", f"{API}/issue/{{issueIdOrKey}}/transitions", "write", do_transition)

    def add_comment(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        return 201, st().add_comment(st().issue(issueIdOrKey), b, a)

    endpoint("POST", f"{API}/issue/{{issueIdOrKey}}/comment", "write", add_comment)

    def get_comments(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        """Paged like Jira: ``startAt``, ``maxResults`` (default 100), ``orderBy`` created / -created (400
        otherwise), per the spec of GET /rest/api/3/issue/{issueIdOrKey}/comment."""
        rec = st().issue(issueIdOrKey)
        q = rq.query_params
        order = q.get("orderBy")
        if order is not None and order not in ("created", "+created", "-created"):
            raise JiraError(400, [f"The orderBy value '{order}' is not supported; use created or -created."])
        try:
            start = max(0, int(q.get("startAt", 0)))
            limit = min(COMMENT_PAGE_MAX, max(1, int(q.get("maxResults", 100))))
        except ValueError:
            raise JiraError(400, ["startAt and maxResults must be integers."]) from None
        ordered = list(reversed(rec["comments"])) if order == "-created" else list(rec["comments"])
        page = [st().comment_json(rec, c) for c in ordered[start : start + limit]]
        return 200, {"startAt": start, "maxResults": limit, "total": len(ordered), "comments": page}

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/comment", "read", get_comments)

    # -- issue links -----------------------------------------------------------------------------------------
    def linking_on() -> None:
        """The spec answers 404 on every issue-link operation "if issue linking is disabled"."""
        if not st().__dict__.get("issue_linking", True):
            raise JiraError(404, ["Issue linking is currently disabled."])

    def link_types(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        linking_on()
        return 200, {"issueLinkTypes": [st().link_type_json(t) for t in LINK_TYPES]}

    endpoint("GET", f"{API}/issueLinkType", "read", link_types)

    def create_link(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        linking_on()
        st().create_link(b, a)
        return 201, None  # "This resource returns nothing on the creation of an issue link."

    endpoint("POST", f"{API}/issueLink", "write", create_link)

    def get_link(rq: Request, a: Any, b: Any, linkId: str) -> tuple[int, Any]:  # noqa: N803
        linking_on()
        return 200, st().link_json(linkId)

    endpoint("GET", f"{API}/issueLink/{{linkId}}", "read", get_link)

    # -- search ----------------------------------------------------------------------------------------------
    endpoint("POST", f"{API}/search/jql", "read", lambda rq, a, b: (200, st().search(b or {})))

    def search_get(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        q = rq.query_params
        body: dict[str, Any] = {"jql": q.get("jql"), "nextPageToken": q.get("nextPageToken")}
        if q.get("maxResults"):
            body["maxResults"] = query_int(rq, "maxResults", 50)
        for name, parse in (
            ("fields", query_list),
            ("properties", query_list),
            ("reconcileIssues", query_ints),
        ):
            vals = parse(rq, name)
            if vals:
                body[name] = vals
        return 200, st().search(body)

    endpoint("GET", f"{API}/search/jql", "read", search_get)

    # -- users -----------------------------------------------------------------------------------------------
    def user_search(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        q = rq.query_params
        if q.get("query") and q.get("accountId"):
            raise JiraError(400, ["Only one of 'query' or 'accountId' can be provided."])
        if not q.get("query") and not q.get("accountId") and not q.get("property"):
            raise JiraError(
                400, ["One of 'query', 'accountId' or 'property' query parameters must be provided."]
            )
        start, limit = int(q.get("startAt", 0)), int(q.get("maxResults", 50))
        users = st().find_users(q.get("query"), q.get("accountId"))
        return 200, [st().user_json(u) for u in users[start : start + limit]]

    endpoint("GET", f"{API}/user/search", "user", user_search)

    def user_bulk(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        ids = query_list(rq, "accountId")
        if not ids:
            raise JiraError(400, ["You must specify at least one accountId."])
        start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 10)
        users = [u for u in (st().user(i) for i in dict.fromkeys(ids)) if u is not None]
        page = users[start : start + limit]
        out: dict[str, Any] = {
            "self": str(rq.url),
            "maxResults": limit,
            "startAt": start,
            "total": len(users),
            "isLast": start + limit >= len(users),
            "values": [st().user_json(u) for u in page],
        }
        if not out["isLast"]:
            nxt = rq.url.include_query_params(startAt=start + limit)
            out["nextPage"] = str(nxt)
        return 200, out

    endpoint("GET", f"{API}/user/bulk", "user", user_bulk)

    # -- webhooks --------------------------------------------------------------------------------------------
    def register_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        j = st()
        if (
            not isinstance(b, dict)
            or not isinstance(b.get("url"), str)
            or not isinstance(b.get("webhooks"), list)
        ):
            raise JiraError(400, ["url and webhooks are required."])
        if (
            j.webhook_url
            and j.webhook_url != b["url"]
            and any(w["expirationDate"] > int(sb.now().timestamp() * 1000) for w in j.webhooks.values())
        ):
            raise JiraError(400, ["Only a single URL per app is allowed to be registered."])
        j.webhook_url = b["url"]
        results = []
        expires = int((sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
        for wh in b["webhooks"]:
            if not isinstance(wh, dict) or not wh.get("events") or not isinstance(wh.get("jqlFilter"), str):
                results.append({"errors": ["events and jqlFilter are required."]})
                continue
            why = j.webhook_jql_error(wh["jqlFilter"])
            if why:
                results.append({"errors": [why]})
                continue
            wid = j.next_webhook_id
            j.next_webhook_id += 1
            j.webhooks[wid] = {
                "id": wid,
                "events": list(wh["events"]),
                "jqlFilter": wh["jqlFilter"],
                "expirationDate": expires,
                "url": b["url"],
                **({"fieldIdsFilter": list(wh["fieldIdsFilter"])} if wh.get("fieldIdsFilter") else {}),
            }
            results.append({"createdWebhookId": wid})
        return 200, {"webhookRegistrationResult": results}

    endpoint("POST", f"{API}/webhook", "webhook", register_webhooks)

    def list_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        start = int(rq.query_params.get("startAt", 0))
        limit = int(rq.query_params.get("maxResults", 100))
        form = getattr(st(), "expiration_date_format", "epoch_ms")
        values = [
            {**w, "expirationDate": expiration_date_out(w["expirationDate"], form)}
            for _, w in sorted(st().webhooks.items())
        ]
        page = values[start : start + limit]
        return 200, {
            "startAt": start,
            "maxResults": limit,
            "total": len(values),
            "isLast": start + limit >= len(values),
            "values": page,
        }

    endpoint("GET", f"{API}/webhook", "webhook", list_webhooks)

    def delete_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        if not isinstance(b, dict) or not isinstance(b.get("webhookIds"), list):
            raise JiraError(400, ["webhookIds is required."])
        for wid in b["webhookIds"]:
            st().webhooks.pop(int(wid), None)
        return 202, None

    endpoint("DELETE", f"{API}/webhook", "webhook", delete_webhooks)

    def refresh_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        if not isinstance(b, dict) or not isinstance(b.get("webhookIds"), list):
            raise JiraError(400, ["webhookIds is required."])
        expires = int((sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
        for wid in b["webhookIds"]:
            if int(wid) in st().webhooks:
                st().webhooks[int(wid)]["expirationDate"] = expires
        return 200, {
            "expirationDate": expiration_date_out(expires, getattr(st(), "expiration_date_format", ""))
        }

    endpoint("PUT", f"{API}/webhook/refresh", "webhook", refresh_webhooks)

    # -- sandbox control -------------------------------------------------------------------------------------
    @r.post("/_sandbox/jira/transition")
    def control_transition(body: dict[str, Any]) -> JSONResponse:
        """Move an issue as a user would (Alice Approver by default) and fire the webhooks."""
        with sb.lock:
            j = st()
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

    @r.get("/_sandbox/jira/issues")
    def control_issues() -> list[dict[str, Any]]:
        """Every issue, current state, no search lag (tests and the demo)."""
        with sb.lock:
            j = st()
            return [
                j.issue_json(rec, "*all") | {"comments": len(rec["comments"])} for rec in j.issues.values()
            ]

    @r.post("/_sandbox/jira/admin-webhooks")
    def control_admin_webhook(body: dict[str, Any]) -> JSONResponse:
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
            j = st()
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
        return JSONResponse(
            {"id": wid, "url": url, "events": list(events), "jqlFilter": jql}, status_code=201
        )

    @r.delete("/_sandbox/jira/admin-webhooks/{wid}")
    def control_admin_webhook_delete(wid: int) -> Response:
        with sb.lock:
            st().admin_webhooks.pop(int(wid), None)
            sb.mark_dirty()
        return Response(status_code=204)

    @r.get("/_sandbox/jira/deliveries")
    def control_deliveries() -> list[dict[str, Any]]:
        with sb.lock:
            return list(st().deliveries)

    @r.post("/_sandbox/jira/screen")
    def control_screen(body: dict[str, Any]) -> JSONResponse:
        """Take fields off (``remove``) or put them on (``add``) the ``create``/``edit`` screen (default both)
        of an issue type (``issue_type``, name or id; default every type), as a Jira admin would."""
        with sb.lock:
            j = st()
            types = [j.issue_type(str(body["issue_type"]))] if body.get("issue_type") else list(ISSUE_TYPES)
            if None in types:
                return JSONResponse(
                    {"error": f"unknown issue type {body.get('issue_type')!r}"}, status_code=400
                )
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
                {
                    t[0]: {"create": j.screen(t[0], "create"), "edit": j.screen(t[0], "edit")}
                    for t in ISSUE_TYPES
                },
            )
            for t in types:
                for w in ("create", "edit") if which == "both" else (which,):
                    j.screens[t[0]][w] -= set(ids["remove"])
                    j.screens[t[0]][w] |= set(ids["add"])
            sb.mark_dirty()
            return JSONResponse(
                {t[1]: {w: sorted(j.screens[t[0]][w]) for w in ("create", "edit")} for t in ISSUE_TYPES}
            )

    @r.post("/_sandbox/jira/field")
    def control_field(body: dict[str, Any]) -> JSONResponse:
        """Change a custom field's ``type`` (textfield, textarea, url, float) and/or ``searcher`` (a searcher
        key, or null for none: the field is then not searchable), as a Jira admin would."""
        with sb.lock:
            j = st()
            fd = j.field(str(body.get("field", "")))
            if fd is None or not fd["custom"]:
                return JSONResponse({"error": f"no custom field {body.get('field')!r}"}, status_code=400)
            kind = body.get("type")
            if kind is not None and kind not in CUSTOM_TYPES:
                return JSONResponse({"error": f"type must be one of {sorted(CUSTOM_TYPES)}"}, status_code=400)
            j.set_field_type(fd, kind, body["searcher"] if "searcher" in body else _KEEP)
            sb.mark_dirty()
            return JSONResponse(fd)

    @r.post("/_sandbox/jira/options")
    def control_options(body: dict[str, Any]) -> dict[str, Any]:
        """``{"validate": true}``: check every Jira request/response body against the OpenAPI spec;
        ``{"expiration_date_format": "epoch_ms" | "iso"}``: how webhook ``expirationDate`` is answered;
        ``{"issue_linking": false}``: issue linking turned off by an admin (its endpoints answer 404)."""
        with sb.lock:
            if "validate" in body:
                st().validate = bool(body["validate"])
            if "expiration_date_format" in body:
                form = body["expiration_date_format"]
                if form not in EXPIRATION_DATE_FORMATS:
                    raise HTTPException(
                        400, f"expiration_date_format must be one of {EXPIRATION_DATE_FORMATS}"
                    )
                st().expiration_date_format = form
            if "issue_linking" in body:
                st().issue_linking = bool(body["issue_linking"])
            return {
                "validate": st().validate,
                "expiration_date_format": getattr(st(), "expiration_date_format", "epoch_ms"),
            }

    return r


def _validate_response(sb: Sandbox, request: Request, status: int, body: Any) -> None:
    from bc_jira_sandbox.openapi import SpecViolation, get_validator

    # The ISO expirationDate is the spec's own example form, not its schema: validate it as exactly that.
    example_forms = getattr(sb.jira, "expiration_date_format", "epoch_ms") == "iso"
    try:
        get_validator(example_forms=example_forms).validate_response(
            request.method, request.url.path, status, body
        )
    except (SpecViolation, KeyError) as exc:
        sb.stats.bump("jira.spec_violations")
        log.error("sandbox Jira response violates the spec: %s", exc)


def _validate_request(sb: Sandbox, request: Request, body: Any) -> None:
    from bc_jira_sandbox.openapi import SpecViolation, get_validator

    try:
        get_validator().validate_request(request.method, request.url.path, body)
    except SpecViolation as exc:
        raise JiraError(400, [str(exc)[:1000]]) from None

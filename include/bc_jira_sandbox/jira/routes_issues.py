"""Jira REST v3 routes: metadata, issues, comments, transitions, links, search and users."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from bc_jira_sandbox.jira.api import (
    READ,
    USER,
    WRITE,
    Call,
    JiraReply,
    JiraRoute,
    query_int,
    query_ints,
    query_list,
)
from bc_jira_sandbox.jira.catalog import (
    API,
    BULK_FETCH_LIMIT,
    BULK_LIMIT,
    COMMENT_PAGE_MAX,
    CREATEMETA_MAX,
    ISSUE_TYPES,
    LINK_TYPES,
    STATUSES,
    JiraError,
)

if TYPE_CHECKING:
    from bc_jira_sandbox.jira.state import JiraState

api = APIRouter(route_class=JiraRoute)


# -- metadata --------------------------------------------------------------------------------------------
@api.get(f"{API}/field")
def get_fields(call: Call = READ) -> JiraReply:
    return JiraReply(200, call.jira.fields)


@api.get(f"{API}/myself")
def get_myself(call: Call = READ) -> JiraReply:
    return JiraReply(200, call.jira.user_json(call.actor))


@api.get(f"{API}/status")
def get_statuses(call: Call = READ) -> JiraReply:
    return JiraReply(200, [call.jira.status_json(s) for s in STATUSES])


@api.get(f"{API}/project")
def get_all_projects(call: Call = READ) -> JiraReply:
    """Every project, as an array of Project (OpenAPI ``GET /rest/api/3/project``, "Get all projects":
    deprecated for ``/project/search`` but still served by Jira Cloud)."""
    return JiraReply(200, [call.jira.project_json(project=p) for p in call.jira.all_projects().values()])


@api.get(f"{API}/project/{{projectIdOrKey}}")
def get_project(projectIdOrKey: str, call: Call = READ) -> JiraReply:
    p = _project_or_404(call.jira, projectIdOrKey)
    return JiraReply(200, call.jira.project_json(full=True, project=p))


def _project_or_404(jira: JiraState, ident: str) -> dict[str, Any]:
    p = jira.project_by(ident)
    if p is None:
        raise JiraError(404, [f"No project could be found with key '{ident}'."])
    return p


@api.get(f"{API}/project/{{projectIdOrKey}}/statuses")
def project_statuses(projectIdOrKey: str, call: Call = READ) -> JiraReply:
    _project_or_404(call.jira, projectIdOrKey)
    j = call.jira
    return JiraReply(
        200,
        [
            {
                "self": j.url(f"{API}/issuetype/{t[0]}"),
                "id": t[0],
                "name": t[1],
                "subtask": False,
                "statuses": [j.status_json(s) for s in STATUSES],
            }
            for t in ISSUE_TYPES
        ],
    )


@api.get(f"{API}/issuetype/project")
def issuetypes_for_project(call: Call = READ) -> JiraReply:
    pid = call.request.query_params.get("projectId")
    if pid is None or call.jira.project_by(pid) is None or not pid.isdigit():
        raise JiraError(404, ["The project is not found or you don't have permission to view it."])
    return JiraReply(200, [call.jira.issue_type_json(t) for t in ISSUE_TYPES])


def meta_page(rq: Request, items: list[Any], key: str) -> JiraReply:
    """A createmeta page (spec: startAt, maxResults default 50, at most 200, total)."""
    start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 50)
    if limit > CREATEMETA_MAX:
        raise JiraError(400, [f"Parameter 'maxResults' must not exceed the limit '{CREATEMETA_MAX}'"])
    if start < 0 or limit < 0:
        raise JiraError(400, ["Parameters 'startAt' and 'maxResults' must not be negative"])
    return JiraReply(
        200, {key: items[start : start + limit], "maxResults": limit, "startAt": start, "total": len(items)}
    )


def createmeta_project(jira: JiraState, projectIdOrKey: str) -> None:
    if jira.project_by(projectIdOrKey) is None:
        # the spec documents only 200/400/401 for createmeta
        raise JiraError(400, [f"No project could be found with key '{projectIdOrKey}'."])


@api.get(f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes")
def createmeta_types(projectIdOrKey: str, call: Call = READ) -> JiraReply:
    createmeta_project(call.jira, projectIdOrKey)
    return meta_page(call.request, [call.jira.issue_type_json(t) for t in ISSUE_TYPES], "issueTypes")


@api.get(f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes/{{issueTypeId}}")
def createmeta_fields(projectIdOrKey: str, issueTypeId: str, call: Call = READ) -> JiraReply:
    createmeta_project(call.jira, projectIdOrKey)
    t = next((t for t in ISSUE_TYPES if t[0] == issueTypeId), None)
    if t is None:
        raise JiraError(400, [f"The issue type with id '{issueTypeId}' does not exist in this project."])
    return meta_page(call.request, call.jira.create_meta_fields(t[0]), "fields")


# -- issues ----------------------------------------------------------------------------------------------
@api.post(f"{API}/issue")
def create_issue(call: Call = WRITE) -> JiraReply:
    return JiraReply(201, call.jira.create(call.body, call.actor))


@api.post(f"{API}/issue/bulk")
def bulk_create(call: Call = WRITE) -> JiraReply:
    updates = (call.body or {}).get("issueUpdates") if isinstance(call.body, dict) else None
    if not isinstance(updates, list) or not updates:
        raise JiraError(400, ["issueUpdates must be a non-empty list."])
    if len(updates) > BULK_LIMIT:
        return JiraReply(
            400,
            {
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
            },
        )
    created, errors = [], []
    for i, upd in enumerate(updates):
        try:
            created.append(call.jira.create(upd, call.actor))
        except JiraError as exc:
            errors.append({"status": exc.status, "elementErrors": exc.body, "failedElementNumber": i})
    if call.sb.options.bulk_create_order == "shuffled" and len(created) > 1:
        # Atlassian documents no order for issues[] (only failedElementNumber ties an error to its
        # element): a shuffled answer is as valid as an ordered one. Never the identity permutation.
        order = list(range(len(created)))
        while order == sorted(order):
            call.sb.rng.shuffle(order)
        created = [created[i] for i in order]
    return JiraReply(201 if created else 400, {"issues": created, "errors": errors})


@api.post(f"{API}/issue/bulkfetch")
def bulk_fetch(call: Call = READ) -> JiraReply:
    """``POST /issue/bulkfetch`` (operationId bulkFetchIssues): up to 100 ids or keys, answered in
    ascending id order; ids that do not exist are left out, not errors. It reads the issues themselves,
    not the search index, so it does not lag writes the way JQL search does."""
    b = call.body
    wanted = (b or {}).get("issueIdsOrKeys") if isinstance(b, dict) else None
    if not isinstance(wanted, list) or not wanted or len(wanted) > BULK_FETCH_LIMIT:
        raise JiraError(400, [f"issueIdsOrKeys must list 1 to {BULK_FETCH_LIMIT} issue ids or keys."])
    fields = (b or {}).get("fields") or ["*navigable"]
    found: dict[str, dict[str, Any]] = {}
    for ident in wanted:
        try:
            rec = call.jira.issue(str(ident))
        except JiraError:
            continue
        found[rec["id"]] = rec
    issues = [call.jira.issue_json(found[i], fields) for i in sorted(found, key=int)]
    return JiraReply(200, {"issues": issues, "issueErrors": []})


@api.get(f"{API}/issue/{{issueIdOrKey}}")
def get_issue(issueIdOrKey: str, call: Call = READ) -> JiraReply:
    rec = call.jira.issue(issueIdOrKey)
    fields = query_list(call.request, "fields")
    return JiraReply(
        200, call.jira.issue_json(rec, fields or "*all", properties=query_list(call.request, "properties"))
    )


@api.get(f"{API}/issue/{{issueIdOrKey}}/editmeta")
def get_editmeta(issueIdOrKey: str, call: Call = READ) -> JiraReply:
    """Spec getEditIssueMeta: the fields an edit of this issue may set (those on its edit screen)."""
    j = call.jira
    rec = j.issue(issueIdOrKey)
    screen = j.screen(rec["fields"]["issuetype"], "edit")
    ops = {"labels": ["add", "set", "remove"]}
    return JiraReply(
        200,
        {
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
        },
    )


@api.put(f"{API}/issue/{{issueIdOrKey}}")
def edit_issue(issueIdOrKey: str, call: Call = WRITE) -> JiraReply:
    rec = call.jira.issue(issueIdOrKey)
    call.jira.edit(rec, call.body, call.actor)
    if call.request.query_params.get("returnIssue", "false").lower() == "true":
        return JiraReply(200, call.jira.issue_json(rec, "*all"))
    return JiraReply(204, None)


@api.get(f"{API}/issue/{{issueIdOrKey}}/transitions")
def get_transitions(issueIdOrKey: str, call: Call = READ) -> JiraReply:
    rec = call.jira.issue(issueIdOrKey)
    return JiraReply(200, {"expand": "transitions", "transitions": call.jira.transitions(rec)})


@api.post(f"{API}/issue/{{issueIdOrKey}}/transitions")
def do_transition(issueIdOrKey: str, call: Call = WRITE) -> JiraReply:
    call.jira.transition(call.jira.issue(issueIdOrKey), call.body, call.actor)
    return JiraReply(204, None)


@api.post(f"{API}/issue/{{issueIdOrKey}}/comment")
def add_comment(issueIdOrKey: str, call: Call = WRITE) -> JiraReply:
    return JiraReply(201, call.jira.add_comment(call.jira.issue(issueIdOrKey), call.body, call.actor))


@api.get(f"{API}/issue/{{issueIdOrKey}}/comment")
def get_comments(issueIdOrKey: str, call: Call = READ) -> JiraReply:
    """Paged like Jira: ``startAt``, ``maxResults`` (default 100), ``orderBy`` created / -created (400
    otherwise), per the spec of GET /rest/api/3/issue/{issueIdOrKey}/comment."""
    rec = call.jira.issue(issueIdOrKey)
    q = call.request.query_params
    order = q.get("orderBy")
    if order is not None and order not in ("created", "+created", "-created"):
        raise JiraError(400, [f"The orderBy value '{order}' is not supported; use created or -created."])
    try:
        start = max(0, int(q.get("startAt", 0)))
        limit = min(COMMENT_PAGE_MAX, max(1, int(q.get("maxResults", 100))))
    except ValueError:
        raise JiraError(400, ["startAt and maxResults must be integers."]) from None
    ordered = list(reversed(rec["comments"])) if order == "-created" else list(rec["comments"])
    page = [call.jira.comment_json(rec, c) for c in ordered[start : start + limit]]
    return JiraReply(200, {"startAt": start, "maxResults": limit, "total": len(ordered), "comments": page})


# -- issue links -----------------------------------------------------------------------------------------
def linking_on(jira: JiraState) -> None:
    """The spec answers 404 on every issue-link operation "if issue linking is disabled"."""
    if not jira.__dict__.get("issue_linking", True):
        raise JiraError(404, ["Issue linking is currently disabled."])


@api.get(f"{API}/issueLinkType")
def link_types(call: Call = READ) -> JiraReply:
    linking_on(call.jira)
    return JiraReply(200, {"issueLinkTypes": [call.jira.link_type_json(t) for t in LINK_TYPES]})


@api.post(f"{API}/issueLink")
def create_link(call: Call = WRITE) -> JiraReply:
    linking_on(call.jira)
    call.jira.create_link(call.body, call.actor)
    return JiraReply(201, None)  # "This resource returns nothing on the creation of an issue link."


@api.get(f"{API}/issueLink/{{linkId}}")
def get_link(linkId: str, call: Call = READ) -> JiraReply:
    linking_on(call.jira)
    return JiraReply(200, call.jira.link_json(linkId))


# -- search ----------------------------------------------------------------------------------------------
@api.post(f"{API}/search/jql")
def search_post(call: Call = READ) -> JiraReply:
    return JiraReply(200, call.jira.search(call.body or {}))


@api.get(f"{API}/search/jql")
def search_get(call: Call = READ) -> JiraReply:
    q = call.request.query_params
    body: dict[str, Any] = {"jql": q.get("jql"), "nextPageToken": q.get("nextPageToken")}
    if q.get("maxResults"):
        body["maxResults"] = query_int(call.request, "maxResults", 50)
    for name, parse in (
        ("fields", query_list),
        ("properties", query_list),
        ("reconcileIssues", query_ints),
    ):
        vals = parse(call.request, name)
        if vals:
            body[name] = vals
    return JiraReply(200, call.jira.search(body))


# -- users -----------------------------------------------------------------------------------------------
@api.get(f"{API}/user/search")
def user_search(call: Call = USER) -> JiraReply:
    q = call.request.query_params
    if q.get("query") and q.get("accountId"):
        raise JiraError(400, ["Only one of 'query' or 'accountId' can be provided."])
    if not q.get("query") and not q.get("accountId") and not q.get("property"):
        raise JiraError(400, ["One of 'query', 'accountId' or 'property' query parameters must be provided."])
    start, limit = int(q.get("startAt", 0)), int(q.get("maxResults", 50))
    users = call.jira.find_users(q.get("query"), q.get("accountId"))
    return JiraReply(200, [call.jira.user_json(u) for u in users[start : start + limit]])


@api.get(f"{API}/user/bulk")
def user_bulk(call: Call = USER) -> JiraReply:
    ids = query_list(call.request, "accountId")
    if not ids:
        raise JiraError(400, ["You must specify at least one accountId."])
    start, limit = query_int(call.request, "startAt", 0), query_int(call.request, "maxResults", 10)
    users = [u for u in (call.jira.user(i) for i in dict.fromkeys(ids)) if u is not None]
    page = users[start : start + limit]
    out: dict[str, Any] = {
        "self": str(call.request.url),
        "maxResults": limit,
        "startAt": start,
        "total": len(users),
        "isLast": start + limit >= len(users),
        "values": [call.jira.user_json(u) for u in page],
    }
    if not out["isLast"]:
        nxt = call.request.url.include_query_params(startAt=start + limit)
        out["nextPage"] = str(nxt)
    return JiraReply(200, out)

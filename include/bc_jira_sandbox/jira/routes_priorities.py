"""Jira REST v3 priority routes: priorities, priority schemes and their priorities and projects (paged)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request

from bc_jira_sandbox.jira.api import READ, Call, JiraReply, JiraRoute, query_int, query_list
from bc_jira_sandbox.jira.catalog import API, JiraError
from bc_jira_sandbox.jira.priorities import (
    PRIORITIES,
    SCHEMES,
    by_id,
    priority_json,
    project_priority_ids,
    scheme_projects,
)

if TYPE_CHECKING:
    from bc_jira_sandbox.jira.state import JiraState

api = APIRouter(route_class=JiraRoute)


def _page(rq: Request, items: list[Any], self_url: str) -> dict[str, Any]:
    """A ``PageBean``: startAt, maxResults (default 50), total, isLast, values."""
    start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 50)
    if start < 0 or limit < 1:
        raise JiraError(400, ["'startAt' must not be negative and 'maxResults' must be positive."])
    values = items[start : start + limit]
    return {
        "self": self_url,
        "maxResults": limit,
        "startAt": start,
        "total": len(items),
        "isLast": start + len(values) >= len(items),
        "values": values,
    }


def _inner(items: list[Any], self_url: str) -> dict[str, Any]:
    """The first 50 of an expanded list, as the scheme listing nests them."""
    return {"self": self_url, "maxResults": 50, "startAt": 0, "total": len(items), "isLast": len(items) <= 50,
            "values": items[:50]}  # fmt: skip


def _scheme_priorities(j: JiraState, scheme: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for seq, pid in enumerate(scheme[3], start=1):
        p = by_id(pid)
        if p is not None:
            out.append({**priority_json(j.url(), p, sequence=seq), "isDefault": pid == scheme[4]})
    return out


def _scheme_or_400(scheme_id: str) -> tuple[Any, ...]:
    """The spec documents 200/400/401 only for these routes: an unknown scheme is a 400."""
    scheme = next((s for s in SCHEMES if s[0] == scheme_id), None)
    if scheme is None:
        raise JiraError(400, [f"The priority scheme with ID {scheme_id} does not exist."])
    return scheme


@api.get(f"{API}/priority")
def get_priorities(call: Call = READ) -> JiraReply:
    return JiraReply(200, [priority_json(call.jira.url(), p) for p in PRIORITIES])


@api.get(f"{API}/priority/search")
def search_priorities(call: Call = READ) -> JiraReply:
    rq, j = call.request, call.jira
    found = list(PRIORITIES)
    projects = query_list(rq, "projectId")
    if projects:
        allowed = {pid for project in projects for pid in project_priority_ids(project)}
        found = [p for p in found if p[0] in allowed]
    name = rq.query_params.get("priorityName")
    if name:
        found = [p for p in found if name.lower() in p[1].lower()]
    return JiraReply(
        200, _page(rq, [priority_json(j.url(), p) for p in found], j.url(f"{API}/priority/search"))
    )


@api.get(f"{API}/priorityscheme")
def get_priority_schemes(call: Call = READ) -> JiraReply:
    rq, j = call.request, call.jira
    expand = set(query_list(rq, "expand") or [])
    wanted = set(query_list(rq, "schemeId") or [])
    out = []
    for s in sorted(SCHEMES, key=lambda s: s[1].lower()):
        if wanted and s[0] not in wanted:
            continue
        item: dict[str, Any] = {
            "id": s[0],
            "name": s[1],
            "description": s[2],
            "default": s[5] is None,
            "defaultPriorityId": s[4],
            "self": j.url(f"{API}/priorityscheme/{s[0]}"),
        }
        if "priorities" in expand:
            item["priorities"] = _inner(
                _scheme_priorities(j, s), j.url(f"{API}/priorityscheme/{s[0]}/priorities")
            )
        if "projects" in expand:
            projects = [
                j.project_json() for pid in scheme_projects(s, j.project["id"]) if pid == j.project["id"]
            ]
            item["projects"] = _inner(projects, j.url(f"{API}/priorityscheme/{s[0]}/projects"))
        out.append(item)
    return JiraReply(200, _page(rq, out, j.url(f"{API}/priorityscheme")))


@api.get(f"{API}/priorityscheme/{{schemeId}}/priorities")
def get_scheme_priorities(schemeId: str, call: Call = READ) -> JiraReply:
    j = call.jira
    scheme = _scheme_or_400(schemeId)
    url = j.url(f"{API}/priorityscheme/{schemeId}/priorities")
    return JiraReply(200, _page(call.request, _scheme_priorities(j, scheme), url))


@api.get(f"{API}/priorityscheme/{{schemeId}}/projects")
def get_scheme_projects(schemeId: str, call: Call = READ) -> JiraReply:
    j = call.jira
    scheme = _scheme_or_400(schemeId)
    ids = scheme_projects(scheme, j.project["id"])
    wanted = set(query_list(call.request, "projectId") or [])
    projects = [j.project_json() for pid in ids if pid == j.project["id"] and (not wanted or pid in wanted)]
    return JiraReply(200, _page(call.request, projects, j.url(f"{API}/priorityscheme/{schemeId}/projects")))

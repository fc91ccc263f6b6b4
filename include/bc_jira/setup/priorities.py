"""bc_jira_connect's check of ``priority_rules``: every named priority must be in the project's scheme.

Jira refuses a create or edit whose priority is not in the project's priority scheme ("The priority
selected is invalid."), so a wrong name would fail every matching record. The scheme comes from ``GET
/rest/api/3/priorityscheme?expand=projects`` and its priorities from ``GET
/rest/api/3/priorityscheme/{schemeId}/priorities`` (both paged; the older ``/priority/search`` is
deprecated in the spec).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.config import Config
    from bc_jira.setup.connect import JiraClient

PAGE = 50
_WHERE = "Jira settings > Issues > Priority schemes"


def _pages(client: JiraClient, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every value of a paged (``startAt`` / ``isLast``) answer."""
    out: list[dict[str, Any]] = []
    while True:
        page = client.get_json(path, params={**(params or {}), "startAt": len(out), "maxResults": PAGE})
        values = page.get("values") or []
        out.extend(values)
        if page.get("isLast", True) or not values:
            return out


def _holds(client: JiraClient, scheme: Mapping[str, Any], project_id: str) -> bool:
    projects = scheme.get("projects") or {}
    if any(str(p.get("id")) == project_id for p in projects.get("values") or []):
        return True
    if projects.get("isLast", True):
        return False
    found = client.get_json(f"priorityscheme/{scheme['id']}/projects", params={"projectId": project_id})
    return any(str(p.get("id")) == project_id for p in found.get("values") or [])


def project_scheme(client: JiraClient, project_id: str) -> tuple[dict[str, Any] | None, list[str]]:
    """(the priority scheme the project uses, the names of its priorities in scheme order). A project no
    scheme lists uses the default one ("the default scheme used by all new and unassigned projects")."""
    schemes = _pages(client, "priorityscheme", {"expand": "projects"})
    chosen = next((s for s in schemes if _holds(client, s, project_id)), None)
    if chosen is None:
        chosen = next((s for s in schemes if s.get("default") or s.get("isDefault")), None)
    if chosen is None:
        return None, []
    prios = _pages(client, f"priorityscheme/{chosen['id']}/priorities")
    return chosen, [str(p.get("name")) for p in prios if p.get("name")]


def name_problems(cfg: Config, scheme_name: str, names: list[str]) -> list[str]:
    """One problem per rule naming a priority the scheme does not offer, with the fix."""
    offered = ", ".join(repr(n) for n in names) or "no priorities"
    folded = {n.casefold(): n for n in names}
    out = []
    for i, rule in enumerate(cfg.priority_rules):
        if rule.priority in names:
            continue
        near = folded.get(rule.priority.casefold())
        fix = (
            f"write it as {near!r} (Jira matches priority names exactly)"
            if near
            else f"use one of {offered}, or add {rule.priority!r} to the scheme in {_WHERE}"
        )
        out.append(
            f"priority_rules[{i}].priority: {rule.priority!r} is not a priority of the priority scheme "
            f"{scheme_name!r} of project {cfg.project_key}, so Jira would refuse every issue the rule "
            f"matches ('The priority selected is invalid.'); {fix}"
        )
    return out


def check_priorities(cfg: Config, client: JiraClient, project: Mapping[str, Any]) -> list[str]:
    """Problems with ``priority_rules`` against the project's priority scheme (none without rules)."""
    from bc_jira.http import ApiError

    if not cfg.priority_rules:
        return []
    try:
        scheme, names = project_scheme(client, str(project.get("id")))
    except ApiError as exc:
        return [
            f"priority_rules: cannot read the priority schemes ({exc}); the connection's user needs to see "
            f"project {cfg.project_key}'s settings, or remove priority_rules"
        ]
    if scheme is None:
        return [
            f"priority_rules: Jira shows no priority scheme for project {cfg.project_key} (none lists it and "
            f"there is no default scheme); associate the project with one in {_WHERE}, or remove "
            "priority_rules"
        ]
    return name_problems(cfg, str(scheme.get("name")), names)

"""Jira priorities and priority schemes: the catalogue, their JSON, the check of ``fields.priority``.

Spec (jira-platform-openapi-v3.json): ``GET /rest/api/3/priority`` (every priority), ``GET
/rest/api/3/priority/search`` (paged; ``projectId`` keeps the priorities available in those projects),
``GET /rest/api/3/priorityscheme`` (paged; ``expand=priorities,projects``), ``GET
/rest/api/3/priorityscheme/{schemeId}/priorities`` and ``.../projects`` (paged). A new Jira Cloud site has
Highest/High/Medium/Low/Lowest in the "Default Priority Scheme" (default Medium); this site also has a
"Critical" priority that no scheme of the project offers, so an issue of the project cannot have it:
Jira answers ``{"errors": {"priority": "The priority selected is invalid."}}`` (seen on Jira Cloud, e.g.
tenable/integration-jira-cloud#205), and "Specify the Priority (id or name) in the string format" when
the value is not an object with an id or name string.
"""

from __future__ import annotations

from typing import Any

from bc_jira_sandbox.jira.catalog import API

PRIORITIES = [  # id, name, description, colour
    ("1", "Highest", "This problem will block progress.", "#d04437"),
    ("2", "High", "Serious problem that could block progress.", "#f15C75"),
    ("3", "Medium", "Has the potential to affect progress.", "#f79232"),
    ("4", "Low", "Minor problem or easily worked around.", "#707070"),
    ("5", "Lowest", "Trivial problem with little or no impact on progress.", "#999999"),
    ("10000", "Critical", "Used by the IT service desk; not in the finance project's scheme.", "#ff0000"),
]
DEFAULT_PRIORITY = "3"
# id, name, description, priority ids, default priority id, project ids (None: the site's project)
SCHEMES = [
    (
        "1",
        "Default Priority Scheme",
        "This is the default scheme used by all new and unassigned projects",
        ("1", "2", "3", "4", "5"),
        DEFAULT_PRIORITY,
        None,
    ),
    ("10000", "Service Desk Priorities", "Incident priorities", ("10000", "2", "3"), "3", ()),
]
INVALID = "The priority selected is invalid."
NOT_A_STRING = "Specify the Priority (id or name) in the string format"


def priority_json(site: str, p: tuple[str, str, str, str], *, sequence: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "self": f"{site}{API}/priority/{p[0]}",
        "statusColor": p[3],
        "description": p[2],
        "iconUrl": f"{site}/images/icons/priorities/{p[1].lower()}.svg",
        "name": p[1],
        "id": p[0],
        "isDefault": p[0] == DEFAULT_PRIORITY,
    }
    if sequence is not None:
        out["sequence"] = str(sequence)
    return out


def by_id(pid: str) -> tuple[str, str, str, str] | None:
    return next((p for p in PRIORITIES if p[0] == pid), None)


def scheme_projects(scheme: tuple[Any, ...], project_id: str) -> tuple[str, ...]:
    return (project_id,) if scheme[5] is None else tuple(scheme[5])


def project_priority_ids(project_id: str) -> tuple[str, ...]:
    """The priorities an issue of the project may have (its scheme's)."""
    for scheme in SCHEMES:
        if project_id in scheme_projects(scheme, project_id):
            return tuple(scheme[3])
    return ()


def resolve(value: Any, project_id: str) -> str:
    """The priority id of a ``fields.priority`` value (``{"id"}`` or ``{"name"}``), or ValueError(message)."""
    if not isinstance(value, dict):
        raise ValueError(NOT_A_STRING)
    ident, name = value.get("id"), value.get("name")
    if ident is not None and not isinstance(ident, str):
        raise ValueError(NOT_A_STRING)
    if ident is None and not isinstance(name, str):
        raise ValueError(NOT_A_STRING)
    allowed = project_priority_ids(project_id)
    for p in PRIORITIES:
        if (ident is not None and p[0] == ident) or (ident is None and p[1] == name):
            if p[0] in allowed:
                return p[0]
            break
    raise ValueError(INVALID)

"""bc_jira_connect's checks: everything a sync needs from Jira, every problem at once."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira.config import ENTITIES, AssigneeRule, Config, EntityConfig
from bc_jira.entities import spec
from bc_jira.setup.priorities import check_priorities
from bc_jira.setup.reject import reject_checks
from bc_jira.sync.heal import duplicate_link_type
from bc_jira.sync.lookup import _jql_string

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)


class ConnectError(RuntimeError):
    """Everything bc_jira_connect found wrong, one line each with the fix; nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"bc_jira_connect found {len(self.problems)} problem(s); nothing was saved:\n{lines}"
        )


@dataclass
class ConnectReport:
    cloud_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # configured field name -> customfield id
    users: dict[str, str] = field(default_factory=dict)  # email -> accountId
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_FIELD_TYPES = {"amount": "number"}

# What a real create/edit accepts (spec createIssue): single-line text fields take the plain strings the
# connector sends, Paragraph (textarea) fields only ADF; the amount is a number. schema.custom tells them
# apart (schema.type is "string" for textfield, textarea, url and read-only fields alike).
CUSTOM_TYPE_PREFIX = "com.atlassian.jira.plugin.system.customfieldtypes:"
_FIELD_CUSTOM = {"amount": "float"}
_CUSTOM_HELP = {
    "textfield": ("a Short text (single line) field", "Free Text Searcher"),
    "float": ("a Number field", "Number Searcher"),
}
CREATEMETA_PAGE = 50  # the spec's default page size for createmeta (at most 200)


def field_setup_problems(key: str, name: str, f: Mapping[str, Any]) -> list[str]:
    """Why a discovered custom field would make creates or the record-id search fail (type, searcher)."""
    want = _FIELD_CUSTOM.get(key, "textfield")
    kind, searcher = _CUSTOM_HELP[want]
    custom = str((f.get("schema") or {}).get("custom") or "")
    out: list[str] = []
    if custom != CUSTOM_TYPE_PREFIX + want:
        why = (
            " (a Paragraph field takes only Atlassian Document Format, not the plain text sent here)"
            if custom.endswith(":textarea")
            else ""
        )
        out.append(
            f"fields.{key}: Jira field {name!r} ({f.get('id')}) is of type {custom or 'unknown'}{why}; the "
            f"connector needs {kind} ({CUSTOM_TYPE_PREFIX}{want}). A field's type cannot be changed: create "
            f"{kind} and put its name in bc_jira_config fields.{key}"
        )
    if not f.get("searchable"):
        out.append(
            f"fields.{key}: Jira field {name!r} ({f.get('id')}) has no searcher, so JQL cannot use it; in "
            f"Jira settings > Issues > Custom fields, edit {name!r} and set its search template to {searcher}"
        )
    return out


def create_screen_fields(cfg: Config, ecfg: EntityConfig, custom_ids: Mapping[str, str]) -> dict[str, str]:
    """Field id -> how to name it in a message, for every field a create of this entity may set."""
    names = cfg.fields.wanted(with_company=bool(cfg.companies))
    need = {"summary": "Summary", "description": "Description"}
    need.update({fid: f"{names[key]!r} ({fid})" for key, fid in custom_ids.items()})
    if cfg.labels or ecfg.labels:
        need["labels"] = "Labels"
    if cfg.assignees:
        need["assignee"] = "Assignee"
    if spec(ecfg.name).due_date_field:
        need["duedate"] = "Due date"
    if any(ecfg.name in rule.entities for rule in cfg.priority_rules):
        need["priority"] = "Priority"
    return need


def screen_problems(
    cfg: Config, ecfg: EntityConfig, on_screen: set[str], need: Mapping[str, str], screen: str = "create"
) -> list[str]:
    """One problem per needed field missing from the create (or edit) screen of the entity's issue type."""
    what = "every create fails" if screen == "create" else "every update of its issues fails"
    verb = "creates" if screen == "create" else "edits"
    return [
        f"entities.{ecfg.name}: {label} is not on the {screen} screen of issue type {ecfg.issue_type!r} in "
        f"project {cfg.project_key}, so {what} ('cannot be set. It is not on the appropriate screen'); add "
        f"it to the screen that {verb} {ecfg.issue_type!r} issues (Project settings > Issue types > "
        f"{ecfg.issue_type} > {screen.capitalize()} screen, or Jira settings > Issues > Screens), and make "
        f"sure the field's context includes {cfg.project_key} and {ecfg.issue_type!r}"
        for fid, label in need.items()
        if fid not in on_screen
    ]


def _createmeta_pages(client: JiraClient, path: str, key: str) -> list[dict[str, Any]]:
    """Every item of a paged createmeta answer (startAt / maxResults / total)."""
    items: list[dict[str, Any]] = []
    while True:
        page = client.get_json(path, params={"startAt": len(items), "maxResults": CREATEMETA_PAGE})
        got = page.get(key) or []
        items.extend(got)
        if not got or len(items) >= int(page.get("total") or 0):
            return items


def edit_screen_checks(
    cfg: Config, client: JiraClient, custom_ids: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """(problems, notes): the edit screen of each enabled issue type, through editmeta of its newest issue.

    editmeta needs an existing issue; before the first sync there is none, and the check says so in a note
    (an edit Jira refuses later is audited per record with Jira's message).
    """
    from bc_jira.http import ApiError

    problems: list[str] = []
    notes: list[str] = []
    for ecfg in (cfg.entity(e) for e in ENTITIES):
        if not ecfg.enabled:
            continue
        jql = (
            f"project = {_jql_string(cfg.project_key)} AND issuetype = {_jql_string(ecfg.issue_type)} "
            "ORDER BY created DESC"
        )
        try:
            found = client.post_json("search/jql", {"jql": jql, "maxResults": 1, "fields": ["id"]})
            issues = found.get("issues") or []
            if not issues:
                notes.append(
                    f"{ecfg.name}: edit screen not checked yet (no {ecfg.issue_type!r} issue exists)"
                )
                continue
            meta = client.get_json(f"issue/{issues[0]['id']}/editmeta")
        except ApiError as exc:
            problems.append(
                f"entities.{ecfg.name}: cannot read the edit screen of {ecfg.issue_type!r} ({exc})"
            )
            continue
        on_screen = set((meta.get("fields") or {}).keys())
        need = create_screen_fields(cfg, ecfg, custom_ids)
        problems += screen_problems(cfg, ecfg, on_screen, need, screen="edit")
    return problems, notes


def create_screen_checks(cfg: Config, client: JiraClient, custom_ids: Mapping[str, str]) -> list[str]:
    """Through createmeta: are the fields the connector sets on each enabled issue type's create screen?"""
    from bc_jira.http import ApiError

    base = f"issue/createmeta/{cfg.project_key}/issuetypes"
    try:
        types = {(t.get("name") or "").casefold(): t for t in _createmeta_pages(client, base, "issueTypes")}
    except ApiError as exc:
        return [
            f"project_key: cannot read the create metadata of {cfg.project_key} ({exc}); the connection's "
            "user needs the Create issues permission in that project"
        ]
    out: list[str] = []
    for ecfg in (cfg.entity(e) for e in ENTITIES):
        if not ecfg.enabled:
            continue
        t = types.get(ecfg.issue_type.casefold())
        if t is None:
            continue  # not an issue type of the project: reported with the project checks
        try:
            fields = _createmeta_pages(client, f"{base}/{t['id']}", "fields")
        except ApiError as exc:
            out.append(f"entities.{ecfg.name}: cannot read the create screen of {ecfg.issue_type!r} ({exc})")
            continue
        on_screen = {str(f.get("fieldId") or f.get("key")) for f in fields}
        out += screen_problems(cfg, ecfg, on_screen, create_screen_fields(cfg, ecfg, custom_ids))
    return out


class JiraClient(Protocol):
    """What the checks need of the Jira ApiClient (paths relative to ``/rest/api/3``)."""

    def get_json(self, path_or_url: str, **kw: Any) -> Any: ...

    def post_json(self, path_or_url: str, json: Any = None, **kw: Any) -> Any: ...


def _single_field_problem(key: str, name: str, matches: list[dict[str, Any]]) -> str | None:
    """Why the configured name does not pick exactly one custom field, or None."""
    if not matches:
        return (
            f"fields.{key}: no Jira custom field named {name!r}; create it (type "
            f"{_FIELD_TYPES.get(key, 'text')}, with a searcher) or change the name in "
            "bc_jira_config"
        )
    if len(matches) > 1:
        ids = ", ".join(m["id"] for m in matches)
        return (
            f"fields.{key}: {len(matches)} custom fields are named {name!r} ({ids}); "
            "rename all but one in Jira"
        )
    return None


def check_fields(cfg: Config, client: JiraClient, rep: ConnectReport) -> tuple[list[str], dict[str, str]]:
    """(problems, config key -> the one custom field of that name); usable fields go to ``rep.fields``."""
    from bc_jira.http import ApiError

    problems: list[str] = []
    try:
        all_fields = client.get_json("field")
    except ApiError as exc:
        problems.append(f"cannot list Jira fields ({exc}); check the jira_default connection and scopes")
        all_fields = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for f in all_fields:
        if f.get("custom"):
            by_name.setdefault((f.get("name") or "").casefold(), []).append(f)
    custom_ids: dict[str, str] = {}
    wanted = cfg.fields.wanted(with_company=bool(cfg.companies))
    for key, name in wanted.items():
        matches = by_name.get(name.casefold(), [])
        problem = _single_field_problem(key, name, matches)
        if problem:
            problems.append(problem)
            continue
        f = matches[0]
        custom_ids[key] = f["id"]
        setup = field_setup_problems(key, name, f)
        problems.extend(setup)
        if not setup:
            rep.fields[name] = f["id"]
    return problems, custom_ids


def read_project(cfg: Config, client: JiraClient) -> tuple[dict[str, Any] | None, list[str]]:
    """The project (None when it cannot be read) and why not."""
    from bc_jira.http import ApiError, NotFoundError

    try:
        return client.get_json(f"project/{cfg.project_key}"), []
    except NotFoundError:
        return None, [
            f"project_key: Jira project {cfg.project_key!r} not found or not visible to the "
            "connection's user; fix project_key or grant Browse projects"
        ]
    except ApiError as exc:
        return None, [f"project_key: cannot read project {cfg.project_key!r} ({exc})"]


def _enabled(cfg: Config) -> list[EntityConfig]:
    return [cfg.entity(e) for e in ENTITIES if cfg.entity(e).enabled]


def check_issue_types(cfg: Config, project: Mapping[str, Any]) -> list[str]:
    """Every enabled entity's issue type is one of the project's."""
    types = {(t.get("name") or "").casefold() for t in project.get("issueTypes") or []}
    available = ", ".join(sorted(t.get("name") for t in project.get("issueTypes") or []))
    return [
        f"entities.{ecfg.name}.issue_type: {ecfg.issue_type!r} is not an issue type "
        f"of project {cfg.project_key}; available: {available}"
        for ecfg in _enabled(cfg)
        if ecfg.issue_type.casefold() not in types
    ]


def workflow_problems(
    cfg: Config, ecfg: EntityConfig, sts: list[dict[str, Any]], notes: list[str]
) -> list[str]:
    """One issue type's workflow: a Done status when a done action is set; the configured transitions."""
    problems: list[str] = []
    names = {(s.get("name") or "").casefold() for s in sts}
    done = [s["name"] for s in sts if ((s.get("statusCategory") or {}).get("key")) == "done"]
    if ecfg.done_action != "none" and not done:
        problems.append(
            f"entities.{ecfg.name}: the workflow of {ecfg.issue_type!r} has no status in "
            f"the Done category, so done_action {ecfg.done_action!r} can never fire; add "
            "one or set done_action to none"
        )
    elif done:
        notes.append(f"{ecfg.name}: done statuses {', '.join(done)}")
    dup_to = cfg.duplicate_transition
    if dup_to and dup_to.casefold() not in names:
        problems.append(
            f"duplicate_transition: no status {dup_to!r} in the workflow of {ecfg.issue_type!r}; use "
            f"one of {', '.join(sorted(s['name'] for s in sts))} or null"
        )
    del_to = cfg.deleted_transition
    if del_to and del_to.casefold() not in names:
        problems.append(
            f"deleted_transition: no status {del_to!r} in the workflow of {ecfg.issue_type!r}; use "
            f"one of {', '.join(sorted(s['name'] for s in sts))} or null"
        )
    reopen_to = cfg.reopen_transition
    if reopen_to and reopen_to.casefold() not in names:
        problems.append(
            f"reopen_transition: no status {reopen_to!r} in the workflow of {ecfg.issue_type!r}; use "
            f"one of {', '.join(sorted(s['name'] for s in sts))} or null"
        )
    if ecfg.resolved_transition and ecfg.resolved_transition.casefold() not in names:
        problems.append(
            f"entities.{ecfg.name}.resolved_transition: no status "
            f"{ecfg.resolved_transition!r} in the workflow of {ecfg.issue_type!r}; use one "
            f"of {', '.join(sorted(s['name'] for s in sts))} or null"
        )
    return problems


def check_workflows(cfg: Config, client: JiraClient, rep: ConnectReport) -> list[str]:
    """The workflow statuses of each enabled issue type (GET project/{key}/statuses)."""
    from bc_jira.http import ApiError

    try:
        statuses = client.get_json(f"project/{cfg.project_key}/statuses")
    except ApiError as exc:
        return [f"project_key: cannot read the workflow statuses of {cfg.project_key} ({exc})"]
    per_type = {(s.get("name") or "").casefold(): s.get("statuses") or [] for s in statuses}
    problems: list[str] = []
    workflows: dict[str, tuple[EntityConfig, list[dict[str, Any]]]] = {}
    for ecfg in _enabled(cfg):
        sts = per_type.get(ecfg.issue_type.casefold())
        if sts is not None:
            problems += workflow_problems(cfg, ecfg, sts, rep.notes)
            workflows[ecfg.name] = (ecfg, sts)
    return problems + reject_checks(cfg, workflows, rep.notes)


def check_link_types(client: JiraClient, rep: ConnectReport) -> list[str]:
    """A second issue found for one record is linked to the kept one as a Duplicate: that type must exist."""
    from bc_jira.http import ApiError, NotFoundError

    try:
        types = (client.get_json("issueLinkType") or {}).get("issueLinkTypes") or []
    except NotFoundError:
        return [
            "issue linking is disabled in Jira (GET issueLinkType answered 404); turn it on in Jira "
            "settings > Issues > Issue linking, so duplicate issues of one record can be linked to the "
            "record's issue"
        ]
    except ApiError as exc:
        return [f"issue linking: cannot list the issue link types ({exc})"]
    name = duplicate_link_type(types)
    if name is None:
        return [
            "issue linking: Jira has no link type named 'Duplicate' (nor one whose outward description "
            "is 'duplicates'); add it in Jira settings > Issues > Issue linking, so duplicate issues of "
            "one record can be linked to the record's issue"
        ]
    rep.notes.append(f"duplicates are linked with the {name!r} issue link type")
    return []


def _user_problem(client: JiraClient, path: str, rule: AssigneeRule, rep: ConnectReport) -> str | None:
    """Resolve one assignee rule (accountId exists, or the email names exactly one user)."""
    if rule.account_id:
        found = client.get_json("user/bulk", params={"accountId": rule.account_id})
        return (
            None
            if found.get("values") or []
            else f"{path}.account_id: no active Jira user {rule.account_id!r}"
        )
    email = rule.email or ""
    users = client.get_json("user/search", params={"query": email})
    exact = [u for u in users if (u.get("emailAddress") or "").casefold() == email.casefold()]
    pick = exact if exact else (users if len(users) == 1 else [])
    if len(pick) == 1:
        rep.users[email.casefold()] = pick[0]["accountId"]
        return None
    if not users:
        return (
            f"{path}.email: no Jira user found for {email!r}; check the address or use "
            "account_id (Jira user profile URL ends with it)"
        )
    return (
        f"{path}.email: {len(users)} Jira users match {email!r} and none shows that "
        "email (hidden by privacy settings); use account_id instead"
    )


def check_users(cfg: Config, client: JiraClient, rep: ConnectReport) -> list[str]:
    """Every assignee rule names one Jira user; emails resolved go to ``rep.users``."""
    from bc_jira.http import ApiError

    problems: list[str] = []
    for i, rule in enumerate(cfg.assignees):
        path = f"assignees[{i}]"
        try:
            problem = _user_problem(client, path, rule, rep)
        except ApiError as exc:
            problem = f"{path}: user lookup failed ({exc}); the connection needs Browse users and groups"
        if problem:
            problems.append(problem)
    return problems


def project_checks(
    cfg: Config, client: JiraClient, custom_ids: Mapping[str, str], rep: ConnectReport
) -> list[str]:
    """Project, issue types, workflows, create and edit screens (skipped when the project is unreadable)."""
    project, problems = read_project(cfg, client)
    if project is None:
        return problems
    problems += check_issue_types(cfg, project)
    problems += check_priorities(cfg, client, project)
    problems += check_workflows(cfg, client, rep)
    problems += create_screen_checks(cfg, client, custom_ids)
    edit_problems, edit_notes = edit_screen_checks(cfg, client, custom_ids)
    rep.notes.extend(edit_notes)
    return problems + edit_problems


def company_project_checks(
    cfg: Config, client: JiraClient, custom_ids: Mapping[str, str], rep: ConnectReport
) -> list[str]:
    """The same project checks for each other project a company sends its issues to
    (``companies[].project_key``): a missing project or field off its screens would fail every create."""
    import dataclasses

    problems: list[str] = []
    seen = {cfg.project_key}
    for entry in cfg.companies:
        key = entry.project_key
        if not key or key in seen:
            continue
        seen.add(key)
        found = project_checks(dataclasses.replace(cfg, project_key=key), client, custom_ids, rep)
        problems += [f"{entry.path}.project_key {key}: {p}" for p in found]
    return problems


def connect_checks(cfg: Config, client: JiraClient, cloud_id: str | None = None) -> ConnectReport:
    """Run every check and gather every problem: field ids, project, issue types, workflows, screens, issue
    linking, users. What the checks learn (field ids, users, notes) goes into the report too."""
    rep = ConnectReport(cloud_id=cloud_id)
    problems, custom_ids = check_fields(cfg, client, rep)
    rep.problems.extend(problems)
    rep.problems.extend(project_checks(cfg, client, custom_ids, rep))
    rep.problems.extend(company_project_checks(cfg, client, custom_ids, rep))
    rep.problems.extend(check_link_types(client, rep))
    rep.problems.extend(check_users(cfg, client, rep))
    return rep

"""Jira's state: the project, issues, users and webhooks, and their JSON views."""

from __future__ import annotations

import random
import uuid
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox import atlassian
from bc_jira_sandbox.jira.attachments import DEFAULT_UPLOAD_LIMIT, AttachmentsMixin
from bc_jira_sandbox.jira.catalog import (
    API,
    CATEGORIES,
    CUSTOM_FIELDS,
    CUSTOM_TYPE_PREFIX,
    CUSTOM_TYPES,
    ISSUE_TYPES,
    SCREEN_SYSTEM_FIELDS,
    STATUSES,
    SYSTEM_FIELDS,
    USERS,
    JiraError,
)
from bc_jira_sandbox.jira.fields import FieldsMixin
from bc_jira_sandbox.jira.issues import IssuesMixin
from bc_jira_sandbox.jira.links import LinksMixin
from bc_jira_sandbox.jira.projects import ProjectsMixin
from bc_jira_sandbox.jira.search import SearchMixin
from bc_jira_sandbox.jira.webhooks import WebhooksMixin

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


class JiraState(
    FieldsMixin, LinksMixin, IssuesMixin, SearchMixin, WebhooksMixin, AttachmentsMixin, ProjectsMixin
):
    """Everything Jira holds; guarded by ``sb.lock``; picklable apart from ``sb``."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.validate = False
        self.reset()

    # -- seed ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        sb = self.sb
        rng = random.Random(f"jira-{sb.options.seed}")
        self.expiration_date_format = "epoch_ms"
        self.issue_linking = True  # a Jira admin can turn issue linking off: its endpoints then answer 404
        self._view_cache: dict[str, Any] = {}
        self._or_cache: dict[int, Any] = {}
        self._token_memo: dict[str, tuple[str, tuple[str, ...], frozenset[str]]] = {}
        self.oauth = atlassian.reset(sb)
        self.project = {"id": "10000", "key": sb.creds["project_key"], "name": "Finance Approvals"}
        self.projects = {self.project["id"]: self.project}  # an admin adds more: POST /_sandbox/jira/projects
        self.issue_nums: dict[str, int] = {}  # project id -> next issue number (not the seeded project's)
        base = rng.randrange(10030, 10700)
        self.fields: list[dict[str, Any]] = []
        for fid, name, schema, clauses in SYSTEM_FIELDS:
            fd: dict[str, Any] = {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": clauses,
            }
            if schema is not None:
                fd["schema"] = schema
            self.fields.append(fd)
        num = base
        for name, kind in CUSTOM_FIELDS:
            num += rng.randrange(1, 9)
            fid = f"customfield_{num}"
            ftype = CUSTOM_TYPES[kind][0]
            self.fields.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "custom": True,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [f"cf[{num}]", name],
                    "schema": {
                        "type": ftype,
                        "custom": CUSTOM_TYPE_PREFIX + kind,
                        "customId": num,
                    },
                }
            )
        self.users: list[dict[str, Any]] = []
        for i, (name, email, visible) in enumerate(USERS):
            account = f"{rng.randrange(10**5, 10**6)}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            self.users.append(
                {
                    "accountId": account,
                    "displayName": name,
                    "email": sb.creds["jira_email"] if i == 0 else email,
                    "emailVisible": visible,
                    "accountType": "atlassian",
                    "active": True,
                }
            )
        self.issues: dict[str, dict[str, Any]] = {}  # id -> record
        self.keys: dict[str, str] = {}  # key -> id
        self.next_issue_id = 10000
        self.next_issue_num = 1
        self.next_comment_id = 10000
        self.next_change_id = 10000
        self.issue_links: dict[str, dict[str, str]] = {}  # link id -> {type, inward, outward} (issue ids)
        self.next_link_id = 10000
        self.attachment_bytes: dict[str, bytes] = {}  # attachment id -> file (metadata: issue["attachments"])
        self.next_attachment_id = 10000
        self.attachment_max_bytes = DEFAULT_UPLOAD_LIMIT
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.webhook_url: str | None = None
        self.next_webhook_id = 1000
        self.admin_webhooks: dict[int, dict[str, Any]] = {}  # id -> {url, events, jqlFilter, secret}
        self.next_admin_webhook_id = 1
        self.deliveries: list[dict[str, Any]] = []  # last deliveries (for tests / debugging)
        self.next_delivery = 1
        # Screens per issue type (spec createIssue: "the same fields that appear on the issue's create
        # screen"; editIssue: 400 for fields "not associated with the issue's edit screen"). Every field
        # starts on every screen; /_sandbox/jira/screen takes fields off, as a Jira admin would.
        everything = set(SCREEN_SYSTEM_FIELDS) | {f["id"] for f in self.fields if f["custom"]}
        self.screens: dict[str, dict[str, set[str]]] = {
            t[0]: {"create": set(everything), "edit": set(everything)} for t in ISSUE_TYPES
        }

    def seed(self) -> None:
        """Jira starts empty of issues: the connector creates them."""
        return

    # -- lookups ---------------------------------------------------------------------------------------------
    def url(self, path: str = "") -> str:
        return f"{self.sb.creds['site_url']}{path}"

    def status(self, ident: str) -> tuple[str, str, str, str] | None:
        for s in STATUSES:
            if ident == s[0] or ident.lower() == s[1].lower():
                return s
        return None

    def issue_type(self, ident: str) -> tuple[str, str] | None:
        for t in ISSUE_TYPES:
            if ident == t[0] or ident.lower() == t[1].lower():
                return t
        return None

    def user(self, account_id: str) -> dict[str, Any] | None:
        return next((u for u in self.users if u["accountId"] == account_id), None)

    def issue(self, id_or_key: str) -> dict[str, Any]:
        iid = self.keys.get(id_or_key.upper(), id_or_key)
        rec = self.issues.get(iid)
        if rec is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return rec

    # -- representations -------------------------------------------------------------------------------------
    def user_json(self, u: dict[str, Any] | None, *, details: bool = False) -> dict[str, Any] | None:
        if u is None:
            return None
        out: dict[str, Any] = {
            "self": self.url(f"{API}/user?accountId={u['accountId']}"),
            "accountId": u["accountId"],
            "accountType": u["accountType"],
            "displayName": u["displayName"],
            "active": u["active"],
            "timeZone": "Etc/UTC",
            "avatarUrls": {
                s: f"https://avatar-management.services.atlassian.com/{u['accountId'][:6]}/{s}"
                for s in ("16x16", "24x24", "32x32", "48x48")
            },
        }
        if u["emailVisible"] and u["email"]:
            out["emailAddress"] = u["email"]
        if not details:
            out["locale"] = "en_US"
        return out

    def status_json(self, s: tuple[str, str, str, str]) -> dict[str, Any]:
        cat = CATEGORIES[s[2]]
        return {
            "self": self.url(f"{API}/status/{s[0]}"),
            "description": "",
            "iconUrl": self.url("/images/s.png"),
            "name": s[1],
            "id": s[0],
            "statusCategory": {"self": self.url(f"{API}/statuscategory/{cat['id']}"), **cat},
        }

    def issue_type_json(self, t: tuple[str, str]) -> dict[str, Any]:
        return {
            "self": self.url(f"{API}/issuetype/{t[0]}"),
            "id": t[0],
            "description": f"{t[1]} from BC",
            "iconUrl": self.url(f"/images/issuetype-{t[0]}.png"),
            "name": t[1],
            "subtask": False,
            "avatarId": 10300 + int(t[0]) % 100,
            "hierarchyLevel": 0,
        }

    def project_json(self, full: bool = False, project: dict[str, Any] | None = None) -> dict[str, Any]:
        p = project or self.project
        out: dict[str, Any] = {
            "self": self.url(f"{API}/project/{p['id']}"),
            "id": p["id"],
            "key": p["key"],
            "name": p["name"],
            "projectTypeKey": "business",
            "simplified": False,
            "avatarUrls": {
                s: self.url(f"/images/project-{s}.png") for s in ("16x16", "24x24", "32x32", "48x48")
            },
        }
        if full:
            out.update(
                {
                    "description": "Business Central documents awaiting a human step",
                    "lead": self.user_json(self.users[1]),
                    "assigneeType": "UNASSIGNED",
                    "issueTypes": [self.issue_type_json(t) for t in ISSUE_TYPES],
                    "isPrivate": False,
                    "style": "classic",
                    "archived": False,
                    "deleted": False,
                }
            )
        return out

    def issue_json(
        self,
        rec: dict[str, Any],
        fields: list[str] | str | None,
        *,
        snapshot: dict[str, Any] | None = None,
        properties: list[str] | None = None,
    ) -> dict[str, Any]:
        values = snapshot if snapshot is not None else self.field_values(rec)
        wanted = self.select_fields(fields, values)
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": rec["id"],
            "self": self.url(f"{API}/issue/{rec['id']}"),
            "key": rec["key"],
        }
        if wanted:
            out["fields"] = {k: values[k] for k in wanted}
        if properties:
            props = rec.get("properties") or {}
            keys = list(props) if "*all" in properties else [p for p in properties if p in props]
            out["properties"] = {k: props[k] for k in keys}
        return out

    # -- users -----------------------------------------------------------------------------------------------
    def find_users(self, query: str | None, account_id: str | None) -> list[dict[str, Any]]:
        if account_id:
            u = self.user(account_id)
            return [u] if u else []
        q = (query or "").lower()
        out = []
        for u in self.users:
            words = u["displayName"].lower().split()
            email = (u["email"] or "").lower()
            if (
                any(w.startswith(q) for w in words)
                or u["displayName"].lower().startswith(q)
                or (u["emailVisible"] and email.startswith(q))
                or (email and email == q)
            ):
                out.append(u)
        return out

"""Jira's fixed catalogue here (statuses, issue types, fields, users, limits) and its error answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

API = "/rest/api/3"
WEBHOOK_TTL_S = 30 * 24 * 3600
# Webhook ``expirationDate``: the spec's schemas (Webhook, WebhooksExpirationDate) say int64 epoch ms, but its
# own examples for GET /rest/api/3/webhook and PUT /rest/api/3/webhook/refresh, and Atlassian's reference page
# (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-webhooks), show
# "2019-06-01T12:42:30.000+0000"; no capture of the real wire form was found [inference].
# So the sandbox answers either (``POST /_sandbox/jira/options {"expiration_date_format": "iso"}``).
EXPIRATION_DATE_FORMATS = ("epoch_ms", "iso")


def expiration_date_out(ms: int, form: str) -> int | str:
    """``expirationDate`` as the sandbox answers it: epoch ms, or the spec example's form."""
    if form != "iso":
        return ms
    dt = datetime.fromtimestamp(ms / 1000.0, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


BULK_LIMIT = 50
RECONCILE_LIMIT = 50
BULK_FETCH_LIMIT = 100  # POST /issue/bulkfetch: "You can request up to 100 issues."
WEBHOOK_RETRY_DELAYS_S = (1.0, 3.0, 10.0)
DELIVERY_JWT_TTL_S = 180  # "a short exp": the exact lifetime is not documented
CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = [  # id, name, category, transition id
    ("10000", "To Do", "new", "11"),
    ("3", "In Progress", "indeterminate", "21"),
    ("10001", "Done", "done", "31"),
    ("10002", "Rejected", "done", "41"),
]
ISSUE_TYPES = [("10001", "Task"), ("10002", "Invoice"), ("10003", "Vendor"), ("10004", "Purchase Order")]
CUSTOM_FIELDS = [  # name, kind
    ("BC Record Id", "textfield"),
    ("BC Document No.", "textfield"),
    ("BC Vendor", "textfield"),
    ("BC Amount", "float"),
    ("BC Currency", "textfield"),
    ("BC Status", "textfield"),
    # The company of a record when one deployment syncs several BC companies (bc_jira ``fields.company``):
    # a short text field a Jira admin creates like the six above (Settings > Issues > Custom fields > Short
    # text, https://support.atlassian.com/jira-cloud-administration/docs/create-a-custom-field/).
    ("BC Company", "textfield"),
]
SYSTEM_FIELDS = [  # id, name, schema, clause names
    ("summary", "Summary", {"type": "string", "system": "summary"}, ["summary"]),
    ("description", "Description", {"type": "string", "system": "description"}, ["description"]),
    ("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, ["issuetype", "type"]),
    ("project", "Project", {"type": "project", "system": "project"}, ["project"]),
    ("status", "Status", {"type": "status", "system": "status"}, ["status"]),
    (
        "statusCategory",
        "Status Category",
        {"type": "statusCategory", "system": "statusCategory"},
        ["statusCategory"],
    ),
    ("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}, ["labels"]),
    ("assignee", "Assignee", {"type": "user", "system": "assignee"}, ["assignee"]),
    ("reporter", "Reporter", {"type": "user", "system": "reporter"}, ["reporter"]),
    ("created", "Created", {"type": "datetime", "system": "created"}, ["created", "createdDate"]),
    ("updated", "Updated", {"type": "datetime", "system": "updated"}, ["updated", "updatedDate"]),
    ("issuekey", "Key", None, ["id", "issue", "issuekey", "key"]),
    # Jira Cloud system fields on every site (GET /field): due date (a date, "YYYY-MM-DD" on create/edit;
    # JQL "due" / "duedate") and priority (the project's priority scheme; see jira.priorities).
    ("duedate", "Due date", {"type": "date", "system": "duedate"}, ["due", "duedate"]),
    ("priority", "Priority", {"type": "priority", "system": "priority"}, ["priority"]),
    # Jira Cloud system fields (GET /field lists them on every site): links to other issues, and when the
    # issue last changed status category (JQL statusCategoryChangedDate).
    (
        "issuelinks",
        "Linked Issues",
        {"type": "array", "items": "issuelinks", "system": "issuelinks"},
        ["issueLink"],
    ),
    (
        "attachment",
        "Attachment",
        {"type": "array", "items": "attachment", "system": "attachment"},
        ["attachments"],
    ),
    (
        "statuscategorychangedate",
        "Status Category Changed",
        {"type": "datetime", "system": "statuscategorychangedate"},
        ["statusCategoryChangedDate"],
    ),
]
# Custom field types the sandbox knows (``schema.custom`` = CUSTOM_TYPE_PREFIX + key) with their JSON type
# and default searcher (spec ``POST /rest/api/3/field``: float -> exactnumber/numberrange, textfield and
# textarea -> textsearcher, url -> exacttextsearcher; "If no searcher is provided, the field isn't
# searchable").
CUSTOM_TYPES = {
    "textfield": ("string", "textsearcher"),
    "textarea": ("string", "textsearcher"),
    "url": ("string", "exacttextsearcher"),
    "float": ("number", "exactnumber"),
}
CUSTOM_TYPE_PREFIX = "com.atlassian.jira.plugin.system.customfieldtypes:"
# System fields a screen can hold (project and issue type are always part of a create, never of a screen).
SCREEN_SYSTEM_FIELDS = ("summary", "description", "labels", "assignee", "reporter", "duedate", "priority")
CREATEMETA_MAX = 200
OFF_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
NAVIGABLE = [
    "summary",
    "description",
    "issuetype",
    "project",
    "status",
    "labels",
    "assignee",
    "reporter",
    "created",
    "updated",
    "issuelinks",
    "statuscategorychangedate",
    "duedate",
    "priority",
]
# Jira Cloud default issue link types (GET /rest/api/3/issueLinkType on a new site): id, name, inward, outward
LINK_TYPES = [
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Cloners", "is cloned by", "clones"),
    ("10002", "Duplicate", "is duplicated by", "duplicates"),
    ("10003", "Relates", "relates to", "relates to"),
]
COMMENT_PAGE_MAX = 5000
USERS = [  # display name, email, email visible
    ("BC Connector", None, True),  # the connector's own account (email from creds)
    ("Alice Approver", "alice.approver@example.com", True),
    ("Bob Buyer", "bob.buyer@example.com", False),
    ("Carol Controller", "carol.controller@example.com", True),
    ("Dan Payables", "dan.payables@example.com", False),
    ("Erin Auditor", "erin.auditor@example.com", True),
]


_KEEP = object()  # set_field_type: leave the searcher as it is


class JiraError(Exception):
    """A Jira ``ErrorCollection`` answer."""

    def __init__(self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}


def _as_string(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(value) if isinstance(value, list) else str(value)


def jira_ts(dt: datetime) -> str:
    """Jira's timestamp form: 2024-01-01T10:00:00.000+0000."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


# -- Atlassian Document Format -------------------------------------------------------------------------------

"""The typed ``bc_jira_config`` model: names, defaults, the value classes and :class:`ConfigError`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bc_jira.config.attachments import AttachmentsConfig
from bc_jira.config.reject import DEFAULT_REJECT_STATUSES
from bc_jira.entities import BLANK, ENTITIES, SPECS
from bc_jira.entities import WATERMARK_PREFIX as WATERMARK_PREFIX  # the Variable name, read by the edges

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.config.companies import CompanyEntry, CompanyScope
    from bc_jira.config.priority import PriorityRule

VARIABLE_KEY = "bc_jira_config"
FIELDS_VARIABLE_KEY = "bc_jira_jira_fields"
USERS_VARIABLE_KEY = "bc_jira_jira_users"

# Views of the entity registry (bc_jira.entities) under the names the config model uses.
ENTITY_SETS: dict[str, str] = {n: s.entity_set for n, s in SPECS.items()}
ENUMS: dict[str, dict[str, tuple[str, ...]]] = {n: s.enums for n, s in SPECS.items()}
TEMPLATE_FIELDS: dict[str, frozenset[str]] = {n: s.template_fields for n, s in SPECS.items()}
# Derived values mapping.py offers to every template.
TEMPLATE_EXTRAS = frozenset({"status_text", "amount", "currency"})
DONE_ACTIONS: dict[str, tuple[str, ...]] = {n: s.done_actions for n, s in SPECS.items()}
DEFAULT_ISSUE_TYPES = {n: s.issue_type for n, s in SPECS.items()}
DEFAULT_SELECTION = {n: s.selection for n, s in SPECS.items()}
DEFAULT_DONE_ACTION = {n: s.done_action for n, s in SPECS.items()}
DEFAULT_SUMMARY = {n: s.summary for n, s in SPECS.items()}
DEFAULT_FIELD_NAMES = {
    "record_id": "BC Record Id",
    "document_number": "BC Document No.",
    "vendor": "BC Vendor",
    "amount": "BC Amount",
    "currency": "BC Currency",
    "status": "BC Status",
}
DEFAULT_BATCH_SIZE = 200
DEFAULT_OVERLAP_SECONDS = 120
DEFAULT_SEARCH_SETTLE_SECONDS = 60
DEFAULT_REOPEN_TRANSITION = "To Do"  # the first status of Jira's default workflows
DEFAULT_LABELS = ("bc-jira",)
# Jira rate limits (rate_limit key): waits up to this are slept in process, longer ones defer the task ...
DEFAULT_MAX_INLINE_WAIT_SECONDS = 120
# ... for at most this long in total (points quotas are hourly: a reset is at most an hour away).
DEFAULT_MAX_DEFER_SECONDS = 3900

_PROJECT_KEY_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,9}$")
_LABEL_RE = re.compile(r"^\S{1,255}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(ValueError):
    """Every problem of a config document, one per line: ``<key path>: <what is wrong>; <fix>``."""

    def __init__(self, problems: list[str], source: str = VARIABLE_KEY):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source} is invalid ({len(self.problems)} problem(s)):\n{lines}")


def encode_enum(value: str) -> str:
    """User-facing enum text ("In Review", "" or " ") -> BC JSON member name ("In_x0020_Review")."""
    if value.strip() == "":
        return BLANK
    return value.strip().replace(" ", "_x0020_")


def decode_enum(value: Any) -> str:
    """BC JSON member name -> readable text; blank -> ""."""
    if value is None:
        return ""
    text = str(value).replace("_x0020_", " ")
    return text.strip()


@dataclass(frozen=True)
class Selection:
    """Which records of an entity need a human step: ``record[field]`` is one of ``values`` (encoded)."""

    field: str
    values: tuple[str, ...]

    def matches(self, record: Mapping[str, Any]) -> bool:
        raw = record.get(self.field)
        return encode_enum(str(raw) if raw is not None else "") in self.values

    def odata_filter(self) -> str:
        """``status eq 'Draft' or status eq 'In_x0020_Review'`` — usable as a BC $filter clause."""
        return " or ".join(f"{self.field} eq '{v}'" for v in self.values)


@dataclass(frozen=True)
class FieldNames:
    """Jira custom field *names* (ids are discovered by bc_jira_connect)."""

    record_id: str = DEFAULT_FIELD_NAMES["record_id"]
    document_number: str = DEFAULT_FIELD_NAMES["document_number"]
    vendor: str = DEFAULT_FIELD_NAMES["vendor"]
    amount: str = DEFAULT_FIELD_NAMES["amount"]
    currency: str = DEFAULT_FIELD_NAMES["currency"]
    status: str = DEFAULT_FIELD_NAMES["status"]
    # the issue's company (``companies``; bc_jira.config.companies): looked up only when companies are listed
    company: str = "BC Company"

    def as_dict(self) -> dict[str, str]:
        """The six fields every deployment needs (the company field is asked for apart)."""
        return {k: getattr(self, k) for k in DEFAULT_FIELD_NAMES}

    def wanted(self, *, with_company: bool) -> dict[str, str]:
        """Config key -> name of every field a deployment uses (the company field with ``companies``)."""
        return self.as_dict() | ({"company": self.company} if with_company else {})


@dataclass(frozen=True)
class AssigneeRule:
    """Vendor number or purchaser code -> Jira user (accountId, or email resolved by bc_jira_connect)."""

    match: str  # "vendor_number" | "purchaser"
    value: str
    account_id: str | None = None
    email: str | None = None

    def applies(self, record: Mapping[str, Any], entity: str) -> bool:
        if self.match == "vendor_number":
            key = SPECS[entity].vendor_number_field
            return str(record.get(key) or "").casefold() == self.value.casefold()
        return str(record.get("purchaser") or "").casefold() == self.value.casefold()


@dataclass(frozen=True)
class EntityConfig:
    name: str
    enabled: bool
    issue_type: str
    selection: Selection
    done_action: str
    resolved_transition: str | None
    summary_template: str
    labels: tuple[str, ...]

    @property
    def entity_set(self) -> str:
        return ENTITY_SETS[self.name]


@dataclass(frozen=True)
class RateLimitConfig:
    """How long the connector waits when Jira answers 429 (``rate_limit`` key)."""

    max_inline_wait_seconds: int = DEFAULT_MAX_INLINE_WAIT_SECONDS
    max_defer_seconds: int = DEFAULT_MAX_DEFER_SECONDS


@dataclass(frozen=True)
class Config:
    project_key: str
    purchase_invoices: EntityConfig
    vendors: EntityConfig
    purchase_orders: EntityConfig
    fields: FieldNames = field(default_factory=FieldNames)
    labels: tuple[str, ...] = DEFAULT_LABELS
    assignees: tuple[AssigneeRule, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE
    bc_web_client_url: str | None = None
    overlap_seconds: int = DEFAULT_OVERLAP_SECONDS
    # Jira search lags writes: a create whose answer was lost is looked up by JQL only after this long.
    search_settle_seconds: int = DEFAULT_SEARCH_SETTLE_SECONDS
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)
    # A second issue found for one record is linked to the kept one as a Duplicate, commented, and moved with
    # this transition (name of a transition or of its target status, e.g. "Done") when set.
    duplicate_transition: str | None = None
    # An issue whose BC record was deleted is commented and moved with this transition (name of a transition
    # or of its target status) when set; null leaves it in its status.
    deleted_transition: str | None = None
    # A record that needs a human step again after its issue's episode closed (a vendor blocked again): its
    # issue, when in the done category, is moved back with this transition (``bc_jira.sync.reopen``); null
    # leaves it in its status (it is still commented and acted on again by the next Done).
    reopen_transition: str | None = DEFAULT_REOPEN_TRANSITION
    # Jira priority by rule, first match wins (``priority_rules``; config.priority).
    priority_rules: tuple[PriorityRule, ...] = ()
    # Done statuses that mean "no" (``reject_statuses``; None: not configured, ``DEFAULT_REJECT_STATUSES``).
    reject_statuses_configured: tuple[str, ...] | None = None

    @property
    def reject_statuses(self) -> tuple[str, ...]:
        if self.reject_statuses_configured is None:
            return DEFAULT_REJECT_STATUSES
        return self.reject_statuses_configured

    def is_reject_status(self, name: str) -> bool:
        """Whether an issue in the done status ``name`` was rejected (case-insensitive, like Jira)."""
        return name.strip().casefold() in {n.casefold() for n in self.reject_statuses}

    attachments: AttachmentsConfig = field(default_factory=AttachmentsConfig)  # the vendor's files
    # ``companies`` as written (empty: the connection's one company) and, in a company's own view of the
    # config (``Company.config``), that company: its field value and label go on every issue
    companies: tuple[CompanyEntry, ...] = ()
    company: CompanyScope | None = None

    def entity(self, name: str) -> EntityConfig:
        if name not in ENTITIES:
            raise KeyError(f"unknown entity {name!r}; expected one of {', '.join(ENTITIES)}")
        return getattr(self, name)

    def emails(self) -> tuple[str, ...]:
        """Assignee emails that bc_jira_connect must resolve to accountIds."""
        return tuple(sorted({r.email for r in self.assignees if r.email}))

"""Typed model of the ``bc_jira_config`` Variable.

One bad value must not surface as a KeyError deep inside a mapped task: ``parse_config`` checks the
whole document and raises one :class:`ConfigError` that lists every problem with its key path and the
fix, before anything is written anywhere.
"""

from __future__ import annotations

import json
import logging
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bc_jira.entities import BLANK, ENTITIES, SPECS
from bc_jira.entities import WATERMARK_PREFIX as WATERMARK_PREFIX  # the Variable name, read by the edges

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

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in DEFAULT_FIELD_NAMES}


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

    def entity(self, name: str) -> EntityConfig:
        if name not in ENTITIES:
            raise KeyError(f"unknown entity {name!r}; expected one of {', '.join(ENTITIES)}")
        return getattr(self, name)

    def emails(self) -> tuple[str, ...]:
        """Assignee emails that bc_jira_connect must resolve to accountIds."""
        return tuple(sorted({r.email for r in self.assignees if r.email}))


_TOP_KEYS = {
    "project_key",
    "entities",
    "fields",
    "labels",
    "assignees",
    "batch_size",
    "bc_web_client_url",
    "overlap_seconds",
    "search_settle_seconds",
    "rate_limit",
    "duplicate_transition",
}
_ENTITY_KEYS = {
    "enabled",
    "issue_type",
    "selection",
    "done_action",
    "resolved_transition",
    "summary_template",
    "labels",
}
_RULE_MATCH = ("vendor_number", "purchaser")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _labels(value: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        problems.append(f'{path}: must be a list of strings; e.g. ["bc-jira"]')
        return ()
    out = []
    for i, lab in enumerate(value):
        if not _LABEL_RE.match(lab):
            problems.append(
                f"{path}[{i}]: label {lab!r} is empty, too long or contains spaces; "
                "Jira labels cannot contain spaces (use '-' instead)"
            )
        else:
            out.append(lab)
    return tuple(dict.fromkeys(out))


def _template(value: Any, entity: str, path: str, problems: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{path}: must be a non-empty string such as {DEFAULT_SUMMARY[entity]!r}")
        return DEFAULT_SUMMARY[entity]
    allowed = TEMPLATE_FIELDS[entity] | TEMPLATE_EXTRAS
    try:
        names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
    except ValueError as exc:
        problems.append(
            f"{path}: not a valid template ({exc}); use {{fieldName}} placeholders, "
            "double braces for literal ones"
        )
        return DEFAULT_SUMMARY[entity]
    for name in names:
        if name not in allowed:
            problems.append(
                f"{path}: unknown placeholder {{{name}}}; use one of {', '.join(sorted(allowed))}"
            )
    return value


def _selection(value: Any, entity: str, path: str, problems: list[str]) -> Selection:
    default_field, default_values = DEFAULT_SELECTION[entity]
    if value is None:
        return Selection(default_field, default_values)
    enum_field = next(iter(ENUMS[entity]))
    allowed = ENUMS[entity][enum_field]
    readable = ", ".join(repr(decode_enum(a) or " ") for a in allowed)
    if not isinstance(value, dict) or set(value) != {enum_field}:
        problems.append(f'{path}: must be {{"{enum_field}": [values]}} (values among {readable})')
        return Selection(default_field, default_values)
    raw = value[enum_field]
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(x, str) for x in raw):
        problems.append(f"{path}.{enum_field}: must be a non-empty list of strings among {readable}")
        return Selection(default_field, default_values)
    values = []
    for i, v in enumerate(raw):
        enc = encode_enum(v)
        if enc not in allowed:
            problems.append(
                f"{path}.{enum_field}[{i}]: {v!r} is not a BC {enum_field} value; use one of {readable}"
            )
        else:
            values.append(enc)
    return Selection(enum_field, tuple(dict.fromkeys(values)) or default_values)


def _entity(name: str, value: Any, problems: list[str]) -> EntityConfig:
    path = f"entities.{name}"
    if value is None:
        value = {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be an object (or omitted for the defaults)")
        value = {}
    for key in sorted(set(value) - _ENTITY_KEYS):
        problems.append(f"{path}.{key}: unknown key; allowed keys are {', '.join(sorted(_ENTITY_KEYS))}")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{path}.enabled: must be true or false, not {enabled!r}")
        enabled = True
    issue_type = value.get("issue_type", DEFAULT_ISSUE_TYPES[name])
    if not isinstance(issue_type, str) or not issue_type.strip():
        problems.append(
            f"{path}.issue_type: must be the name of a Jira issue type of the project, "
            f"e.g. {DEFAULT_ISSUE_TYPES[name]!r}"
        )
        issue_type = DEFAULT_ISSUE_TYPES[name]
    done = value.get("done_action", DEFAULT_DONE_ACTION[name])
    if done not in DONE_ACTIONS[name]:
        problems.append(
            f"{path}.done_action: {done!r} is not possible for {name}; use one of "
            f"{', '.join(DONE_ACTIONS[name])}"
        )
        done = DEFAULT_DONE_ACTION[name]
    transition = value.get("resolved_transition")
    if transition is not None and (not isinstance(transition, str) or not transition.strip()):
        problems.append(f'{path}.resolved_transition: must be a Jira transition name (e.g. "Done") or null')
        transition = None
    return EntityConfig(
        name=name,
        enabled=enabled,
        issue_type=issue_type.strip(),
        selection=_selection(value.get("selection"), name, f"{path}.selection", problems),
        done_action=done,
        resolved_transition=transition.strip() if transition else None,
        summary_template=_template(
            value.get("summary_template", DEFAULT_SUMMARY[name]), name, f"{path}.summary_template", problems
        ),
        labels=_labels(value.get("labels"), f"{path}.labels", problems),
    )


def _unknown_rule_keys(path: str, rule: Mapping[str, Any]) -> list[str]:
    return [
        f"{path}.{key}: unknown key; use vendor_number|purchaser and account_id|email"
        for key in sorted(set(rule) - {"vendor_number", "purchaser", "account_id", "email"})
    ]


def _rule_problems(path: str, rule: Mapping[str, Any]) -> list[str]:
    """What makes one assignee rule unusable (empty: it is valid; unknown keys are reported apart)."""
    problems: list[str] = []
    matches = [k for k in _RULE_MATCH if k in rule]
    users = [k for k in ("account_id", "email") if k in rule]
    if len(matches) != 1:
        problems.append(f"{path}: needs exactly one of vendor_number or purchaser")
    elif not isinstance(rule[matches[0]], str) or not rule[matches[0]].strip():
        problems.append(f"{path}.{matches[0]}: must be a non-empty BC code")
    if len(users) != 1:
        problems.append(
            f"{path}: needs exactly one of account_id or email (users are set by accountId; "
            "an email is resolved by bc_jira_connect)"
        )
    elif users[0] == "email" and not (isinstance(rule["email"], str) and _EMAIL_RE.match(rule["email"])):
        problems.append(f"{path}.email: {rule['email']!r} is not an email address")
    elif users[0] == "account_id" and not (
        isinstance(rule["account_id"], str) and 0 < len(rule["account_id"].strip()) <= 128
    ):
        problems.append(f"{path}.account_id: must be a Jira accountId (1..128 characters)")
    return problems


def _assignees(value: Any, problems: list[str]) -> tuple[AssigneeRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(
            'assignees: must be a list of rules like {"vendor_number": "V0001", "email": "ap@example.com"}'
        )
        return ()
    rules = []
    for i, rule in enumerate(value):
        path = f"assignees[{i}]"
        if not isinstance(rule, dict):
            problems.append(
                f"{path}: must be an object with vendor_number or purchaser, and account_id or email"
            )
            continue
        problems.extend(_unknown_rule_keys(path, rule))
        found = _rule_problems(path, rule)
        problems.extend(found)
        if not found:
            match = next(k for k in _RULE_MATCH if k in rule)
            rules.append(
                AssigneeRule(
                    match=match,
                    value=rule[match].strip(),
                    account_id=rule.get("account_id"),
                    email=(rule.get("email") or None),
                )
            )
    return tuple(rules)


def _rate_limit(value: Any, problems: list[str]) -> RateLimitConfig:
    if value is None:
        return RateLimitConfig()
    if not isinstance(value, Mapping):
        problems.append('rate_limit: must be an object such as {"max_inline_wait_seconds": 120}')
        return RateLimitConfig()
    for key in sorted(set(value) - {"max_inline_wait_seconds", "max_defer_seconds"}):
        problems.append(f"rate_limit.{key}: unknown key; use max_inline_wait_seconds or max_defer_seconds")
    inline = value.get("max_inline_wait_seconds", DEFAULT_MAX_INLINE_WAIT_SECONDS)
    if not _is_int(inline) or not 0 <= inline <= 3600:
        problems.append(
            f"rate_limit.max_inline_wait_seconds: {inline!r} must be an integer from 0 to 3600 (default "
            f"{DEFAULT_MAX_INLINE_WAIT_SECONDS}); longer waits Jira asks for defer the task"
        )
        inline = DEFAULT_MAX_INLINE_WAIT_SECONDS
    defer = value.get("max_defer_seconds", DEFAULT_MAX_DEFER_SECONDS)
    if not _is_int(defer) or not 0 <= defer <= 86400:
        problems.append(
            f"rate_limit.max_defer_seconds: {defer!r} must be an integer from 0 to 86400 (default "
            f"{DEFAULT_MAX_DEFER_SECONDS}); 0 fails the task instead of deferring it"
        )
        defer = DEFAULT_MAX_DEFER_SECONDS
    return RateLimitConfig(max_inline_wait_seconds=inline, max_defer_seconds=defer)


def _document(raw: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON object (a missing, empty, malformed or non-object document is the one problem)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ConfigError(
            [
                f"(root): the Variable is missing or empty; set {VARIABLE_KEY} to a JSON object "
                'with at least {"project_key": "FIN"}'
            ]
        )
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                [
                    f"(root): not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
                    "fix the JSON syntax"
                ]
            ) from None
    if not isinstance(raw, Mapping):
        raise ConfigError(["(root): must be a JSON object"])
    return dict(raw)


def _project_key(value: Any, problems: list[str]) -> str:
    if not isinstance(value, str) or not _PROJECT_KEY_RE.match(value):
        problems.append(
            f"project_key: {value!r} is not a Jira project key; use the uppercase key "
            'shown in the project\'s issue keys, e.g. "FIN"'
        )
        return ""
    return value


def _entities(value: Any, problems: list[str]) -> dict[str, EntityConfig]:
    if not isinstance(value, dict):
        problems.append("entities: must be an object keyed by " + ", ".join(ENTITIES))
        value = {}
    for key in sorted(set(value) - set(ENTITIES)):
        problems.append(f"entities.{key}: unknown entity; use one of {', '.join(ENTITIES)}")
    return {name: _entity(name, value.get(name), problems) for name in ENTITIES}


def _field_names(value: Any, problems: list[str]) -> FieldNames:
    names = dict(DEFAULT_FIELD_NAMES)
    if not isinstance(value, dict):
        problems.append(
            "fields: must be an object mapping "
            + ", ".join(DEFAULT_FIELD_NAMES)
            + " to Jira custom field names"
        )
        value = {}
    for key, val in value.items():
        if key not in DEFAULT_FIELD_NAMES:
            problems.append(f"fields.{key}: unknown key; use one of {', '.join(DEFAULT_FIELD_NAMES)}")
        elif not isinstance(val, str) or not val.strip():
            problems.append(
                f"fields.{key}: must be the name of a Jira custom field, e.g. {DEFAULT_FIELD_NAMES[key]!r}"
            )
        else:
            names[key] = val.strip()
    dupes = {v for v in names.values() if list(names.values()).count(v) > 1}
    for d in sorted(dupes):
        problems.append(
            f"fields: the name {d!r} is used for more than one field; each needs its own custom field"
        )
    return FieldNames(**names)


def _bounded_int(
    doc: Mapping[str, Any], key: str, default: int, top: int, hint: str, problems: list[str]
) -> int:
    """An integer setting from its minimum (1 for batch_size, else 0) to ``top``; the default when absent."""
    value = doc.get(key, default)
    low = 1 if key == "batch_size" else 0
    if not _is_int(value) or not low <= value <= top:
        problems.append(f"{key}: {value!r} must be an integer from {low} to {top} (default {default}){hint}")
        return default
    return int(value)


def _duplicate_transition(value: Any, problems: list[str]) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        problems.append(
            'duplicate_transition: must be a Jira transition or status name (e.g. "Done") or null '
            "(duplicates are then linked and commented but left in their status)"
        )
        return None
    return value.strip() if value else None


def _web_client_url(value: Any, problems: list[str]) -> str | None:
    if value is not None and (not isinstance(value, str) or not re.match(r"^https?://[^\s]+$", value)):
        problems.append(
            "bc_web_client_url: must be an http(s) URL such as "
            '"https://businesscentral.dynamics.com/<tenant>/<environment>?company=CRONUS"'
        )
        return None
    return value.rstrip("/") if value else None


def parse_config(raw: str | Mapping[str, Any] | None) -> Config:
    """Validate a config document (JSON text or dict) into :class:`Config`; raise one ConfigError.

    Each section has its own parser that appends its problems; they run in document order so the list reads
    top to bottom."""
    doc = _document(raw)
    problems: list[str] = [
        f"{key}: unknown key; allowed keys are {', '.join(sorted(_TOP_KEYS))}"
        for key in sorted(set(doc) - _TOP_KEYS)
    ]
    project_key = _project_key(doc.get("project_key"), problems)
    entities = _entities(doc.get("entities", {}), problems)
    fields = _field_names(doc.get("fields", {}), problems)
    batch_size = _bounded_int(doc, "batch_size", DEFAULT_BATCH_SIZE, 1000, "", problems)
    overlap = _bounded_int(doc, "overlap_seconds", DEFAULT_OVERLAP_SECONDS, 86400, "", problems)
    settle = _bounded_int(
        doc,
        "search_settle_seconds",
        DEFAULT_SEARCH_SETTLE_SECONDS,
        3600,
        "; it should exceed Jira's search lag",
        problems,
    )
    duplicate_transition = _duplicate_transition(doc.get("duplicate_transition"), problems)
    url = _web_client_url(doc.get("bc_web_client_url"), problems)
    labels = _labels(doc.get("labels", list(DEFAULT_LABELS)), "labels", problems)
    assignees = _assignees(doc.get("assignees"), problems)
    rate_limit = _rate_limit(doc.get("rate_limit"), problems)
    if problems:
        raise ConfigError(problems)
    return Config(
        project_key=project_key,
        purchase_invoices=entities["purchase_invoices"],
        vendors=entities["vendors"],
        purchase_orders=entities["purchase_orders"],
        fields=fields,
        labels=labels,
        assignees=assignees,
        batch_size=batch_size,
        bc_web_client_url=url,
        overlap_seconds=overlap,
        search_settle_seconds=settle,
        rate_limit=rate_limit,
        duplicate_transition=duplicate_transition,
    )


def default_config_document(project_key: str = "FIN", bc_web_client_url: str | None = None) -> dict[str, Any]:
    """A complete, valid document with every default spelled out (the sandbox CLI and docs use it)."""
    doc: dict[str, Any] = {
        "project_key": project_key,
        "batch_size": DEFAULT_BATCH_SIZE,
        "overlap_seconds": DEFAULT_OVERLAP_SECONDS,
        "search_settle_seconds": DEFAULT_SEARCH_SETTLE_SECONDS,
        "rate_limit": {
            "max_inline_wait_seconds": DEFAULT_MAX_INLINE_WAIT_SECONDS,
            "max_defer_seconds": DEFAULT_MAX_DEFER_SECONDS,
        },
        "duplicate_transition": None,
        "labels": list(DEFAULT_LABELS),
        "fields": dict(DEFAULT_FIELD_NAMES),
        "assignees": [],
        "entities": {
            name: {
                "enabled": True,
                "issue_type": DEFAULT_ISSUE_TYPES[name],
                "selection": {
                    DEFAULT_SELECTION[name][0]: [decode_enum(v) for v in DEFAULT_SELECTION[name][1]],
                },
                "done_action": DEFAULT_DONE_ACTION[name],
                "resolved_transition": None,
                "summary_template": DEFAULT_SUMMARY[name],
                "labels": [],
            }
            for name in ENTITIES
        },
    }
    if bc_web_client_url:
        doc["bc_web_client_url"] = bc_web_client_url
    return doc


ENV_VARIABLE = f"AIRFLOW_VAR_{VARIABLE_KEY.upper()}"
_log = logging.getLogger(__name__)
_shadow_checked = False


def shadowed_variable_warning(env_value: str | None, db_keys: list[str]) -> str | None:
    """The warning when the env var hides a ``bc_jira_config`` saved in Admin > Variables (None: no clash)."""
    if env_value is None or VARIABLE_KEY not in db_keys:
        return None
    return (
        f"{ENV_VARIABLE} is set in this process's environment and shadows the {VARIABLE_KEY} Variable saved "
        f"in Admin > Variables (the metadata DB): the environment's value is used and edits in the UI are "
        f"ignored. Unset {ENV_VARIABLE} to use the Variable."
    )


def _warn_if_shadowed() -> None:
    """Once per process: Airflow reads env vars before the metadata DB and says nothing about the clash."""
    global _shadow_checked
    if _shadow_checked:
        return
    _shadow_checked = True
    env_value = os.environ.get(ENV_VARIABLE)
    if env_value is None:
        return
    from airflow.sdk import Variable

    try:
        keys = list(Variable.keys(prefix=VARIABLE_KEY))  # the metadata DB only, not the env var
    except Exception as exc:  # noqa: BLE001 - outside a task (server process) there is no supervisor to ask
        _log.debug("cannot list Variables to check for shadowing: %s", type(exc).__name__)
        return
    warning = shadowed_variable_warning(env_value, keys)
    if warning:
        _log.warning("%s", warning)


def load_config() -> Config:
    """Read and validate the Variable (inside a task or a server process)."""
    from airflow.sdk import Variable

    _warn_if_shadowed()
    return parse_config(Variable.get(VARIABLE_KEY, default=None))

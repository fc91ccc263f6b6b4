"""One small parser per section of the config document; each appends its problems (key path + fix)."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

from bc_jira.config.model import (
    _EMAIL_RE,
    _LABEL_RE,
    _PROJECT_KEY_RE,
    DEFAULT_DONE_ACTION,
    DEFAULT_FIELD_NAMES,
    DEFAULT_ISSUE_TYPES,
    DEFAULT_MAX_DEFER_SECONDS,
    DEFAULT_MAX_INLINE_WAIT_SECONDS,
    DEFAULT_SELECTION,
    DEFAULT_SUMMARY,
    DONE_ACTIONS,
    ENUMS,
    TEMPLATE_EXTRAS,
    TEMPLATE_FIELDS,
    VARIABLE_KEY,
    AssigneeRule,
    ConfigError,
    EntityConfig,
    FieldNames,
    RateLimitConfig,
    Selection,
    decode_enum,
    encode_enum,
)
from bc_jira.entities import ENTITIES

_TOP_KEYS = {
    "project_key",
    "companies",
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
    "deleted_transition",
    "reopen_transition",
    "priority_rules",
    "reject_statuses",
    "attachments",
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


def _assignees(value: Any, problems: list[str], where: str = "assignees") -> tuple[AssigneeRule, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.append(
            where + ': must be a list of rules like {"vendor_number": "V0001", "email": "ap@example.com"}'
        )
        return ()
    rules = []
    for i, rule in enumerate(value):
        path = f"{where}[{i}]"
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
    names = dict(DEFAULT_FIELD_NAMES) | {"company": FieldNames.company}  # company: only with ``companies``
    if not isinstance(value, dict):
        problems.append(
            "fields: must be an object mapping "
            + ", ".join(DEFAULT_FIELD_NAMES)
            + " to Jira custom field names"
        )
        value = {}
    for key, val in value.items():
        if key not in names:
            problems.append(f"fields.{key}: unknown key; use one of {', '.join(names)}")
        elif not isinstance(val, str) or not val.strip():
            problems.append(f"fields.{key}: must be the name of a Jira custom field, e.g. {names[key]!r}")
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


def _deleted_transition(value: Any, problems: list[str]) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        problems.append(
            'deleted_transition: must be a Jira transition or status name (e.g. "Done") or null (an issue '
            "whose BC record was deleted is then commented but left in its status)"
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

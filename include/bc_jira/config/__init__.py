"""Typed model of the ``bc_jira_config`` Variable.

One bad value must not surface as a KeyError deep inside a mapped task: ``parse_config`` checks the
whole document and raises one :class:`ConfigError` that lists every problem with its key path and the
fix, before anything is written anywhere.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from bc_jira.config.attachments import AttachmentsConfig, parse_attachments
from bc_jira.config.companies import parse_companies

# The model's names are this package's public names: callers import them from ``bc_jira.config``.
from bc_jira.config.model import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DONE_ACTION,
    DEFAULT_FIELD_NAMES,
    DEFAULT_ISSUE_TYPES,
    DEFAULT_LABELS,
    DEFAULT_MAX_DEFER_SECONDS,
    DEFAULT_MAX_INLINE_WAIT_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_REOPEN_TRANSITION,
    DEFAULT_SEARCH_SETTLE_SECONDS,
    DEFAULT_SELECTION,
    DEFAULT_SUMMARY,
    DONE_ACTIONS,
    ENTITY_SETS,
    ENUMS,
    FIELDS_VARIABLE_KEY,
    TEMPLATE_EXTRAS,
    TEMPLATE_FIELDS,
    USERS_VARIABLE_KEY,
    VARIABLE_KEY,
    AssigneeRule,
    Config,
    ConfigError,
    EntityConfig,
    FieldNames,
    RateLimitConfig,
    Selection,
    decode_enum,
    encode_enum,
)
from bc_jira.config.priority import PriorityRule, parse_priority_rules, priority_for
from bc_jira.config.reject import DEFAULT_REJECT_STATUSES, parse_reject_statuses
from bc_jira.config.reopen import parse_reopen_transition
from bc_jira.config.sections import (
    _TOP_KEYS,
    _assignees,
    _bounded_int,
    _deleted_transition,
    _document,
    _duplicate_transition,
    _entities,
    _field_names,
    _labels,
    _project_key,
    _rate_limit,
    _web_client_url,
)
from bc_jira.entities import BLANK, ENTITIES, SPECS, WATERMARK_PREFIX

if TYPE_CHECKING:
    from collections.abc import Mapping

# What callers import from ``bc_jira.config``: the model, the registry names it is built on, and the loaders.
__all__ = [
    "AttachmentsConfig",
    "AssigneeRule",
    "BLANK",
    "Config",
    "ConfigError",
    "DEFAULT_BATCH_SIZE",
    "DEFAULT_DONE_ACTION",
    "DEFAULT_FIELD_NAMES",
    "DEFAULT_ISSUE_TYPES",
    "DEFAULT_LABELS",
    "DEFAULT_MAX_DEFER_SECONDS",
    "DEFAULT_MAX_INLINE_WAIT_SECONDS",
    "DEFAULT_OVERLAP_SECONDS",
    "DEFAULT_REJECT_STATUSES",
    "DEFAULT_REOPEN_TRANSITION",
    "DEFAULT_SEARCH_SETTLE_SECONDS",
    "DEFAULT_SELECTION",
    "DEFAULT_SUMMARY",
    "DONE_ACTIONS",
    "ENTITIES",
    "ENTITY_SETS",
    "ENUMS",
    "ENV_VARIABLE",
    "EntityConfig",
    "FIELDS_VARIABLE_KEY",
    "FieldNames",
    "PriorityRule",
    "RateLimitConfig",
    "SPECS",
    "Selection",
    "TEMPLATE_EXTRAS",
    "TEMPLATE_FIELDS",
    "USERS_VARIABLE_KEY",
    "VARIABLE_KEY",
    "WATERMARK_PREFIX",
    "decode_enum",
    "default_config_document",
    "encode_enum",
    "load_config",
    "parse_config",
    "priority_for",
    "shadowed_variable_warning",
]


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
    deleted_transition = _deleted_transition(doc.get("deleted_transition"), problems)
    reopen_transition = (
        parse_reopen_transition(doc["reopen_transition"], problems)
        if "reopen_transition" in doc
        else parse_reopen_transition()
    )
    url = _web_client_url(doc.get("bc_web_client_url"), problems)
    labels = _labels(doc.get("labels", list(DEFAULT_LABELS)), "labels", problems)
    assignees = _assignees(doc.get("assignees"), problems)
    rate_limit = _rate_limit(doc.get("rate_limit"), problems)
    priority_rules = parse_priority_rules(doc.get("priority_rules"), problems)
    reject_statuses = parse_reject_statuses(doc.get("reject_statuses"), problems)
    attachments = parse_attachments(doc.get("attachments"), problems)
    companies = parse_companies(doc.get("companies"), problems)
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
        deleted_transition=deleted_transition,
        reopen_transition=reopen_transition,
        priority_rules=priority_rules,
        reject_statuses_configured=reject_statuses,
        attachments=attachments,
        companies=companies,
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
        "deleted_transition": None,
        "reopen_transition": DEFAULT_REOPEN_TRANSITION,
        "priority_rules": [],
        "reject_statuses": list(DEFAULT_REJECT_STATUSES),
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

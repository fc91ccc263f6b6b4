"""The state store's schema: every table, the row types read from them, and the row codecs.

Why here and apart from the SQL: the repositories (``links``, ``events``, ...) and the tests that create an
older database both need the tables; the row types are what callers of :class:`bc_jira.store.StateStore`
hold. Tokens are stored as ciphertext only: ``bc_jira.tokens`` encrypts before anything reaches the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

import sqlalchemy as sa

MAX_ERROR = 4000  # characters of an error message kept in a row


class LinkState(StrEnum):
    """Where a BC record's Jira issue stands (``bc_jira_links.state``); stored as the plain string value."""

    OPEN = "open"  # the column's default; the connector always writes one of the states below
    PENDING = "pending"  # a create was attempted; whether Jira committed it is unknown
    LINKED = "linked"  # the issue exists and the record needs a human step
    RESOLVING = "resolving"  # the resolve comment exists; the resolved_transition is still to be made
    RESOLVED = "resolved"  # the record no longer needs a human step; comment (+ transition) done
    FAILED = "failed"  # Jira refused the create (known not to exist)
    WRITTEN_BACK = "written_back"  # the write-back acted on the record (no "no longer needed" comment)
    DONE = "done"  # never written by this version; read as closed, as every earlier version did
    DELETED = "deleted"  # the record was deleted in BC: commented (+ deleted_transition); never written back


# The write-back or the outbound already closed the record's episode: no "no longer needed" comment, and the
# safety-net poll leaves the issue alone (a deleted record's issue is never written back).
DONE_STATES = frozenset({LinkState.RESOLVED, LinkState.WRITTEN_BACK, LinkState.DONE, LinkState.DELETED})

# -- tables ---------------------------------------------------------------------------------------------
metadata = sa.MetaData()

events = sa.Table(
    "bc_jira_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(512), nullable=False, unique=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="staged"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_events_kind_status", "kind", "status"),
)

# One row per delivery that reached staging (Jira: per X-Atlassian-Webhook-Identifier; BC: per notification
# item). It outlives the staged event: a late retry after the event was processed and deleted is still
# recognised as a duplicate (Jira retries for up to ~30 min). Purged after ``expires_at``.
deliveries = sa.Table(
    "bc_jira_deliveries",
    metadata,
    sa.Column("delivery_key", sa.String(512), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(512), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_deliveries_expires", "expires_at"),
)

links = sa.Table(
    "bc_jira_links",
    metadata,
    # the record's BC company (``bc_jira.config.companies``): "" is the default company, every row from before
    sa.Column("company", sa.String(64), primary_key=True, default="", server_default=""),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("bc_id", sa.String(64), primary_key=True),
    sa.Column("document_number", sa.String(64)),
    sa.Column("issue_id", sa.String(32)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("bc_last_modified", sa.String(40)),
    sa.Column("state", sa.String(16), nullable=False, default=LinkState.OPEN.value),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Hashes of the summary and the description the connector last wrote (``bc_jira.sync.edits``): a person's
    # edit of either is kept. Added after the table existed: ``LATER_COLUMNS`` adds them to older stores.
    sa.Column("summary_hash", sa.String(64)),
    sa.Column("description_hash", sa.String(64)),
    sa.Index("ix_bc_jira_links_issue_id", "issue_id"),
    sa.Index("ix_bc_jira_links_issue_key", "issue_key"),
)

batches = sa.Table(
    "bc_jira_batches",
    metadata,
    sa.Column("batch_id", sa.String(200), primary_key=True),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("run_key", sa.String(250), nullable=False),
    sa.Column("company", sa.String(64), nullable=False, default="", server_default=""),  # "": the default
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("records", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_batches_run", "entity", "run_key", "seq"),
)

audit_log = sa.Table(
    "bc_jira_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("bc_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("company", sa.String(64), nullable=False, default="", server_default=""),  # "": the default
    sa.Column("document_number", sa.String(64)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("read", sa.Text),
    sa.Column("sent", sa.Text),
    sa.Column("response", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Column("map_index", sa.Integer),
    sa.Column("try_number", sa.Integer),
    sa.Index("ix_bc_jira_audit_record", "entity", "bc_id", "id"),
    sa.Index("ix_bc_jira_audit_issue", "issue_key"),
    sa.Index("ix_bc_jira_audit_at", "at"),
    # the audit page's keyset pages: per entity, and the failed rows only (partial index)
    sa.Index("ix_bc_jira_audit_entity_id", "entity", "id"),
    sa.Index("ix_bc_jira_audit_company_id", "company", "id"),  # the audit page's company filter
    sa.Index(
        "ix_bc_jira_audit_errors",
        "id",
        postgresql_where=sa.text("error IS NOT NULL"),
        sqlite_where=sa.text("error IS NOT NULL"),
    ),
)

tokens = sa.Table(
    "bc_jira_tokens",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("refresh_token_enc", sa.Text),
    sa.Column("access_token_enc", sa.Text),
    sa.Column("expires_at", sa.Float),
    sa.Column("meta", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

subscriptions = sa.Table(
    "bc_jira_bc_subscriptions",
    metadata,
    sa.Column("resource", sa.String(500), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

webhooks = sa.Table(
    "bc_jira_jira_webhooks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

claims = sa.Table(
    "bc_jira_claims",
    metadata,
    # the record's BC company (``bc_jira.config.companies``): "" is the default company, every row from before
    sa.Column("company", sa.String(64), primary_key=True, default="", server_default=""),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("bc_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(800), nullable=False),  # dag/run/task[map]: the task instance holding it
    sa.Column("try_number", sa.Integer, nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
)

oauth_states = sa.Table(
    "bc_jira_oauth_states",
    metadata,
    sa.Column("state", sa.String(200), primary_key=True),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


effects = sa.Table(
    "bc_jira_effects",
    metadata,
    # An effect the connector owes in Jira that Jira cannot make idempotent (a comment, the healing
    # of a duplicate issue): the intent is written before the call, the outcome after it. attempts > 0 while
    # pending means an earlier call may have reached Jira: look for the effect before making it again.
    sa.Column("effect_key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("bc_id", sa.String(64), nullable=False),
    sa.Column("company", sa.String(64), nullable=False, default="", server_default=""),  # "": the default
    sa.Column("issue_id", sa.String(32)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("payload", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_effects_state", "kind", "state", "entity"),
    sa.Index("ix_bc_jira_effects_record", "kind", "entity", "bc_id"),
)


# Columns added to tables that older databases already have: (table, column name). ``create_all`` creates
# only missing tables, so ``Database.ensure_schema`` adds these with ``ALTER TABLE … ADD COLUMN`` (nullable,
# no default: existing rows read None, "not known").
LATER_COLUMNS: tuple[tuple[sa.Table, str], ...] = (
    (links, "summary_hash"),
    (links, "description_hash"),
)
# The record key became (company, entity, bc_id) after these tables existed (``bc_jira.store.migrate``): the
# tables without the key in their primary key are rebuilt, the others get a NOT NULL column defaulting to ""
# (the default company: every row written before companies existed).
COMPANY_KEY_TABLES: tuple[sa.Table, ...] = (links, claims)
COMPANY_COLUMN_TABLES: tuple[sa.Table, ...] = (audit_log, effects, batches)


# -- row codecs -------------------------------------------------------------------------------------------
def utcnow() -> datetime:
    return datetime.now(UTC)


@overload
def aware(value: datetime) -> datetime: ...
@overload
def aware(value: None) -> None: ...
def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def dumps(value: object) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def loads(value: str | None) -> Any:
    """The JSON a column holds (any JSON value: callers know which shape they stored)."""
    return None if value is None else json.loads(value)


# -- row types --------------------------------------------------------------------------------------------
@dataclass
class Event:
    id: int
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    error: str | None
    received_at: datetime


@dataclass
class Link:
    entity: str
    bc_id: str
    document_number: str | None = None
    issue_id: str | None = None
    issue_key: str | None = None
    content_hash: str | None = None
    bc_last_modified: str | None = None
    state: str = LinkState.OPEN.value
    updated_at: datetime | None = None
    summary_hash: str | None = None  # what the connector last wrote (None: not known, a store before these)
    description_hash: str | None = None
    company: str = ""  # the store key of its BC company ("": the default company)


@dataclass
class Effect:
    """One row of ``bc_jira_effects`` (see the table's comment)."""

    effect_key: str
    kind: str
    entity: str
    bc_id: str
    issue_id: str | None = None
    issue_key: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"
    attempts: int = 0
    result: Any = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    company: str = ""


@dataclass
class AuditRow:
    entity: str
    bc_id: str
    action: str
    document_number: str | None = None
    issue_key: str | None = None
    reason: str | None = None
    read: Any = None
    sent: Any = None
    response: Any = None
    error: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    at: datetime | None = None
    id: int | None = None
    company: str = ""


@dataclass
class TokenRow:
    name: str
    refresh_token_enc: str | None
    access_token_enc: str | None
    expires_at: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

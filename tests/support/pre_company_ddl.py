"""The state store's DDL as ``main`` wrote it before the record key held the company (commit 5b24342).

Captured from ``git show 5b24342:include/bc_jira/store/schema.py`` compiled for each dialect, so the upgrade
tests start from the exact tables an existing deployment has (``bc_jira.store.migrate``).
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = (
    """
CREATE TABLE bc_jira_audit (
    id INTEGER NOT NULL,
    at DATETIME NOT NULL,
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    document_number VARCHAR(64),
    issue_key VARCHAR(64),
    reason TEXT,
    read TEXT,
    sent TEXT,
    response TEXT,
    error TEXT,
    dag_id VARCHAR(250),
    run_id VARCHAR(250),
    task_id VARCHAR(250),
    map_index INTEGER,
    try_number INTEGER,
    PRIMARY KEY (id)
)
""",
    "CREATE INDEX ix_bc_jira_audit_entity_id ON bc_jira_audit (entity, id)",
    "CREATE INDEX ix_bc_jira_audit_errors ON bc_jira_audit (id) WHERE error IS NOT NULL",
    "CREATE INDEX ix_bc_jira_audit_issue ON bc_jira_audit (issue_key)",
    "CREATE INDEX ix_bc_jira_audit_record ON bc_jira_audit (entity, bc_id, id)",
    "CREATE INDEX ix_bc_jira_audit_at ON bc_jira_audit (at)",
    """
CREATE TABLE bc_jira_batches (
    batch_id VARCHAR(200) NOT NULL,
    entity VARCHAR(32) NOT NULL,
    run_key VARCHAR(250) NOT NULL,
    seq INTEGER NOT NULL,
    records TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (batch_id)
)
""",
    "CREATE INDEX ix_bc_jira_batches_run ON bc_jira_batches (entity, run_key, seq)",
    """
CREATE TABLE bc_jira_bc_subscriptions (
    resource VARCHAR(500) NOT NULL,
    fields TEXT NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (resource)
)
""",
    """
CREATE TABLE bc_jira_claims (
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    owner VARCHAR(800) NOT NULL,
    try_number INTEGER NOT NULL,
    claimed_at DATETIME NOT NULL,
    PRIMARY KEY (entity, bc_id)
)
""",
    """
CREATE TABLE bc_jira_deliveries (
    delivery_key VARCHAR(512) NOT NULL,
    source VARCHAR(16) NOT NULL,
    body_sha256 VARCHAR(64) NOT NULL,
    event_key VARCHAR(512) NOT NULL,
    received_at DATETIME NOT NULL,
    expires_at DATETIME NOT NULL,
    PRIMARY KEY (delivery_key)
)
""",
    "CREATE INDEX ix_bc_jira_deliveries_expires ON bc_jira_deliveries (expires_at)",
    """
CREATE TABLE bc_jira_effects (
    effect_key VARCHAR(64) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    issue_id VARCHAR(32),
    issue_key VARCHAR(64),
    payload TEXT,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (effect_key)
)
""",
    "CREATE INDEX ix_bc_jira_effects_record ON bc_jira_effects (kind, entity, bc_id)",
    "CREATE INDEX ix_bc_jira_effects_state ON bc_jira_effects (kind, state, entity)",
    """
CREATE TABLE bc_jira_events (
    id INTEGER NOT NULL,
    source VARCHAR(16) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    dedupe_key VARCHAR(512) NOT NULL,
    payload TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    received_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (dedupe_key)
)
""",
    "CREATE INDEX ix_bc_jira_events_kind_status ON bc_jira_events (kind, status)",
    """
CREATE TABLE bc_jira_jira_webhooks (
    name VARCHAR(200) NOT NULL,
    fields TEXT NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (name)
)
""",
    """
CREATE TABLE bc_jira_links (
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    document_number VARCHAR(64),
    issue_id VARCHAR(32),
    issue_key VARCHAR(64),
    content_hash VARCHAR(128),
    bc_last_modified VARCHAR(40),
    state VARCHAR(16) NOT NULL,
    updated_at DATETIME NOT NULL,
    summary_hash VARCHAR(64),
    description_hash VARCHAR(64),
    PRIMARY KEY (entity, bc_id)
)
""",
    "CREATE INDEX ix_bc_jira_links_issue_id ON bc_jira_links (issue_id)",
    "CREATE INDEX ix_bc_jira_links_issue_key ON bc_jira_links (issue_key)",
    """
CREATE TABLE bc_jira_oauth_states (
    state VARCHAR(200) NOT NULL,
    meta TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (state)
)
""",
    """
CREATE TABLE bc_jira_tokens (
    name VARCHAR(200) NOT NULL,
    refresh_token_enc TEXT,
    access_token_enc TEXT,
    expires_at FLOAT,
    meta TEXT,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (name)
)
""",
)

POSTGRESQL: tuple[str, ...] = (
    """
CREATE TABLE bc_jira_audit (
    id SERIAL NOT NULL,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    action VARCHAR(32) NOT NULL,
    document_number VARCHAR(64),
    issue_key VARCHAR(64),
    reason TEXT,
    read TEXT,
    sent TEXT,
    response TEXT,
    error TEXT,
    dag_id VARCHAR(250),
    run_id VARCHAR(250),
    task_id VARCHAR(250),
    map_index INTEGER,
    try_number INTEGER,
    PRIMARY KEY (id)
)
""",
    "CREATE INDEX ix_bc_jira_audit_entity_id ON bc_jira_audit (entity, id)",
    "CREATE INDEX ix_bc_jira_audit_errors ON bc_jira_audit (id) WHERE error IS NOT NULL",
    "CREATE INDEX ix_bc_jira_audit_issue ON bc_jira_audit (issue_key)",
    "CREATE INDEX ix_bc_jira_audit_record ON bc_jira_audit (entity, bc_id, id)",
    "CREATE INDEX ix_bc_jira_audit_at ON bc_jira_audit (at)",
    """
CREATE TABLE bc_jira_batches (
    batch_id VARCHAR(200) NOT NULL,
    entity VARCHAR(32) NOT NULL,
    run_key VARCHAR(250) NOT NULL,
    seq INTEGER NOT NULL,
    records TEXT NOT NULL,
    size INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (batch_id)
)
""",
    "CREATE INDEX ix_bc_jira_batches_run ON bc_jira_batches (entity, run_key, seq)",
    """
CREATE TABLE bc_jira_bc_subscriptions (
    resource VARCHAR(500) NOT NULL,
    fields TEXT NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (resource)
)
""",
    """
CREATE TABLE bc_jira_claims (
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    owner VARCHAR(800) NOT NULL,
    try_number INTEGER NOT NULL,
    claimed_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (entity, bc_id)
)
""",
    """
CREATE TABLE bc_jira_deliveries (
    delivery_key VARCHAR(512) NOT NULL,
    source VARCHAR(16) NOT NULL,
    body_sha256 VARCHAR(64) NOT NULL,
    event_key VARCHAR(512) NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (delivery_key)
)
""",
    "CREATE INDEX ix_bc_jira_deliveries_expires ON bc_jira_deliveries (expires_at)",
    """
CREATE TABLE bc_jira_effects (
    effect_key VARCHAR(64) NOT NULL,
    kind VARCHAR(32) NOT NULL,
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    issue_id VARCHAR(32),
    issue_key VARCHAR(64),
    payload TEXT,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (effect_key)
)
""",
    "CREATE INDEX ix_bc_jira_effects_record ON bc_jira_effects (kind, entity, bc_id)",
    "CREATE INDEX ix_bc_jira_effects_state ON bc_jira_effects (kind, state, entity)",
    """
CREATE TABLE bc_jira_events (
    id SERIAL NOT NULL,
    source VARCHAR(16) NOT NULL,
    kind VARCHAR(64) NOT NULL,
    dedupe_key VARCHAR(512) NOT NULL,
    payload TEXT NOT NULL,
    status VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    error TEXT,
    received_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (dedupe_key)
)
""",
    "CREATE INDEX ix_bc_jira_events_kind_status ON bc_jira_events (kind, status)",
    """
CREATE TABLE bc_jira_jira_webhooks (
    name VARCHAR(200) NOT NULL,
    fields TEXT NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (name)
)
""",
    """
CREATE TABLE bc_jira_links (
    entity VARCHAR(32) NOT NULL,
    bc_id VARCHAR(64) NOT NULL,
    document_number VARCHAR(64),
    issue_id VARCHAR(32),
    issue_key VARCHAR(64),
    content_hash VARCHAR(128),
    bc_last_modified VARCHAR(40),
    state VARCHAR(16) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    summary_hash VARCHAR(64),
    description_hash VARCHAR(64),
    PRIMARY KEY (entity, bc_id)
)
""",
    "CREATE INDEX ix_bc_jira_links_issue_id ON bc_jira_links (issue_id)",
    "CREATE INDEX ix_bc_jira_links_issue_key ON bc_jira_links (issue_key)",
    """
CREATE TABLE bc_jira_oauth_states (
    state VARCHAR(200) NOT NULL,
    meta TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (state)
)
""",
    """
CREATE TABLE bc_jira_tokens (
    name VARCHAR(200) NOT NULL,
    refresh_token_enc TEXT,
    access_token_enc TEXT,
    expires_at FLOAT,
    meta TEXT,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    PRIMARY KEY (name)
)
""",
)

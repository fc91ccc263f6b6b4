"""The state store's DDL as ``main`` wrote it before the record key held the company (commit 5b24342).

Captured from ``git show 5b24342:include/bc_jira/store/schema.py`` compiled for each dialect, so the upgrade
tests start from the exact tables an existing deployment has (``bc_jira.store.migrate``).
"""

from __future__ import annotations

SQLITE: tuple[str, ...] = (
    "CREATE TABLE bc_jira_audit (\n\tid INTEGER NOT NULL, \n\tat DATETIME NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\taction VARCHAR(32) NOT NULL, \n\tdocument_number VARCHAR(64), \n\tissue_key VARCHAR(64), \n\treason TEXT, \n\tread TEXT, \n\tsent TEXT, \n\tresponse TEXT, \n\terror TEXT, \n\tdag_id VARCHAR(250), \n\trun_id VARCHAR(250), \n\ttask_id VARCHAR(250), \n\tmap_index INTEGER, \n\ttry_number INTEGER, \n\tPRIMARY KEY (id)\n)",
    "CREATE INDEX ix_bc_jira_audit_entity_id ON bc_jira_audit (entity, id)",
    "CREATE INDEX ix_bc_jira_audit_errors ON bc_jira_audit (id) WHERE error IS NOT NULL",
    "CREATE INDEX ix_bc_jira_audit_issue ON bc_jira_audit (issue_key)",
    "CREATE INDEX ix_bc_jira_audit_record ON bc_jira_audit (entity, bc_id, id)",
    "CREATE INDEX ix_bc_jira_audit_at ON bc_jira_audit (at)",
    "CREATE TABLE bc_jira_batches (\n\tbatch_id VARCHAR(200) NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\trun_key VARCHAR(250) NOT NULL, \n\tseq INTEGER NOT NULL, \n\trecords TEXT NOT NULL, \n\tsize INTEGER NOT NULL, \n\tcreated_at DATETIME NOT NULL, \n\tPRIMARY KEY (batch_id)\n)",
    "CREATE INDEX ix_bc_jira_batches_run ON bc_jira_batches (entity, run_key, seq)",
    "CREATE TABLE bc_jira_bc_subscriptions (\n\tresource VARCHAR(500) NOT NULL, \n\tfields TEXT NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tPRIMARY KEY (resource)\n)",
    "CREATE TABLE bc_jira_claims (\n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\towner VARCHAR(800) NOT NULL, \n\ttry_number INTEGER NOT NULL, \n\tclaimed_at DATETIME NOT NULL, \n\tPRIMARY KEY (entity, bc_id)\n)",
    "CREATE TABLE bc_jira_deliveries (\n\tdelivery_key VARCHAR(512) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tbody_sha256 VARCHAR(64) NOT NULL, \n\tevent_key VARCHAR(512) NOT NULL, \n\treceived_at DATETIME NOT NULL, \n\texpires_at DATETIME NOT NULL, \n\tPRIMARY KEY (delivery_key)\n)",
    "CREATE INDEX ix_bc_jira_deliveries_expires ON bc_jira_deliveries (expires_at)",
    "CREATE TABLE bc_jira_effects (\n\teffect_key VARCHAR(64) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\tissue_id VARCHAR(32), \n\tissue_key VARCHAR(64), \n\tpayload TEXT, \n\tstate VARCHAR(16) NOT NULL, \n\tattempts INTEGER NOT NULL, \n\tresult TEXT, \n\terror TEXT, \n\tcreated_at DATETIME NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tPRIMARY KEY (effect_key)\n)",
    "CREATE INDEX ix_bc_jira_effects_record ON bc_jira_effects (kind, entity, bc_id)",
    "CREATE INDEX ix_bc_jira_effects_state ON bc_jira_effects (kind, state, entity)",
    "CREATE TABLE bc_jira_events (\n\tid INTEGER NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tkind VARCHAR(64) NOT NULL, \n\tdedupe_key VARCHAR(512) NOT NULL, \n\tpayload TEXT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\tattempts INTEGER NOT NULL, \n\terror TEXT, \n\treceived_at DATETIME NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tPRIMARY KEY (id), \n\tUNIQUE (dedupe_key)\n)",
    "CREATE INDEX ix_bc_jira_events_kind_status ON bc_jira_events (kind, status)",
    "CREATE TABLE bc_jira_jira_webhooks (\n\tname VARCHAR(200) NOT NULL, \n\tfields TEXT NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tPRIMARY KEY (name)\n)",
    "CREATE TABLE bc_jira_links (\n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\tdocument_number VARCHAR(64), \n\tissue_id VARCHAR(32), \n\tissue_key VARCHAR(64), \n\tcontent_hash VARCHAR(128), \n\tbc_last_modified VARCHAR(40), \n\tstate VARCHAR(16) NOT NULL, \n\tupdated_at DATETIME NOT NULL, \n\tsummary_hash VARCHAR(64), \n\tdescription_hash VARCHAR(64), \n\tPRIMARY KEY (entity, bc_id)\n)",
    "CREATE INDEX ix_bc_jira_links_issue_id ON bc_jira_links (issue_id)",
    "CREATE INDEX ix_bc_jira_links_issue_key ON bc_jira_links (issue_key)",
    "CREATE TABLE bc_jira_oauth_states (\n\tstate VARCHAR(200) NOT NULL, \n\tmeta TEXT NOT NULL, \n\tcreated_at DATETIME NOT NULL, \n\tPRIMARY KEY (state)\n)",
    "CREATE TABLE bc_jira_tokens (\n\tname VARCHAR(200) NOT NULL, \n\trefresh_token_enc TEXT, \n\taccess_token_enc TEXT, \n\texpires_at FLOAT, \n\tmeta TEXT, \n\tupdated_at DATETIME NOT NULL, \n\tPRIMARY KEY (name)\n)",
)

POSTGRESQL: tuple[str, ...] = (
    "CREATE TABLE bc_jira_audit (\n\tid SERIAL NOT NULL, \n\tat TIMESTAMP WITH TIME ZONE NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\taction VARCHAR(32) NOT NULL, \n\tdocument_number VARCHAR(64), \n\tissue_key VARCHAR(64), \n\treason TEXT, \n\tread TEXT, \n\tsent TEXT, \n\tresponse TEXT, \n\terror TEXT, \n\tdag_id VARCHAR(250), \n\trun_id VARCHAR(250), \n\ttask_id VARCHAR(250), \n\tmap_index INTEGER, \n\ttry_number INTEGER, \n\tPRIMARY KEY (id)\n)",
    "CREATE INDEX ix_bc_jira_audit_entity_id ON bc_jira_audit (entity, id)",
    "CREATE INDEX ix_bc_jira_audit_errors ON bc_jira_audit (id) WHERE error IS NOT NULL",
    "CREATE INDEX ix_bc_jira_audit_issue ON bc_jira_audit (issue_key)",
    "CREATE INDEX ix_bc_jira_audit_record ON bc_jira_audit (entity, bc_id, id)",
    "CREATE INDEX ix_bc_jira_audit_at ON bc_jira_audit (at)",
    "CREATE TABLE bc_jira_batches (\n\tbatch_id VARCHAR(200) NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\trun_key VARCHAR(250) NOT NULL, \n\tseq INTEGER NOT NULL, \n\trecords TEXT NOT NULL, \n\tsize INTEGER NOT NULL, \n\tcreated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (batch_id)\n)",
    "CREATE INDEX ix_bc_jira_batches_run ON bc_jira_batches (entity, run_key, seq)",
    "CREATE TABLE bc_jira_bc_subscriptions (\n\tresource VARCHAR(500) NOT NULL, \n\tfields TEXT NOT NULL, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (resource)\n)",
    "CREATE TABLE bc_jira_claims (\n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\towner VARCHAR(800) NOT NULL, \n\ttry_number INTEGER NOT NULL, \n\tclaimed_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (entity, bc_id)\n)",
    "CREATE TABLE bc_jira_deliveries (\n\tdelivery_key VARCHAR(512) NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tbody_sha256 VARCHAR(64) NOT NULL, \n\tevent_key VARCHAR(512) NOT NULL, \n\treceived_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\texpires_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (delivery_key)\n)",
    "CREATE INDEX ix_bc_jira_deliveries_expires ON bc_jira_deliveries (expires_at)",
    "CREATE TABLE bc_jira_effects (\n\teffect_key VARCHAR(64) NOT NULL, \n\tkind VARCHAR(32) NOT NULL, \n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\tissue_id VARCHAR(32), \n\tissue_key VARCHAR(64), \n\tpayload TEXT, \n\tstate VARCHAR(16) NOT NULL, \n\tattempts INTEGER NOT NULL, \n\tresult TEXT, \n\terror TEXT, \n\tcreated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (effect_key)\n)",
    "CREATE INDEX ix_bc_jira_effects_record ON bc_jira_effects (kind, entity, bc_id)",
    "CREATE INDEX ix_bc_jira_effects_state ON bc_jira_effects (kind, state, entity)",
    "CREATE TABLE bc_jira_events (\n\tid SERIAL NOT NULL, \n\tsource VARCHAR(16) NOT NULL, \n\tkind VARCHAR(64) NOT NULL, \n\tdedupe_key VARCHAR(512) NOT NULL, \n\tpayload TEXT NOT NULL, \n\tstatus VARCHAR(16) NOT NULL, \n\tattempts INTEGER NOT NULL, \n\terror TEXT, \n\treceived_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (id), \n\tUNIQUE (dedupe_key)\n)",
    "CREATE INDEX ix_bc_jira_events_kind_status ON bc_jira_events (kind, status)",
    "CREATE TABLE bc_jira_jira_webhooks (\n\tname VARCHAR(200) NOT NULL, \n\tfields TEXT NOT NULL, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (name)\n)",
    "CREATE TABLE bc_jira_links (\n\tentity VARCHAR(32) NOT NULL, \n\tbc_id VARCHAR(64) NOT NULL, \n\tdocument_number VARCHAR(64), \n\tissue_id VARCHAR(32), \n\tissue_key VARCHAR(64), \n\tcontent_hash VARCHAR(128), \n\tbc_last_modified VARCHAR(40), \n\tstate VARCHAR(16) NOT NULL, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tsummary_hash VARCHAR(64), \n\tdescription_hash VARCHAR(64), \n\tPRIMARY KEY (entity, bc_id)\n)",
    "CREATE INDEX ix_bc_jira_links_issue_id ON bc_jira_links (issue_id)",
    "CREATE INDEX ix_bc_jira_links_issue_key ON bc_jira_links (issue_key)",
    "CREATE TABLE bc_jira_oauth_states (\n\tstate VARCHAR(200) NOT NULL, \n\tmeta TEXT NOT NULL, \n\tcreated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (state)\n)",
    "CREATE TABLE bc_jira_tokens (\n\tname VARCHAR(200) NOT NULL, \n\trefresh_token_enc TEXT, \n\taccess_token_enc TEXT, \n\texpires_at FLOAT, \n\tmeta TEXT, \n\tupdated_at TIMESTAMP WITH TIME ZONE NOT NULL, \n\tPRIMARY KEY (name)\n)",
)

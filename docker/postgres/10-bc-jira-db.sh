#!/bin/bash
# Runs once, when the postgres volume is first initialised: a separate database and role for the connector's
# state store (bc_jira_db), so the Airflow metadata DB and the connector's tables never share a schema.
set -euo pipefail
: "${BC_JIRA_DB_PASSWORD:?set BC_JIRA_DB_PASSWORD in .env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     --set=pw="$BC_JIRA_DB_PASSWORD" <<'SQL'
CREATE ROLE bc_jira LOGIN PASSWORD :'pw';
CREATE DATABASE bc_jira OWNER bc_jira;
SQL

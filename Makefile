# bc-jira: `make run` (demo against the sandbox; DB=postgres for backfills), `make airflow ARGS="dags list"`
# (the airflow CLI next to the demo), `make test` (every test), `make bench`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
PIP_QUIET := 2>&1 | grep -v "is ignored: it is neither" || true

# DB=postgres: PostgreSQL metadata DB + LocalExecutor (DB_URL overrides postgresql://postgres@127.0.0.1:5432/bc_jira_demo).
DEMO_DB_ARGS = $(if $(DB),--db $(DB)) $(if $(DB_URL),--db-url '$(DB_URL)')

.PHONY: install services test lint run airflow bench compose-check clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time takes about a minute)"
	@set -o pipefail; $(BIN)/pip install -q --disable-pip-version-check -r requirements.txt -e . $(PIP_QUIET)
	@$(BIN)/python -c "import airflow, bc_jira, msal" && touch $@

install: $(BIN)/.installed

# PostgreSQL and Redis on 127.0.0.1 for the state-store and distributed tests; start them when down.
services:
	@if command -v pg_isready >/dev/null; then \
	  pg_isready -q -h 127.0.0.1 -p 5432 || { \
	    echo "starting PostgreSQL"; pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start; \
	    for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done; }; \
	else echo "no PostgreSQL installed: PostgreSQL tests will skip (they fail when CI=true)"; fi
	@if command -v redis-server >/dev/null; then \
	  redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { echo "starting Redis"; \
	    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null; }; \
	fi
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then echo "installing chromium (audit-view browser test)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "no chromium: the audit-view browser test will skip (it fails when CI=true)"; fi; }

lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install services lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

run: install
	$(BIN)/python -m bc_jira_sandbox.demo $(DEMO_DB_ARGS)

# `airflow $(ARGS)` with the demo's AIRFLOW_HOME, metadata DB (the last `make run`'s), dags folder, connections.
airflow: install
	@$(BIN)/python -m bc_jira_sandbox.airflow_cli $(DEMO_DB_ARGS) -- $(ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

compose-check: install
	$(BIN)/python -m pytest tests/test_compose.py -q

clean:
	rm -rf $(VENV) .airflow .pytest_cache .ruff_cache

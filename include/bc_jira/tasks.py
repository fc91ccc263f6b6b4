"""The DAGs' task entry points: the only place that builds hooks and stores from Airflow.

Each function here reads what it needs from Airflow (Variables, connections through the hooks, the state
store's connection), calls the pure and short functions of the package, logs, and fails the task when the
outcome says so. One section per area, functions grouped by DAG.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from bc_jira.edges import BC_NOTIFICATION_PATH, JIRA_WEBHOOK_PATH
from bc_jira.edges.intake import BC_ENTITIES, bc_kind
from bc_jira.edges.subscriptions import ensure_bc_subscriptions
from bc_jira.edges.webhooks import (
    APP_DELIVERIES,
    JIRA_WEBHOOK_NAME,
    app_delivery_notice,
    check_basic_deliveries,
    ensure_jira_webhook,
    transitions_jql,
)
from bc_jira.timeutil import iso, now

log = logging.getLogger(__name__)

PUBLIC_URL_VARIABLE = "bc_jira_public_url"
PUBLIC_URL_ENV = "BC_JIRA_PUBLIC_URL"


# -- where the remotes call us ---------------------------------------------------------------------------


def public_base_url() -> str:
    """The api-server's public base URL: Variable ``bc_jira_public_url``, env, ``[api] base_url``, localhost.

    BC and Jira must reach it from the internet (HTTPS in production; a reverse proxy in front of the
    api-server is the usual shape).
    """
    try:
        from airflow.sdk import Variable

        value = Variable.get(PUBLIC_URL_VARIABLE, default=None)
    except Exception as exc:  # noqa: BLE001 - outside a task/server there is no Variable backend
        log.debug("Variable %s not readable: %s", PUBLIC_URL_VARIABLE, type(exc).__name__)
        value = None
    value = value or os.environ.get(PUBLIC_URL_ENV)
    if not value:
        try:
            from airflow.configuration import conf

            value = conf.get("api", "base_url", fallback=None)
        except Exception:  # noqa: BLE001
            value = None
    return (value or "http://localhost:8080").rstrip("/")


def notification_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{BC_NOTIFICATION_PATH}"


def jira_webhook_url(base: str | None = None) -> str:
    return f"{(base or public_base_url()).rstrip('/')}{JIRA_WEBHOOK_PATH}"


# -- bc_subscriptions_renewal ----------------------------------------------------------------------------


def bc_subscriptions_task(url: str | None = None) -> list[dict[str, Any]]:
    """The ``bc_subscriptions_renewal`` task: ensure, log, fail when any entity could not be secured."""
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    url = url or notification_url()
    store = StateStore.from_airflow()
    bc = BusinessCentralHook(call_limiter=store.call_slot)
    if not bc.settings.client_state:
        log.warning("bc_default has no extra.client_state: notifications cannot be authenticated; set one")
    outcomes = ensure_bc_subscriptions(bc, store, url)
    for o in outcomes:
        log.info("bc subscription %s: %s (expires %s) %s", o.name, o.action, o.expires, o.detail)
    failed = [o for o in outcomes if o.action == "failed"]
    if failed:
        raise RuntimeError(
            "could not secure BC subscriptions for "
            + ", ".join(f"{o.name} ({o.detail})" for o in failed)
            + f". The notification URL {url} must answer BC's "
            "validationToken handshake: check the Variable bc_jira_public_url and that the api-server with "
            "the bc_jira plugin is reachable from Business Central"
        )
    return [o.as_dict() for o in outcomes]


def settle_covered_events_task() -> dict[str, int]:
    """Backstop: delete staged BC events the outbound watermarks already cover (audited)."""
    from airflow.sdk import Variable

    from bc_jira.config import WATERMARK_PREFIX
    from bc_jira.edges.settle import settle_bc_events
    from bc_jira.store import StateStore

    store = StateStore.from_airflow()
    out = {}
    for entity in BC_ENTITIES.values():
        mark = Variable.get(f"{WATERMARK_PREFIX}{entity}", default=None)
        out[entity] = settle_bc_events(store, entity, mark, run={"dag_id": "bc_subscriptions_renewal"})
        left = store.count_pending(bc_kind(entity))
        if left:
            log.info("%s: %d BC event(s) still staged (newer than watermark %s)", entity, left, mark)
    return out


# -- jira_webhooks_refresh -------------------------------------------------------------------------------


def jira_webhook_task(url: str | None = None) -> dict[str, Any]:
    """The ``jira_webhooks_refresh`` task."""
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore

    url = url or jira_webhook_url()
    cfg = load_config()
    types = [
        cfg.entity(e).issue_type
        for e in ("purchase_invoices", "vendors")
        if cfg.entity(e).enabled and cfg.entity(e).done_action != "none"
    ]
    jql = transitions_jql(cfg.project_key, types or [cfg.purchase_invoices.issue_type])
    store = StateStore.from_airflow()
    jira = JiraCloudHook(store=store)
    if jira.settings.auth == "basic":
        outcome = check_basic_deliveries(store)
        text = outcome.detail.format(url=url, jql=jql)
        if outcome.action == "ok":
            log.info("jira admin webhook: %s", text)
        else:
            log.warning("jira admin webhook: %s", text)
        return {**outcome.as_dict(), "detail": text}
    outcome = ensure_jira_webhook(jira, store, url, jql)
    log.info("jira webhook: %s (expires %s) %s", outcome.action, outcome.expires, outcome.detail)
    if outcome.action == "failed":
        raise RuntimeError(outcome.detail)
    watch = store.get_webhook(APP_DELIVERIES) or {}
    if not watch.get("last_delivery_at") and not watch.get("watch_since"):
        store.put_webhook(APP_DELIVERIES, watch_since=iso(now()))
    notice = app_delivery_notice(store.get_webhook(JIRA_WEBHOOK_NAME), watch, now())
    if notice:
        log.warning("jira webhook: %s", notice)
    return outcome.as_dict()

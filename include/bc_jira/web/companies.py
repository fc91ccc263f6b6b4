"""The configured companies as the pages see them (health, audit filter): resolved from ``bc_jira_config``.

Why a module of its own: both the health route and the audit page need them, and the audit page must not
import the app (the app includes the page's router).
"""

from __future__ import annotations

import logging

from bc_jira.edges.health import CompanyInfo

log = logging.getLogger(__name__)


def configured_companies() -> list[CompanyInfo] | None:
    """The companies of ``bc_jira_config`` that resolve (None when the config cannot be read: the health
    report then names the companies the subscription rows name, the audit page offers no company filter)."""
    try:
        from bc_jira.config import load_config
        from bc_jira.entities import ENTITIES
        from bc_jira.sync.companies import resolve_all

        companies, _problems = resolve_all(load_config())
    except Exception as exc:  # noqa: BLE001 - the pages still answer, from the store alone
        log.info("companies not resolved (%s)", type(exc).__name__)
        return None
    return [
        CompanyInfo(
            c.store_key,
            c.company_id,
            c.label if c.entry is not None else "",
            c.connection,
            {e: c.watermark_key(e) for e in ENTITIES},
            ident=c.key,
        )
        for c in companies
    ]

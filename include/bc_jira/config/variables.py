"""What each Variable the connector writes holds, as Admin > Variables shows it (its description).

A watermark, the discovered field ids and the resolved users are written by tasks; without a description an
operator opening Admin > Variables sees a key and a value and has to guess whether editing it is safe.
"""

from __future__ import annotations

from bc_jira.config.model import FIELDS_VARIABLE_KEY, USERS_VARIABLE_KEY
from bc_jira.entities import WATERMARK_PREFIX

_DESCRIPTIONS = {
    FIELDS_VARIABLE_KEY: (
        "bc-jira: Jira custom field ids by configured field name, discovered by the bc_jira_connect DAG. "
        "Written by bc_jira_connect; run it again after renaming or recreating a field instead of editing."
    ),
    "bc_jira_bc_companies": (
        "bc-jira: BC company id by name per BC connection, for the companies bc_jira_config names by name; "
        "resolved by the bc_jira_connect DAG (GET companies). Run it again after renaming a company."
    ),
    USERS_VARIABLE_KEY: (
        "bc-jira: Jira accountId by email for the assignee rules of bc_jira_config, resolved by the "
        "bc_jira_connect DAG. Written by bc_jira_connect; run it again after changing the rules."
    ),
}


def variable_description(key: str) -> str | None:
    """The description the connector gives the Variable ``key`` when it writes it (None: not one of its)."""
    if key.startswith(WATERMARK_PREFIX):
        entity, _, company = key.removeprefix(WATERMARK_PREFIX).partition("__")
        entity = entity.replace("_", " ") + (f" sync of company {company}" if company else " sync")
        return (
            f"bc-jira: high-water mark (ISO-8601 UTC lastModifiedDateTime) of the {entity}; advanced by "
            "its advance_watermark task after every batch succeeded. Set it earlier to re-sync from then; "
            "delete it to re-read everything."
        )
    return _DESCRIPTIONS.get(key)

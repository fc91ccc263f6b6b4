"""The handful of Jira calls the sync needs, as a thin adapter over the Jira hook."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bc_jira.hooks.jira import RECONCILE_MAX

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from bc_jira.hooks.jira import JiraCloudHook

log = logging.getLogger(__name__)

# -- Jira operations (thin adapter over JiraCloudHook) -----------------------------------------------------


class JiraOps:
    """The handful of Jira calls the upsert needs, over :class:`bc_jira.hooks.jira.JiraCloudHook`."""

    def __init__(self, hook: JiraCloudHook) -> None:
        self.hook = hook

    def search(self, jql: str, fields: Sequence[str], reconcile: Sequence[int] = ()) -> list[dict[str, Any]]:
        return self.hook.search_all(
            jql, list(fields), reconcile_issues=list(reconcile)[-RECONCILE_MAX:], max_results=5000
        )

    def bulk_create(self, issue_updates: list[dict[str, Any]]) -> Any:
        """One POST (≤ 50). Not retried on a lost answer: the pending intents decide what happened."""
        return self.hook.bulk_create_issues(issue_updates)

    def fetch(self, issue_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The issues themselves (≤ 100 per call), read after a create to learn which record each carries."""
        return self.hook.bulk_fetch_issues(list(issue_ids), list(fields))

    def edit(self, issue_id: str, body: dict[str, Any]) -> None:
        self.hook.edit_issue(issue_id, body.get("fields"), update=body.get("update"))

    def comment(self, issue_id: str, adf_body: dict[str, Any]) -> dict[str, Any]:
        return self.hook.add_comment(issue_id, adf_body)

    def transition(self, issue_id: str, name: str) -> str | None:
        """Apply the transition named ``name`` (or leading to a status of that name); None if unavailable."""
        return self.hook.transition_to(issue_id, name)

    def list_comments(self, issue_id: str) -> Iterable[dict[str, Any]]:
        """The issue's comments, newest first (to find one whose answer was lost)."""
        return self.hook.iter_comments(issue_id, newest_first=True)

    def get_issue(self, issue_id: str, fields: Sequence[str]) -> dict[str, Any]:
        return self.hook.get_issue(issue_id, fields=list(fields))

    def link_types(self) -> list[dict[str, Any]]:
        return self.hook.get_issue_link_types()

    def link(self, type_name: str, inward_issue: str, outward_issue: str) -> None:
        """Make "<inward_issue> <type.outward> <outward_issue>" (e.g. duplicate "duplicates" original)."""
        self.hook.link_issues(type_name, inward_issue, outward_issue)

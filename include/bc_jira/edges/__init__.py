"""The live edges: where BC and Jira call us (intake), how we keep them calling (subscriptions, webhooks),
how DAGs wake on what they sent (triggers) and what the health route reports (health)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PLUGIN_PREFIX = "/bc-jira"
BC_NOTIFICATION_PATH = f"{PLUGIN_PREFIX}/bc/notifications"
JIRA_WEBHOOK_PATH = f"{PLUGIN_PREFIX}/jira/webhook"


@dataclass
class Outcome:
    """One resource's result for the run log and the DAG's return value."""

    name: str
    action: str  # created | renewed | ok | recreated | deleted-duplicate | failed | skipped | ...
    expires: str | None = None
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "action": self.action,
            "expires": self.expires,
            "detail": self.detail,
            **self.extra,
        }

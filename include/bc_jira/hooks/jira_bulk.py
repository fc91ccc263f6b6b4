"""Jira's bulk create answer, read back onto the caller's input (pure: no I/O).

``POST /rest/api/3/issue/bulk`` answers ``{issues: [...], errors: [{failedElementNumber, status,
elementErrors}]}``: 201 when some elements failed, 400 with the same body when all did
(https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-bulk-post).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bc_jira.http import ApiError


@dataclass
class BulkFailure:
    """One element of a bulk create that Jira rejected; ``index`` is the position in the caller's input."""

    index: int
    status: int | None
    messages: list[str]
    errors: dict[str, str]

    def __str__(self) -> str:
        parts = self.messages + [f"{k}: {v}" for k, v in self.errors.items()]
        return f"#{self.index} ({self.status}): {'; '.join(parts) or 'rejected'}"


@dataclass
class BulkCreateResult:
    """``created``: (input index, {id, key, self}); ``failed``: per-element errors mapped to the input."""

    created: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    failed: list[BulkFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def bulk_error_body(exc: ApiError) -> dict[str, Any] | None:
    """The CreatedIssues body of a 400 bulk answer (all elements failed), else None."""
    if exc.status != 400 or exc.response is None:
        return None
    try:
        body = exc.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "errors" in body and isinstance(body["errors"], list) else None

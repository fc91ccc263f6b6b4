"""Jira's bulk and paged requests: the search body, ``startAt`` paging, the bulk create answer (no I/O).

``POST /rest/api/3/issue/bulk`` answers ``{issues: [...], errors: [{failedElementNumber, status,
elementErrors}]}``: 201 when some elements failed, 400 with the same body when all did
(https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-bulk-post).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

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


def read_bulk_answer(body: Mapping[str, Any], offset: int, size: int, *, into: BulkCreateResult) -> None:
    """Add one chunk's answer to ``into``: failures by input index, created issues paired with the rest.

    An error not tied to one element (e.g. over the limit) fails every element of the chunk. Created issues
    are paired with the input by position as a best guess only: Atlassian does not document that
    ``issues[]`` keeps the input order, so callers that act on the pairing confirm it by value
    (``bc_jira.outbound`` reads the record id of every created issue with ``bulk_fetch_issues``).
    """
    failed: set[int] = set()
    for err in body.get("errors") or []:
        pos = err.get("failedElementNumber")
        tied = isinstance(pos, int) and 0 <= pos < size
        positions = [pos] if tied else [i for i in range(size) if i not in failed]
        elem = err.get("elementErrors") or {}
        for i in positions:
            failed.add(i)
            into.failed.append(
                BulkFailure(
                    offset + i,
                    err.get("status"),
                    list(elem.get("errorMessages") or []),
                    dict(elem.get("errors") or {}),
                )
            )
    ok_positions = [i for i in range(size) if i not in failed]
    for pos, issue in zip(ok_positions, body.get("issues") or [], strict=False):
        into.created.append((offset + pos, issue))


def bulk_error_body(exc: ApiError) -> dict[str, Any] | None:
    """The CreatedIssues body of a 400 bulk answer (all elements failed), else None."""
    if exc.status != 400 or exc.response is None:
        return None
    try:
        body = exc.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "errors" in body and isinstance(body["errors"], list) else None


def search_body(
    jql: str,
    fields: Sequence[str],
    reconcile_issues: Iterable[int | str],
    max_results: int,
    expand: str | None,
    properties: Sequence[str],
    reconcile_max: int,
    page_max: int,
) -> dict[str, Any]:
    """The ``POST /search/jql`` body; ``ValueError`` for more than ``reconcile_max`` reconcile ids."""
    reconcile = [int(i) for i in reconcile_issues]
    if len(reconcile) > reconcile_max:
        raise ValueError(f"reconcileIssues accepts at most {reconcile_max} issue ids, got {len(reconcile)}")
    body: dict[str, Any] = {
        "jql": jql,
        "fields": list(fields),
        "maxResults": max(1, min(max_results, page_max)),
    }
    if reconcile:
        body["reconcileIssues"] = reconcile
    if expand:
        body["expand"] = expand
    if properties:
        body["properties"] = list(properties)
    return body


def start_at_pages(fetch: Callable[[int], Mapping[str, Any] | None]) -> list[dict[str, Any]]:
    """Every ``values`` entry of a ``startAt``-paged list, to ``isLast`` (absent: last) or an empty page."""
    out: list[dict[str, Any]] = []
    while True:
        page = fetch(len(out)) or {}
        values = list(page.get("values") or [])
        out.extend(values)
        if page.get("isLast", True) or not values:
            return out

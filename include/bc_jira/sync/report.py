"""What one upsert batch tells the person reading its log or clicking its links: which issue, what happened.

Pure functions over the batch's outcomes (``bc_jira.sync.base._Outcome`` per record): the log lines (issue
keys per action, capped with a count), the JQL that finds every issue of the batch in Jira, the batch's
audit-page address and the mapped task's label (``map_index_template``). No I/O; the task entry point
(``bc_jira.tasks.upsert_task``) logs them and hands the links to the upsert operator
(``bc_jira.sync.links``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# How many keys one log line names before it says "… and N more" (the JQL link always has them all).
LOG_KEYS_CAP = 20
# Audit action -> the word the log uses; the order is the order of the lines.
ACTION_WORDS = {
    "create": "created",
    "update": "updated",
    "resolve": "resolved",
    "reopened": "reopened",
    "link": "linked",
    "unchanged": "unchanged",
    "error": "failed",
}
# Actions whose keys are listed one by one; unchanged issues are only counted (an idle batch stays short).
LISTED = ("create", "update", "resolve", "reopened", "link", "error")
AUDIT_ROUTE = "/bc-jira/audit"
JIRA_SEARCH_PATH = "/issues/"  # Jira Cloud's issue navigator: ``/issues/?jql=...``
# The upsert's ``map_index_template``: Airflow 3.3 renders it with the task's context after the task ran
# (``sdk/execution_time/task_runner.py``, ``_render_map_index``), so the task sets this context variable.
LABEL_CONTEXT_KEY = "bc_jira_batch_label"
MAP_INDEX_TEMPLATE = "{{ " + LABEL_CONTEXT_KEY + " }}"


class OutcomeLike(Protocol):
    @property
    def action(self) -> str: ...
    @property
    def issue_key(self) -> str | None: ...


@dataclass(frozen=True)
class BatchReport:
    """Issue keys per action of one batch, in the order Jira numbered them."""

    keys: Mapping[str, list[str]]

    @property
    def all_keys(self) -> list[str]:
        """Every issue the batch's records have (created, updated, unchanged, ...), each once."""
        seen: dict[str, None] = {}
        for action in ACTION_WORDS:
            for key in self.keys.get(action, []):
                seen.setdefault(key, None)
        return sorted(seen, key=issue_sort_key)

    def lines(self, entity: str, cap: int = LOG_KEYS_CAP) -> list[str]:
        """``purchase_invoices: created 3: FIN-1, FIN-2, FIN-3``; unchanged ones as a count only."""
        out = []
        for action in LISTED:
            keys = self.keys.get(action) or []
            if keys:
                out.append(f"{entity}: {ACTION_WORDS[action]} {len(keys)}: {capped(keys, cap)}")
        unchanged = len(self.keys.get("unchanged") or [])
        if unchanged:
            out.append(f"{entity}: unchanged {unchanged} (not listed)")
        return out


def issue_sort_key(key: str) -> tuple[str, int, str]:
    """FIN-9 before FIN-10 (project, then number)."""
    project, _, number = key.rpartition("-")
    return (project, int(number), "") if number.isdigit() else (key, 0, key)


def batch_report(outcomes: Iterable[OutcomeLike]) -> BatchReport:
    keys: dict[str, list[str]] = {}
    for o in outcomes:
        if o.issue_key and o.action in ACTION_WORDS:
            keys.setdefault(o.action, []).append(o.issue_key)
    return BatchReport({a: sorted(set(k), key=issue_sort_key) for a, k in keys.items()})


def capped(keys: list[str], cap: int = LOG_KEYS_CAP) -> str:
    """``FIN-1, FIN-2`` or ``FIN-1, …, FIN-20 and 180 more``."""
    shown = ", ".join(keys[:cap])
    return shown if len(keys) <= cap else f"{shown} and {len(keys) - cap} more"


def keys_jql(keys: Iterable[str]) -> str | None:
    """``key in (FIN-1, FIN-2) ORDER BY key ASC``: every issue of the batch, None when it has none.

    Issue keys are ``[A-Z][A-Z0-9_]*-[0-9]+`` (Jira's project key rule); anything else is left out rather than
    quoted into the query.
    """
    valid = [k for k in keys if _is_issue_key(k)]
    if not valid:
        return None
    return f"key in ({', '.join(valid)}) ORDER BY key ASC"


def _is_issue_key(key: str) -> bool:
    project, _, number = key.rpartition("-")
    return bool(project) and number.isdigit() and project[0].isalpha() and project.replace("_", "").isalnum()


def jira_search_url(site_url: str, jql: str) -> str:
    """The issue navigator on the Jira site showing the JQL's issues."""
    return f"{site_url.rstrip('/')}{JIRA_SEARCH_PATH}?{urlencode({'jql': jql}, quote_via=quote)}"


def audit_batch_url(
    base_url: str, dag_id: str | None, run_id: str, task_id: str | None, map_index: int | None
) -> str:
    """The audit page showing the rows this task instance (one batch, one run) wrote."""
    params: dict[str, str | int] = {"dag": dag_id or "", "run": run_id, "task": task_id or ""}
    if map_index is not None and map_index >= 0:
        params["map_index"] = map_index
    return f"{base_url.rstrip('/')}{AUDIT_ROUTE}?{urlencode(params, quote_via=quote)}"


def batch_label(position: int | None, total: int | None, records: int) -> str:
    """The mapped task's label in the UI: ``batch 2/7 · 500 records`` (``position`` counts from 1)."""
    noun = "record" if records == 1 else "records"
    if position is None:
        return f"batch · {records} {noun}"
    of = f"/{total}" if total else ""
    return f"batch {position}{of} · {records} {noun}"

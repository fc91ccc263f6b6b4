"""What ``make run`` reports while it runs: run counts, this session's first green syncs, Done examples.

Airflow's REST API caps every list at ``[api] maximum_page_limit`` (100) whatever ``limit`` asks for, so
counting the runs of a page undercounts as soon as there are more (a backfill plans 577): counts come from
``total_entries`` of one filtered query per state. A warm re-run finds the previous session's green runs
in the metadata DB, so "first green" only counts runs that ended after this session started.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    Get = Callable[[str, dict[str, Any]], Any]

SYNC_DAGS = ("bc_purchase_invoices_to_jira", "bc_vendors_to_jira", "bc_purchase_orders_to_jira")
RUN_STATES = ("queued", "running", "success", "failed")
# What Done on an issue of each kind does (config `done_action`; purchase orders: none).
DONE_EFFECT = {
    "Invoice": "posts its draft invoice in BC",
    "Vendor": "unblocks its vendor in BC",
}


def api_time(dt: datetime) -> str:
    """The form Airflow's ``*_gte`` filters take (``2026-12-02T02:43:11.123456Z``)."""
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_counts(get: Get) -> dict[str, int]:
    """Runs of every DAG per state (the states with none left out), exact however many runs there are."""
    counts = {s: int(get("/dags/~/dagRuns", {"state": s, "limit": 1})["total_entries"]) for s in RUN_STATES}
    return {s: n for s, n in sorted(counts.items()) if n}


def green_since(get: Get, since: datetime, dag_ids: Iterable[str] = SYNC_DAGS) -> set[str]:
    """The DAGs with a successful run that ended after ``since`` (this session's, not an earlier one's)."""
    after = api_time(since)
    return {
        d
        for d in dag_ids
        if get(f"/dags/{d}/dagRuns", {"state": "success", "end_date_gte": after, "limit": 1})["total_entries"]
    }


def started_since(get: Get, dag_id: str, since: datetime) -> bool:
    """Whether ``dag_id`` has a run queued after ``since`` (the scheduler's at unpause, or a trigger)."""
    runs = get(f"/dags/{dag_id}/dagRuns", {"limit": 1, "order_by": "-id"})["dag_runs"]
    queued = runs[0].get("queued_at") if runs else None
    return bool(queued) and datetime.fromisoformat(queued.replace("Z", "+00:00")) >= since


def done_examples(issues: Iterable[Mapping[str, Any]], sandbox_url: str) -> list[str]:
    """One ``curl`` line per kind whose Done acts in BC, naming an open issue of that kind in this run
    (which kind FIN-1 is varies by run: a Purchase Order's Done only resolves it in Jira)."""
    first: dict[str, str] = {}
    for issue in sorted(issues, key=lambda i: int(str(i["key"]).rsplit("-", 1)[1])):
        fields = issue["fields"]
        kind = fields["issuetype"]["name"]
        if kind in DONE_EFFECT and kind not in first and fields["status"]["statusCategory"]["key"] != "done":
            first[kind] = str(issue["key"])
    return [
        f"  curl -s -X POST {sandbox_url}/_sandbox/jira/transition -H 'Content-Type: application/json' "
        f"""-d '{{"issue": "{first[kind]}", "to": "Done"}}'   # {kind} issue: Done {effect}"""
        for kind, effect in DONE_EFFECT.items()
        if kind in first
    ]


def issue_kinds(issues: Iterable[dict[str, Any]]) -> str:
    """Which keys are which kind, in key order ("FIN-1…FIN-134 Invoice, FIN-135…FIN-140 Purchase Order"):
    the syncs run side by side, so which kind gets FIN-1 differs from run to run."""
    runs: list[list[Any]] = []  # [kind, first key, last key]
    for issue in sorted(issues, key=lambda i: int(str(i["key"]).rsplit("-", 1)[1])):
        kind = issue["fields"]["issuetype"]["name"]
        if runs and runs[-1][0] == kind:
            runs[-1][2] = issue["key"]
        else:
            runs.append([kind, issue["key"], issue["key"]])
    return ", ".join(f"{a} {kind}" if a == b else f"{a}…{b} {kind}" for kind, a, b in runs)

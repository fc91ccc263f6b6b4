"""What the bench prints: the size table, then one line per named measurement with its target.

A measurement is a :class:`Check` over a result row (a dotted path into it): adding a line means adding one
``Check`` to ``CHECKS``; the JSON keeps every row whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Wall clock moves with machine load; CPU seconds per 1,000 records are the stable figures beside it.
TABLE_COLUMNS = [
    "invoices",
    "created",
    "seconds",
    "records_per_s",
    "jira_calls_per_record",
    "bc_calls_per_record",
    "peak_rss_mb",
    "max_xcom_bytes",
    "batches",
    "cpu_s_per_1k",
    "sandbox_cpu_s_per_1k",
    "baseline_records_per_s",
    "speedup_vs_baseline",
]


@dataclass(frozen=True)
class Check:
    """One printed line: ``label`` is what it measures, ``path`` where the value is in a row."""

    label: str
    path: str
    limit: float | None = None  # None: reported, no target
    at_least: bool = False  # the value must be >= limit (else <=)
    strict: bool = False  # < / > instead of <= / >=

    def value(self, row: dict[str, Any]) -> Any:
        node: Any = row
        for part in self.path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def met(self, row: dict[str, Any]) -> bool | None:
        value = self.value(row)
        if self.limit is None:
            return None
        if not isinstance(value, int | float):
            return False
        if self.at_least:
            return value > self.limit if self.strict else value >= self.limit
        return value < self.limit if self.strict else value <= self.limit

    def target(self) -> str:
        if self.limit is None:
            return ""
        op = (">" if self.strict else ">=") if self.at_least else ("<" if self.strict else "<=")
        return f"{op} {self.limit:g}"


CHECKS: list[Check] = [
    # a large first sync
    Check("first sync: issues created per invoice", "created_ratio", 1, True),
    Check("first sync: invoices whose id an issue carries, per invoice", "invoices_with_an_issue", 1, True),
    Check("first sync: issues in the Jira project per invoice (no duplicates)", "issues_per_invoice", 1),
    Check("first sync: Jira calls per record", "jira_calls_per_record", 0.035),
    Check("first sync: BC calls per record", "bc_calls_per_record", 0.01),
    Check("first sync: peak RSS of any task process (MB)", "peak_rss_mb", 300, strict=True),
    Check("first sync: largest XCom (bytes)", "max_xcom_bytes", 10_240),
    Check("first sync: mapped upserts (Airflow max_map_length 1024)", "batches", 1024, strict=True),
    Check("first sync: speed-up over the naive baseline (wall clock)", "speedup_vs_baseline", 30, True),
    # stable figures: CPU, ours and the sandbox's apart
    Check("first sync: connector CPU s per 1,000 records (task processes)", "cpu_s_per_1k"),
    Check("first sync: sandbox CPU s per 1,000 records", "sandbox_cpu_s_per_1k"),
    # the incremental cost does not grow with history
    Check("incremental: records already linked", "incremental.linked_before"),
    Check("incremental: Jira calls for one changed invoice", "incremental.jira_calls", 3),
    Check("incremental: BC calls for one changed invoice", "incremental.bc_calls", 2),
    Check("incremental: upsert task's own time (s)", "incremental.upsert_own_s", 5, strict=True),
    Check("incremental: connector CPU s (extract + upsert processes)", "incremental.cpu_s"),
]


def table(rows: list[dict[str, Any]]) -> str:
    cols = [c for c in TABLE_COLUMNS if any(c in r for r in rows)]
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in cols]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(str(r.get(c)).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def checks(row: dict[str, Any], which: list[Check] | None = None) -> tuple[list[str], list[str]]:
    """(the printed lines, the missed targets) for one row (``which``: default ``CHECKS``)."""
    lines, misses = [], []
    which = CHECKS if which is None else which
    width = max(len(c.label) for c in which)
    for c in which:
        value, ok = c.value(row), c.met(row)
        mark = "" if ok is None else ("ok" if ok else "MISSED")
        lines.append(f"  {c.label.ljust(width)}  {str(value):>10}  {c.target():>9}  {mark}")
        if ok is False:
            misses.append(f"{c.path}={value} (target {c.target()})")
    return lines, misses


def calls_by_endpoint(row: dict[str, Any]) -> list[str]:
    """The sandbox's request log of the first sync, per endpoint, with calls per record."""
    created = max(row.get("created", 0), 1)
    out = []
    for path, n in sorted(row.get("calls", {}).items(), key=lambda kv: -kv[1]):
        out.append(f"  {n:>7}  {n / created:.4f}/record  {path}")
    return out


# "Many companies": N companies × P new draft invoices in one run of the invoice DAG (bench.companies)
COMPANY_CHECKS: list[Check] = [
    Check("companies: run of the invoice DAG succeeded (1 = success)", "dag_success", 1, True),
    Check("companies: worst company's drafts with an issue in its project", "min_company_coverage", 1, True),
    Check("companies: worst company's issues per draft (no duplicates)", "max_company_issues_per_draft", 1),
    Check("companies: issues in another company's project or the global one", "misplaced_issues", 0),
    Check("companies: watermarks advanced (one per company)", "watermarks_advanced"),
    Check("companies: Jira calls per record (attachments apart)", "jira_calls_per_record", 0.05),
    Check("companies: BC calls per record (attachments apart)", "bc_calls_per_record", 0.01),
    Check("companies: attachment uploads' Jira calls (own budget)", "attach_jira_calls"),
    Check("companies: wall clock of the run (s; tasks one after another)", "seconds"),
    Check("companies: connector CPU s per 1,000 records (the dag.test process)", "cpu_s_per_1k"),
    Check("companies: sandbox CPU s per 1,000 records", "sandbox_cpu_s_per_1k"),
]

"""Bench row "Many companies": N companies × P new draft invoices in one run of the real invoice DAG.

The sandbox holds N BC companies (``reset(companies=N)``), each seeded with P draft invoices, and a Jira
project per company (``POST /_sandbox/jira/projects``: ``CO1``…); ``bc_jira_config`` lists every company by id
with its own ``project_key``. One ``dag.test()`` of ``bc_jira_connect`` (field discovery, as a deployment
does once), then the measured run: one ``dag.test()`` of ``bc_purchase_invoices_to_jira`` (companies →
extract per company → batches → upsert per batch → advance_watermark), its tasks one after another in one
process, so the wall clock is a serial run's (no worker pool). Verified per company: the issues of its
project carry exactly its draft invoices' record ids, each once, and none of its records sits in another
project; its watermark Variable advanced. Calls come from the sandbox's request log (by endpoint) and its BC
calls per company (``company_calls``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from bench.harness import REPO, Sandbox, _bench_env, _proc_cpu_s, _run_step

if TYPE_CHECKING:
    from pathlib import Path

DAG_ID = "bc_purchase_invoices_to_jira"
FIN = "FIN"  # the global project_key: no company's issue belongs there


def project_key(index: int) -> str:
    return f"CO{index + 1}"


def _airflow_env(env: dict[str, str], home: Path) -> dict[str, str]:
    """A metadata DB of its own (SQLite) for ``dag.test()``: Variables, XComs, task instances."""
    return {
        **env,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
    }


def _seed(sb: Sandbox, companies: int, per_company: int) -> list[dict[str, Any]]:
    sb.control("POST", "/_sandbox/reset", {"companies": companies, "vendors": 60, "invoices": 0, "orders": 0})
    listed = sb.control("GET", "/_sandbox/bc/companies")["value"]
    for index, company in enumerate(listed):
        sb.control("POST", "/_sandbox/seed", {"draft_invoices": per_company, "company": company["id"]})
        sb.control("POST", "/_sandbox/jira/projects", {"key": project_key(index), "name": company["name"]})
    return listed


def _drafts(sb: Sandbox, company_id: str) -> set[str]:
    rows = sb.control("GET", f"/_sandbox/bc/records/purchaseInvoices?company={company_id}")["value"]
    return {r["id"] for r in rows if r["status"] == "Draft"}


def verify(
    sb: Sandbox, listed: list[dict[str, Any]], record_field: str, company_field: str | None
) -> dict[str, Any]:
    """Per company: its project's issues against its drafts (exactly one each, none elsewhere)."""
    issues = sb.control("GET", "/_sandbox/jira/issues")
    by_project: dict[str, Counter[str]] = {}
    company_values: dict[str, set[str]] = {}
    for issue in issues:
        f = issue["fields"]
        key = f["project"]["key"]
        by_project.setdefault(key, Counter())[str(f.get(record_field))] += 1
        if company_field:
            company_values.setdefault(key, set()).add(str(f.get(company_field)))
    per_company = []
    for index, company in enumerate(listed):
        mine, project = _drafts(sb, company["id"]), project_key(index)
        got = by_project.get(project, Counter())
        elsewhere = sum(
            n for k, c in by_project.items() if k != project for rid, n in c.items() if rid in mine
        )
        per_company.append(
            {
                "company": company["name"],
                "project": project,
                "drafts": len(mine),
                "issues": sum(got.values()),
                "records_with_an_issue": len(mine & set(got)),
                "duplicates": sum(n - 1 for n in got.values() if n > 1),
                "foreign": sum(n for rid, n in got.items() if rid not in mine),
                "in_other_projects": elsewhere,
                "company_field": sorted(company_values.get(project, set())),
            }
        )
    return {
        "by_company": per_company,
        "issues_in_global_project": sum(by_project.get(FIN, Counter()).values()),
        "total_issues": len(issues),
    }


def _summary(per_company: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures the checks read: the worst company's, so one bad company fails the row."""
    return {
        "min_company_coverage": min(
            (c["records_with_an_issue"] / c["drafts"] if c["drafts"] else 0.0) for c in per_company
        ),
        "max_company_issues_per_draft": max(
            (c["issues"] / c["drafts"] if c["drafts"] else 0.0) for c in per_company
        ),
        "misplaced_issues": sum(c["foreign"] + c["in_other_projects"] for c in per_company),
        "duplicates": sum(c["duplicates"] for c in per_company),
    }


def _call_lines(stats: dict[str, Any], created: int, n: int) -> dict[str, Any]:
    """Per-record calls without the attachment uploads, which have their own line (bounded by files, not
    records), as in the one-company rows; the totals with them beside."""
    attach = {p: c for p, c in stats["calls"].items() if "attachment" in p.lower()}
    attach_jira = sum(c for p, c in attach.items() if "/rest/api/3/" in p)
    attach_bc = sum(attach.values()) - attach_jira
    jira, bc = stats["totals"]["jira"] - attach_jira, stats["totals"]["bc"] - attach_bc
    return {
        "jira_calls": jira,
        "bc_calls": bc,
        "jira_calls_per_record": round(jira / created, 4),
        "bc_calls_per_record": round(bc / max(n, 1), 4),
        "attach_jira_calls": attach_jira,
        "attach_bc_calls": attach_bc,
        "jira_calls_with_attachments": stats["totals"]["jira"],
        "bc_calls_with_attachments": stats["totals"]["bc"],
    }


def run_companies(
    companies: int, per_company: int, *, latency_ms: int, batch_size: int, workdir: Path
) -> dict[str, Any]:
    sb = Sandbox(latency_ms, workdir)
    home = workdir / f"home-companies-{companies}x{per_company}"
    try:
        seed_start = time.monotonic()
        listed = _seed(sb, companies, per_company)
        seed_s = time.monotonic() - seed_start
        env = _airflow_env(_bench_env(sb, home, batch_size), home)
        cfg = json.loads(env["AIRFLOW_VAR_BC_JIRA_CONFIG"])
        cfg["companies"] = [{"id": c["id"], "project_key": project_key(i)} for i, c in enumerate(listed)]
        env["AIRFLOW_VAR_BC_JIRA_CONFIG"] = json.dumps(cfg)
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
        )
        connect, _, _ = _run_step(env, "dag", "bc_jira_connect")
        if connect["state"] != "success":
            raise RuntimeError(f"bc_jira_connect did not succeed: {connect}")
        fields, _, _ = _run_step(env, "census")
        sb.control("POST", "/_sandbox/stats/reset")
        sb_cpu = _proc_cpu_s(sb.proc.pid)
        start = time.monotonic()
        run, _, rss = _run_step(env, "dag", DAG_ID)
        wall = time.monotonic() - start
        sb_cpu = _proc_cpu_s(sb.proc.pid) - sb_cpu
        stats = sb.control("GET", "/_sandbox/stats")
        ids = fields["field_ids"]
        checked = verify(sb, listed, ids["BC Record Id"], ids.get("BC Company"))
    finally:
        sb.stop()
    n = companies * per_company
    created = max(checked["total_issues"], 1)
    by_id = {c["id"].lower(): c["name"] for c in listed}
    watermarks = run.get("watermarks", {})
    return {
        "companies": companies,
        "per_company": per_company,
        "invoices": n,
        "created": checked["total_issues"],
        "dag_state": run["state"],
        "dag_success": int(run["state"] == "success"),
        "tasks": run["tasks"],
        "seed_s": round(seed_s, 1),
        "seconds": round(wall, 2),
        "records_per_s": round(checked["total_issues"] / wall, 1) if wall else 0.0,
        **_call_lines(stats, created, n),
        "bc_calls_by_company": {
            by_id.get(k, k): v for k, v in sorted(stats.get("company_calls", {}).items())
        },
        "peak_rss_mb": round(rss, 1),
        "cpu_s_per_1k": round(run["cpu_s"] / created * 1000, 3),
        "sandbox_cpu_s_per_1k": round(sb_cpu / created * 1000, 3),
        "watermarks_advanced": sum(1 for v in watermarks.values() if v),
        "watermarks": watermarks,
        **_summary(checked["by_company"]),
        **checked,
        "calls": stats["calls"],
    }


def print_row(row: dict[str, Any]) -> None:
    print(
        f"\n{row['companies']} companies × {row['per_company']} draft invoices, one run of {DAG_ID} "
        f"({row['dag_state']}): {row['created']} issues in {row['seconds']} s"
    )
    for c in row["by_company"]:
        print(
            f"  {c['company']:<12} {c['project']:<4} drafts {c['drafts']:>6}  issues {c['issues']:>6}  "
            f"with an issue {c['records_with_an_issue']:>6}  duplicates {c['duplicates']}  "
            f"elsewhere {c['in_other_projects'] + c['foreign']}  BC calls "
            f"{row['bc_calls_by_company'].get(c['company'], 0)} (with attachments)"
        )
    print(
        f"  attachments (own line): {row['attach_jira_calls']} Jira and {row['attach_bc_calls']} BC calls; "
        f"watermarks: {row['watermarks']}"
    )

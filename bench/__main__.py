"""Benchmark: sync N new draft invoices through the real code against the sandbox, beside a naive baseline.

Each step runs in its own process (like an Airflow task), so peak RSS is per task. Upserts run on
``--workers`` processes at once, like mapped tasks on a worker pool. The naive baseline (one search and one
create per record, the way per-record integrations work) is timed on a sample of
``--baseline-sample`` records: its rate is flat per record, so the sample gives the rate
without a 20-minute wait.

After the first sync, one invoice is changed in BC and the next run (extract from the watermark, upsert) is
measured with every link of the first sync in the store and every issue in Jira: the incremental cost.
Beside the wall clock, which moves with machine load, the bench reports CPU seconds per 1,000 records of
the task processes (``getrusage``) and of the sandbox (``/proc/<pid>/stat``) apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import companies, report
from bench.harness import RESULTS, Sandbox, _bench_env, _proc_cpu_s, _run_step, _sqlite_conn


def _sum_counts(results: list[tuple[dict[str, Any], float, float]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for answer, _, _ in results:
        for key, value in answer["counts"].items():
            counts[key] = counts.get(key, 0) + value
    return counts


def first_sync(sb: Sandbox, env: dict[str, str], n: int, workers: int) -> dict[str, Any]:
    """Extract and the mapped upserts of N new draft invoices, on ``workers`` processes at once."""
    sb.control("POST", "/_sandbox/stats/reset")
    sb_cpu = _proc_cpu_s(sb.proc.pid)
    start = time.monotonic()
    extracted, _, extract_rss = _run_step(env, "extract", "first")
    batches = extracted["batch_ids"]
    shards = [batches[i::workers] for i in range(workers) if batches[i::workers]]
    with ThreadPoolExecutor(len(shards) or 1) as pool:
        results = list(pool.map(lambda ids: _run_step(env, "upsert", *ids), shards))
    wall = time.monotonic() - start
    sb_cpu = _proc_cpu_s(sb.proc.pid) - sb_cpu
    stats = sb.control("GET", "/_sandbox/stats")
    attached = _attach_line(sb, env, shards, stats)
    counts = _sum_counts(results)
    created = max(counts.get("created", 0), 1)
    cpu = extracted["cpu_s"] + sum(r[0]["cpu_s"] for r in results)
    return {
        "invoices": n,
        "created": counts.get("created", 0),
        "created_ratio": round(counts.get("created", 0) / max(n, 1), 4),
        "read": extracted["read"],
        "batches": len(batches),
        "seconds": round(wall, 2),
        "records_per_s": round(counts.get("created", 0) / wall, 1) if wall else 0.0,
        "jira_calls": stats["totals"]["jira"],
        "bc_calls": stats["totals"]["bc"],
        "jira_calls_per_record": round(stats["totals"]["jira"] / created, 4),
        "bc_calls_per_record": round(stats["totals"]["bc"] / max(extracted["read"], 1), 4),
        "peak_rss_mb": round(max([extract_rss, *(r[2] for r in results)]), 1),
        "max_xcom_bytes": max([extracted["xcom_bytes"], *(r[0]["xcom_bytes"] for r in results)]),
        "cpu_s": round(cpu, 2),
        "cpu_s_per_1k": round(cpu / created * 1000, 3),
        "sandbox_cpu_s": round(sb_cpu, 2),
        "sandbox_cpu_s_per_1k": round(sb_cpu / created * 1000, 3),
        "high_watermark": extracted["high_watermark"],
        "calls": stats["calls"],
        **attached,
    }


def _attach_line(
    sb: Sandbox, env: dict[str, str], shards: list[list[str]], before: dict[str, Any]
) -> dict[str, Any]:
    """The attachment uploads on their own line: run after the upserts, counted as the stats' difference, so
    the per-record Jira/BC lines above exclude them (they are bounded by files, not records)."""
    start = time.monotonic()
    with ThreadPoolExecutor(len(shards) or 1) as pool:
        results = list(pool.map(lambda ids: _run_step(env, "attach", *ids), shards))
    after = sb.control("GET", "/_sandbox/stats")
    counts: dict[str, int] = {}
    for answer, _, _ in results:
        for key, value in answer["counts"].items():
            counts[key] = counts.get(key, 0) + value
    return {
        "attach_files": counts.get("uploaded", 0) + counts.get("found", 0),
        "attach_bytes": counts.get("bytes", 0),
        "attach_jira_calls": after["totals"]["jira"] - before["totals"]["jira"],
        "attach_bc_calls": after["totals"]["bc"] - before["totals"]["bc"],
        "attach_comments": counts.get("commented", 0),
        "attach_seconds": round(time.monotonic() - start, 2),
        "attach_peak_rss_mb": round(max([0.0, *(r[2] for r in results)]), 1),
    }


def _attach_table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "invoices",
        "attach_files",
        "attach_bytes",
        "attach_jira_calls",
        "attach_bc_calls",
        "attach_seconds",
    ]
    lines = ["attachments (separate budget): " + " | ".join(cols)]
    lines += ["  " + " | ".join(str(r.get(c)) for c in cols) for r in rows]
    return "\n".join(lines)


def _one_linked_record(home: Path) -> tuple[str, int]:
    """A record id the first sync linked, and how many links the store holds."""
    import sqlite3

    with sqlite3.connect(home / "bc_jira_state.db") as db:
        (bc_id,) = db.execute("SELECT bc_id FROM bc_jira_links WHERE issue_id IS NOT NULL LIMIT 1").fetchone()
        (count,) = db.execute("SELECT count(*) FROM bc_jira_links").fetchone()
    return bc_id, count


def incremental(sb: Sandbox, env: dict[str, str], home: Path, first: dict[str, Any]) -> dict[str, Any]:
    """One invoice changed in BC after the first sync: the next run's extract and upsert, with every link of
    the first sync in the store and every issue in Jira (the real code over the real history)."""
    bc_id, linked = _one_linked_record(home)
    sb.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "purchaseInvoices", "id": bc_id, "set": {"totalAmountIncludingTax": 4321.5}},
    )
    sb.control("POST", "/_sandbox/stats/reset")
    extracted, _, _ = _run_step(env, "extract", "incremental", first["high_watermark"])
    upserted, _, _ = _run_step(env, "upsert", *extracted["batch_ids"])
    stats = sb.control("GET", "/_sandbox/stats")
    return {
        "linked_before": linked,
        "read": extracted["read"],
        "kept": extracted["kept"],
        "counts": upserted["counts"],
        "jira_calls": stats["totals"]["jira"],
        "bc_calls": stats["totals"]["bc"],
        "upsert_own_s": upserted["slowest_batch_s"],
        "cpu_s": round(extracted["cpu_s"] + upserted["cpu_s"], 2),
        "calls": stats["calls"],
    }


def baseline(sb: Sandbox, env: dict[str, str], home: Path, sample: int) -> dict[str, Any]:
    """The naive per-record integration on fresh data, same sandbox and latency."""
    sb.control("POST", "/_sandbox/reset", {"vendors": 60, "invoices": 0, "orders": 0})
    sb.control("POST", "/_sandbox/seed", {"draft_invoices": sample})
    # A reset sandbox has a new OAuth grant: the baseline gets its own Airflow home and token store.
    base_env = {**env, **sb.env(), "AIRFLOW_HOME": str(home), "AIRFLOW_CONN_BC_JIRA_DB": _sqlite_conn(home)}
    home.mkdir(parents=True, exist_ok=True)
    base, _, _ = _run_step(base_env, "baseline", str(sample))
    return base


def run_size(
    n: int, *, latency_ms: int, workers: int, batch_size: int, baseline_sample: int, workdir: Path
) -> dict[str, Any]:
    sb = Sandbox(latency_ms, workdir)
    home = workdir / f"home-{n}"
    try:
        sb.control("POST", "/_sandbox/seed", {"draft_invoices": n})
        env = _bench_env(sb, home, batch_size)
        # the field ids, once, as bc_jira_connect stores them for upsert_task (the project is still empty)
        before, _, _ = _run_step(env, "census")
        env["BENCH_FIELD_IDS"] = json.dumps(before["field_ids"])
        row = first_sync(sb, env, n, workers)
        time.sleep(2.5)  # the sandbox's search lag (--search-lag-s 2): the census searches
        census, _, _ = _run_step(env, "census")
        row["issues_per_invoice"] = round(census["issues"] / max(n, 1), 4)
        row["invoices_with_an_issue"] = round(census["record_ids"] / max(n, 1), 4)
        row["incremental"] = incremental(sb, env, home, row)
        base = baseline(sb, env, workdir / f"home-{n}-baseline", baseline_sample)
    finally:
        sb.stop()
    base_rate = base["records"] / base["seconds"] if base["seconds"] else 0.0
    row["baseline_records_per_s"] = round(base_rate, 2)
    row["speedup_vs_baseline"] = round(row["records_per_s"] / base_rate, 1) if base_rate else None
    return row


def _sizes_report(rows: list[dict[str, Any]]) -> list[str]:
    print()
    print(report.table(rows))
    print(_attach_table(rows))
    big = rows[-1]
    print(f"\nJira and BC calls of the first sync of {big['invoices']} invoices, by endpoint (sandbox log):")
    print("\n".join(report.calls_by_endpoint(big)))
    lines, misses = report.checks(big)
    print(f"\nat {big['invoices']} invoices:")
    print("\n".join(lines))
    return misses


def _companies_report(row: dict[str, Any]) -> list[str]:
    companies.print_row(row)
    print("Jira and BC calls of the run, by endpoint (sandbox log):")
    print("\n".join(report.calls_by_endpoint(row)))
    lines, misses = report.checks(row, report.COMPANY_CHECKS)
    print("\n".join(lines))
    return [f"many_companies.{m}" for m in misses]


def _write(
    args: argparse.Namespace, rows: list[dict[str, Any]], many: dict[str, Any] | None, misses: list[str]
) -> None:
    """The results file; a run of one part (``--sizes ''`` or ``--companies 0``) keeps the other part's."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if rows:
        doc.update(latency_ms=args.latency_ms, workers=args.workers, batch_size=args.batch_size, results=rows)
        doc["targets"] = {c.path: c.target() for c in report.CHECKS if c.limit is not None}
        doc["missed"] = [m for m in misses if not m.startswith("many_companies.")]
    if many is not None:
        doc["many_companies"] = {"latency_ms": args.latency_ms, "batch_size": args.batch_size, **many}
        doc["many_companies_targets"] = {
            c.path: c.target() for c in report.COMPANY_CHECKS if c.limit is not None
        }
        doc["many_companies_missed"] = [m for m in misses if m.startswith("many_companies.")]
        doc["many_companies_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if rows:
        doc["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out.write_text(json.dumps(doc, indent=2))
    print(f"written {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="first-sync sizes; '' skips them")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="upsert processes at once (mapped tasks)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--baseline-sample", type=int, default=100)
    parser.add_argument(
        "--companies", type=int, default=5, help="the 'Many companies' row: BC companies (0 skips it)"
    )
    parser.add_argument("--per-company", type=int, default=2000, help="new draft invoices per company")
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = parser.parse_args(argv)
    rows = []
    many = None
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bc_jira_bench_") as tmp:
        for n in (int(s) for s in args.sizes.split(",") if s.strip()):
            row = run_size(
                n,
                latency_ms=args.latency_ms,
                workers=args.workers,
                batch_size=args.batch_size,
                baseline_sample=args.baseline_sample,
                workdir=Path(tmp),
            )
            rows.append(row)
            print(f"{n} invoices: {row['created']} created in {row['seconds']} s", flush=True)
        if args.companies > 0:
            many = companies.run_companies(
                args.companies,
                args.per_company,
                latency_ms=args.latency_ms,
                batch_size=args.batch_size,
                workdir=Path(tmp),
            )
    if rows:
        misses += _sizes_report(rows)
    if many is not None:
        misses += _companies_report(many)
    print("\ntargets:", "all met" if not misses else "MISSED " + "; ".join(misses))
    _write(args, rows, many, misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())

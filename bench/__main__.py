"""Benchmark: sync N new draft invoices through the real code against the sandbox, beside a naive baseline.

Each step runs in its own process (like an Airflow task), so peak RSS is per task. Upserts run on
``--workers`` processes at once, like mapped tasks on a worker pool. The naive baseline (one search and one
create per record, the way per-record integrations work) is timed on a sample of
``--baseline-sample`` records: its rate is flat per record, so the sample gives the rate
without a 20-minute wait.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    def __init__(self, latency_ms: int, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / f"sandbox-{self.port}.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bc_jira_sandbox",
                "serve",
                "--port",
                str(self.port),
                "--seed-invoices",
                "0",
                "--seed-orders",
                "0",
                "--seed-vendors",
                "60",
                "--latency-ms",
                str(latency_ms),
                "--search-lag-s",
                "2",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(300):
            try:
                if requests.get(f"{self.url}/_sandbox/health", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            raise RuntimeError("sandbox did not start")

    def control(self, method: str, path: str, body: Any = None) -> Any:
        resp = requests.request(method, f"{self.url}{path}", json=body, timeout=120)
        resp.raise_for_status()
        return resp.json()

    def env(self) -> dict[str, str]:
        import shlex

        out = subprocess.run(
            [sys.executable, "-m", "bc_jira_sandbox", "airflow-env", "--port", str(self.port)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return {
            k.removeprefix("export "): shlex.split(v)[0]
            for k, _, v in (line.partition("=") for line in out.splitlines())
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def _sqlite_conn(home: Path) -> str:
    """``bc_jira_db`` as the SQLite file the connector would default to in that Airflow home."""
    return json.dumps({"conn_type": "sqlite", "host": str(home / "bc_jira_state.db")})


def _run_step(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float, float]:
    """Run one step process; return (its JSON answer, wall seconds, peak RSS MB)."""
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.worker", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate()
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"bench step {args[0]} failed:\n{err[-4000:]}")
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH "))
    answer = json.loads(line[6:])
    return answer, wall, answer.get("peak_rss_mb", 0.0)


def run_size(
    n: int, *, latency_ms: int, workers: int, batch_size: int, baseline_sample: int, workdir: Path
) -> dict[str, Any]:
    sb = Sandbox(latency_ms, workdir)
    try:
        sb.control("POST", "/_sandbox/seed", {"draft_invoices": n})
        env = {
            **os.environ,
            **sb.env(),
            "AIRFLOW_HOME": str(workdir / f"home-{n}"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            # named explicitly: these processes have no Airflow metadata DB, and the connector's connection
            # lookup fails closed when a backend it must ask (the metadata DB) cannot answer
            "AIRFLOW_CONN_BC_JIRA_DB": _sqlite_conn(workdir / f"home-{n}"),
        }
        cfg = json.loads(env["AIRFLOW_VAR_BC_JIRA_CONFIG"])
        cfg["batch_size"] = batch_size
        env["AIRFLOW_VAR_BC_JIRA_CONFIG"] = json.dumps(cfg)
        Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        sb.control("POST", "/_sandbox/stats/reset")

        start = time.monotonic()
        extracted, extract_wall, extract_rss = _run_step(env, "extract")
        batches = extracted["batch_ids"]
        shards = [batches[i::workers] for i in range(workers) if batches[i::workers]]
        with ThreadPoolExecutor(len(shards) or 1) as pool:
            results = list(pool.map(lambda ids: _run_step(env, "upsert", *ids), shards))
        wall = time.monotonic() - start
        stats = sb.control("GET", "/_sandbox/stats")
        counts: dict[str, int] = {}
        for answer, _, _ in results:
            for key, value in answer["counts"].items():
                counts[key] = counts.get(key, 0) + value
        attached = _attach_line(sb, env, shards, stats)

        # Baseline on the same sandbox, fresh data, same latency.
        sb.control("POST", "/_sandbox/reset", {"vendors": 60, "invoices": 0, "orders": 0})
        sb.control("POST", "/_sandbox/seed", {"draft_invoices": baseline_sample})
        # A reset sandbox has a new OAuth grant: the baseline gets its own Airflow home and token store.
        base_env = {
            **env,
            **sb.env(),
            "AIRFLOW_HOME": str(workdir / f"home-{n}-baseline"),
            "AIRFLOW_CONN_BC_JIRA_DB": _sqlite_conn(workdir / f"home-{n}-baseline"),
        }
        Path(base_env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
        base, base_wall, _ = _run_step(base_env, "baseline", str(baseline_sample))
    finally:
        sb.stop()
    rate = counts.get("created", 0) / wall if wall else 0.0
    base_rate = base["records"] / base["seconds"] if base["seconds"] else 0.0
    created = max(counts.get("created", 0), 1)
    return {
        "invoices": n,
        "created": counts.get("created", 0),
        "read": extracted["read"],
        "batches": len(batches),
        "seconds": round(wall, 2),
        "records_per_s": round(rate, 1),
        "jira_calls": stats["totals"]["jira"],
        "bc_calls": stats["totals"]["bc"],
        "jira_calls_per_record": round(stats["totals"]["jira"] / created, 4),
        "bc_calls_per_record": round(stats["totals"]["bc"] / max(extracted["read"], 1), 4),
        "peak_rss_mb": round(max([extract_rss, *(r[2] for r in results)]), 1),
        "max_xcom_bytes": max([extracted["xcom_bytes"], *(r[0]["xcom_bytes"] for r in results)]),
        "baseline_records_per_s": round(base_rate, 2),
        "speedup_vs_baseline": round(rate / base_rate, 1) if base_rate else None,
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


TARGETS = {
    "jira_calls_per_record": 0.05,
    "bc_calls_per_record": 0.01,
    "speedup_vs_baseline": 30,
    "peak_rss_mb": 300,
    "max_xcom_bytes": 10_240,
}


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        "invoices",
        "created",
        "seconds",
        "records_per_s",
        "jira_calls_per_record",
        "bc_calls_per_record",
        "peak_rss_mb",
        "max_xcom_bytes",
        "baseline_records_per_s",
        "speedup_vs_baseline",
    ]
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
    lines = [" | ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(str(r[c]).ljust(w) for c, w in zip(cols, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--workers", type=int, default=4, help="upsert processes at once (mapped tasks)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--baseline-sample", type=int, default=100)
    parser.add_argument("--out", default=str(RESULTS / "latest.json"))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bc_jira_bench_") as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
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
    print()
    print(_table(rows))
    print(_attach_table(rows))
    misses = []
    big = rows[-1]
    for key, limit in TARGETS.items():
        value = big[key]
        ok = value is not None and (value >= limit if key == "speedup_vs_baseline" else value <= limit)
        if not ok:
            misses.append(f"{key}={value} (target {'>=' if key == 'speedup_vs_baseline' else '<='} {limit})")
    print(
        "\ntargets at",
        big["invoices"],
        "invoices:",
        "all met" if not misses else "MISSED " + "; ".join(misses),
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "latency_ms": args.latency_ms,
                "workers": args.workers,
                "batch_size": args.batch_size,
                "results": rows,
                "targets": TARGETS,
                "missed": misses,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            indent=2,
        )
    )
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

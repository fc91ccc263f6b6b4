"""One OS process running one DAG with ``dag.test()`` at an agreed moment (concurrency tests).

    python -m tests.support.run_dag_at DAG_ID [--run-type manual|scheduled|backfill] [--interval START END]

Airflow and the DAG are imported and warmed up first; then the process prints ``READY`` and waits for one
line on stdin
with the Unix time to start at, so that two processes really begin their runs together (their start-up
times differ by seconds). Prints one ``RESULT {json}`` line with the run's state and id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime
from typing import Any


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("dag_id")
    p.add_argument("--run-type", default="manual", choices=("manual", "scheduled", "backfill"))
    p.add_argument("--interval", nargs=2, default=None)
    args = p.parse_args(argv)

    import airflow.models.dagrun as dagrun_mod
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.types import DagRunType

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags[args.dag_id]
    logical_date = None
    if args.run_type != "manual":
        original = dagrun_mod.get_or_create_dagrun
        interval = tuple(datetime.fromisoformat(x) for x in args.interval) if args.interval else None
        run_type = DagRunType.BACKFILL_JOB if args.run_type == "backfill" else DagRunType.SCHEDULED

        def typed(**kw: Any) -> Any:
            if interval is not None:
                kw["data_interval"] = interval
            dr = original(**kw)
            dr.run_type = run_type
            kw["session"].merge(dr)
            kw["session"].commit()
            return dr

        dagrun_mod.get_or_create_dagrun = typed
        logical_date = interval[1] if interval else None
    # Warm up (bundle sync, the in-process execution API: ~10 s the first time) with a run whose tasks are
    # only marked successful, so that the real run starts doing work the moment it is told to.
    dag.test(mark_success_pattern=".*")
    print("READY", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    began = time.time()
    dr = dag.test(logical_date=logical_date) if logical_date else dag.test()
    print(
        "RESULT "
        + json.dumps(
            {
                "state": str(dr.state),
                "run_id": dr.run_id,
                "began": began,
                "late_s": round(began - start_at, 3),
                "seconds": round(time.time() - began, 2),
            }
        ),
        flush=True,
    )
    return 0 if str(dr.state) == "success" else 1


if __name__ == "__main__":
    sys.exit(main())

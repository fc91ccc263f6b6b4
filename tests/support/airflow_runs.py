"""Drive real Airflow runs from tests: clear with the CLI, then run what the clear re-queued.

``airflow tasks clear`` (a subprocess, as an operator types it) resets the task instances of an existing run;
without a scheduler nothing would run them again, so :func:`run_cleared` runs the re-queued task instances of
that run the way ``dag.test()`` runs its tasks (same in-process Task SDK path: the task's own code, XComs and
Variables through the execution API), until the run is finished.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datetime import datetime

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def clear_tasks(
    dag_id: str, task_ids: str, logical_date: datetime, *, downstream: bool = True, env: dict | None = None
) -> str:
    """``airflow tasks clear DAG -t TASKS -s D -e D [-d] -y``; the UI dialog's default ticks Downstream.

    Airflow 3.3 matches ``-t`` as a substring of the task id (``SerializedDAG.partial_subset``), not a regex.
    """
    day = logical_date.isoformat()
    cmd = [AIRFLOW, "tasks", "clear", dag_id, "-t", task_ids, "-s", day, "-e", day, "-y"]
    if downstream:
        cmd.append("-d")
    out = subprocess.run(
        cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=180, check=False
    )
    assert out.returncode == 0, (
        f"{' '.join(cmd)} -> {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout + out.stderr


def run_cleared(dag: Any, run_id: str, timeout: float = 300.0) -> Any:
    """Run the cleared task instances of ``run_id`` until the run is done; returns the DagRun."""
    from airflow import settings
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.state import DagRunState, TaskInstanceState

    session = settings.Session()
    dr = session.query(DagRun).filter(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id).one()
    dr.dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))  # what the scheduler uses
    dr.state = DagRunState.RUNNING
    session.commit()
    deadline = time.monotonic() + timeout
    while dr.state == DagRunState.RUNNING:
        assert time.monotonic() < deadline, f"run {run_id} did not finish in {timeout}s"
        session.expire_all()
        schedulable, _ = dr.update_state(session=session)
        for ti in schedulable:
            if ti.state != TaskInstanceState.UP_FOR_RESCHEDULE:
                ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        for ti in [
            t for t in dr.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
        ]:
            _run_task(ti=ti, task=dag.task_dict[ti.task_id])
    session.close()
    return dr


def sync_dags() -> None:
    """Write the dags-folder bundle and its DAGs to the metadata DB once, as ``dag.test()`` does first.

    Two processes calling ``dag.test()`` on a metadata DB that has never seen the bundle both try to insert
    the bundle row (``UNIQUE constraint failed: dag_bundle.name``): a harness race of two first-ever runs,
    not of the DAG. Done once by the parent, the processes find it there.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.utils.session import create_session

    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)

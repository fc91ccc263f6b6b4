"""The processes ``make run`` starts (sandbox, ``airflow standalone``) run in their own process groups;
stopping one stops its whole group, children and grandchildren included.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time

log = logging.getLogger("bc_jira_sandbox.demo")  # the demo's one logger, as before the split


def stop_group(proc: subprocess.Popen, name: str, grace: float = 25.0) -> None:
    """SIGTERM the process group; SIGKILL whatever of the group is left after ``grace`` seconds.

    The leader (e.g. ``airflow standalone``) may exit before its children finished shutting down, so the
    whole group is waited for, not just the leader.
    """
    if proc.poll() is not None and not _group_alive(proc.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_alive(proc.pid) or proc.poll() is None:
        log.warning("%s did not stop in %.0f s: killing what is left", name, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

"""How ``make run`` talks to Airflow's REST API: retries of transient failures, waiting for readiness,
what ``/monitor/health`` says is wrong.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import requests

if TYPE_CHECKING:
    from collections.abc import Callable

HEALTH_COMPONENTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")


def health_problems(health: dict[str, Any]) -> list[str]:
    """One line per Airflow component that is not healthy in ``GET /api/v2/monitor/health``."""
    problems = []
    for component in HEALTH_COMPONENTS:
        body = health.get(component) or {}
        status = body.get("status")
        if status != "healthy":
            beat = next((v for k, v in body.items() if k.startswith("latest_") and v), None)
            since = f", last heartbeat {beat}" if beat else ""
            problems.append(f"{component} is {status or 'missing'}{since}")
    return problems


class ApiError(RuntimeError):
    """A REST call that failed for good: one line with what to do."""


TRANSIENT = frozenset({500, 502, 503, 504})


def call_with_retry(
    send: Callable[[], requests.Response],
    what: str,
    attempts: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], None] | None = None,
) -> requests.Response:
    """Retry 5xx and connection errors with exponential backoff (a warm SQLite DB is briefly locked on
    start, e.g. ``PATCH /dags/jira_webhooks_refresh`` answering 500); anything else fails in one line."""
    for attempt in range(1, attempts + 1):
        try:
            resp = send()
        except requests.ConnectionError as exc:
            if attempt == attempts:
                raise ApiError(
                    f"{what}: Airflow's API server does not answer ({type(exc).__name__}); "
                    "read .airflow/demo-logs/standalone.log, then re-run `make run`"
                ) from None
        else:
            if resp.status_code < 400:
                return resp
            if resp.status_code not in TRANSIENT or attempt == attempts:
                detail = resp.text.strip().replace("\n", " ")[:200]
                fix = (
                    "Airflow's API keeps failing: read .airflow/demo-logs/standalone.log; "
                    "if the metadata DB is damaged, `make clean` (or remove .airflow/) and re-run `make run`"
                    if resp.status_code in TRANSIENT
                    else "check the DAG id / the request; re-run `make run`"
                )
                raise ApiError(f"{what} answered {resp.status_code} ({detail}): {fix}")
        (sleep or time.sleep)(backoff * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def answers(url: str, timeout: float = 1.0) -> bool:
    try:
        return requests.get(url, timeout=timeout).status_code < 500
    except requests.RequestException:
        return False


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float,
    alive: Callable[[], None] | None = None,
    interval: float = 1.0,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if alive:
            alive()
        with contextlib.suppress(requests.RequestException, ValueError, KeyError):
            value = check()
            if value:
                return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(interval)

"""Waiting out a long Jira rate limit without holding a worker slot or spending a retry.

Jira Cloud's points-based quotas are hourly, so a 429 can ask for minutes (``Retry-After``; see
``bc_jira.http``). ``ApiClient`` sleeps waits up to ``rate_limit.max_inline_wait_seconds``; a longer one
it records as a :class:`~bc_jira.http.WaitRequest` and fails fast from then on. The task entry points wrap
their work in :func:`defer_on_rate_limit`, which turns that failure into a reschedule.

What works for a TaskFlow (``@task``) task in Airflow 3.3, checked in its source and with ``dag.test()``:

* ``raise AirflowRescheduleException(reschedule_date)``: the task runner answers ``RescheduleTask``
  (``sdk/execution_time/task_runner.py``), the execution API stores a ``TaskReschedule`` row and sets
  ``UP_FOR_RESCHEDULE`` (``api_fastapi/execution_api/routes/task_instances.py``);
  ``TaskInstance.are_dependencies_met`` adds ``ReadyToRescheduleDep`` for *any* task in that state, so the
  scheduler starts it again only after the date (``models/taskinstance.py``), and ``DagRun`` does not raise
  the try number of an ``UP_FOR_RESCHEDULE`` task (``models/dagrun.py``): no retry is spent, no worker slot
  is held meanwhile. ``dag.test()`` polls it the same way (``sdk/definitions/dag.py``).
* ``raise TaskDeferred(trigger=DateTimeTrigger(...), method_name="execute")`` does **not** work for
  ``@task``: on resume ``BaseOperator.resume_execution`` calls ``execute(context, event=...)`` (the triggerer
  adds ``next_kwargs["event"]``) and ``DecoratedOperator.execute`` takes no ``event``: ``TypeError``, and a
  retry is spent.

The rescheduled task runs its callable again from the top. That is safe here: the link table and content
hashes make records already done no-ops, and pending create intents are looked up before creating again.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira.http import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from bc_jira.http_ratelimit import WaitRequest

log = logging.getLogger(__name__)

# Seconds added to the wait Jira asked for, so the first call after it is not early.
MARGIN_SECONDS = 1.0


class RateLimitWaitTooLong(RuntimeError):
    """Jira asked to wait longer than ``rate_limit.max_defer_seconds`` allows; the task fails normally."""


@dataclass(frozen=True)
class WaitPlan:
    defer: bool
    until: datetime
    message: str


def plan_wait(
    wait: WaitRequest, *, now: datetime, first_wait_at: datetime | None, max_defer_seconds: int, what: str
) -> WaitPlan:
    """Defer until Jira's wait ends (plus a margin) unless the total wait would exceed the maximum."""
    until = max(wait.until, now) + timedelta(seconds=MARGIN_SECONDS)
    started = min(first_wait_at, now) if first_wait_at is not None else now
    total = (until - started).total_seconds()
    if total > max_defer_seconds:
        already = (now - started).total_seconds()
        return WaitPlan(
            False,
            until,
            f"{what}: {wait.describe()}; waiting for it would make {total:.0f}s in all "
            f"({already:.0f}s already), more than rate_limit.max_defer_seconds={max_defer_seconds} in "
            "bc_jira_config. Failing (Airflow retries per the DAG's retry policy); raise the setting, or "
            "lower the load on Jira (smaller batch_size, fewer runs), if this repeats.",
        )
    return WaitPlan(
        True,
        until,
        f"{what}: {wait.describe()}; deferring the task until {until.isoformat(timespec='seconds')} "
        "(rescheduled: no retry spent, no worker slot held; done records are skipped on resume)",
    )


def retry_policy(cfg: Any) -> RetryPolicy:
    """The hook's retry policy with the configured in-process wait cap (``cfg`` is a ``Config``)."""
    return RetryPolicy(max_retry_after=float(cfg.rate_limit.max_inline_wait_seconds))


def first_wait_at(context: Mapping[str, Any]) -> datetime | None:
    """When this task instance first started before being rescheduled (None on its first run)."""
    ti = context.get("ti")
    getter = getattr(ti, "get_first_reschedule_date", None)
    if not callable(getter):
        return None
    try:
        return getter(context)
    except Exception:
        log.debug("first reschedule date unavailable", exc_info=True)
        return None


@contextmanager
def defer_on_rate_limit(
    waits: Callable[[], WaitRequest | None],
    *,
    max_defer_seconds: int,
    what: str,
    context: Mapping[str, Any] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Iterator[None]:
    """Run the block; if it failed while Jira asked to wait (``waits()``), reschedule the task instead."""
    try:
        yield
    except Exception as exc:
        wait = waits()
        if wait is None:
            raise
        now = clock() if clock is not None else datetime.now(wait.until.tzinfo)
        plan = plan_wait(
            wait,
            now=now,
            first_wait_at=first_wait_at(context) if context is not None else None,
            max_defer_seconds=max_defer_seconds,
            what=what,
        )
        if not plan.defer:
            log.error("%s", plan.message)
            raise RateLimitWaitTooLong(plan.message) from exc
        log.warning("%s", plan.message)
        from airflow.sdk.exceptions import AirflowRescheduleException

        raise AirflowRescheduleException(reschedule_date=plan.until) from exc


def hook_wait(hook: Any) -> Callable[[], WaitRequest | None]:
    """``waits`` for a Jira/BC hook: the wait its client recorded, without building a client it never used."""

    def current() -> WaitRequest | None:
        client = vars(hook).get("client")  # cached_property: present only once the hook made a call
        return getattr(client, "wait_request", None)

    return current


@contextmanager
def waiting_out_rate_limits(*hooks: Any, cfg: Any, what: str) -> Iterator[None]:
    """Inside an Airflow task: :func:`defer_on_rate_limit` over the waits these hooks' clients recorded."""
    from airflow.sdk import get_current_context

    waits = [hook_wait(h) for h in hooks]
    with defer_on_rate_limit(
        lambda: next((w for w in (get() for get in waits) if w is not None), None),
        max_defer_seconds=cfg.rate_limit.max_defer_seconds,
        what=what,
        context=get_current_context(),
    ):
        yield

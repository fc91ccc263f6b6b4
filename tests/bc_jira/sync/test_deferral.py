"""The decision to reschedule a task that Jira asked to wait, and the bound on it (no Airflow run needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bc_jira.http_ratelimit import RateLimitInfo, WaitRequest
from bc_jira.sync.deferral import (
    RateLimitWaitTooLong,
    defer_on_rate_limit,
    hook_wait,
    plan_wait,
    retry_policy,
)

NOW = datetime(2026, 3, 26, 15, 0, tzinfo=UTC)


def wait(seconds: float) -> WaitRequest:
    info = RateLimitInfo(reason="jira-quota-tenant-based")
    return WaitRequest(
        "jira", "POST", "/rest/api/3/issue/bulk", 429, seconds, NOW + timedelta(seconds=seconds), info
    )


def test_plan_defers_until_the_wait_ends_plus_a_margin() -> None:
    plan = plan_wait(wait(300), now=NOW, first_wait_at=None, max_defer_seconds=3900, what="b1")
    assert plan.defer
    assert plan.until == NOW + timedelta(seconds=301)
    assert "deferring the task until 2026-03-26T15:05:01+00:00" in plan.message
    assert "asked to wait 300s" in plan.message
    assert "jira-quota-tenant-based" in plan.message


def test_plan_fails_beyond_the_maximum_counting_earlier_waits() -> None:
    assert not plan_wait(wait(4000), now=NOW, first_wait_at=None, max_defer_seconds=3900, what="b").defer
    # 3000 s already waited in earlier reschedules + 1000 s more > 3900 s
    earlier = NOW - timedelta(seconds=3000)
    plan = plan_wait(wait(1000), now=NOW, first_wait_at=earlier, max_defer_seconds=3900, what="b")
    assert not plan.defer
    assert "(3000s already)" in plan.message
    assert "max_defer_seconds=3900" in plan.message
    assert plan_wait(wait(800), now=NOW, first_wait_at=earlier, max_defer_seconds=3900, what="b").defer
    assert not plan_wait(wait(5), now=NOW, first_wait_at=None, max_defer_seconds=0, what="b").defer


def test_a_wait_already_over_reschedules_at_once() -> None:
    late = NOW + timedelta(seconds=600)
    plan = plan_wait(wait(300), now=late, first_wait_at=None, max_defer_seconds=3900, what="b")
    assert plan.defer
    assert plan.until == late + timedelta(seconds=1)


def test_guard_reschedules_only_when_a_wait_was_recorded() -> None:
    from airflow.sdk.exceptions import AirflowRescheduleException

    with (
        pytest.raises(AirflowRescheduleException) as ei,
        defer_on_rate_limit(lambda: wait(60), max_defer_seconds=3900, what="b", clock=lambda: NOW),
    ):
        raise RuntimeError("3 of 7 record(s) failed")
    assert ei.value.reschedule_date == NOW + timedelta(seconds=61)
    with (
        pytest.raises(RuntimeError, match="other"),
        defer_on_rate_limit(lambda: None, max_defer_seconds=3900, what="b"),
    ):  # no wait recorded: the failure stays a failure
        raise RuntimeError("other")
    with (
        pytest.raises(RateLimitWaitTooLong, match="max_defer_seconds=30"),
        defer_on_rate_limit(lambda: wait(60), max_defer_seconds=30, what="b", clock=lambda: NOW),
    ):
        raise RuntimeError("x")
    with defer_on_rate_limit(lambda: wait(60), max_defer_seconds=30, what="b"):
        pass  # success is success, even if a wait was recorded and then slept out elsewhere


def test_hook_wait_does_not_build_a_client() -> None:
    class Hook:
        @property
        def client(self):  # building it would resolve a connection and call Atlassian
            raise AssertionError("client built")

    assert hook_wait(Hook())() is None

    class Used:
        def __init__(self) -> None:
            self.client = type("C", (), {"wait_request": wait(9)})()

    assert hook_wait(Used())().seconds == 9


def test_retry_policy_takes_the_configured_cap() -> None:
    from bc_jira.config import parse_config

    cfg = parse_config({"project_key": "FIN", "rate_limit": {"max_inline_wait_seconds": 7}})
    assert retry_policy(cfg).max_retry_after == 7.0

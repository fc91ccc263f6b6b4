"""Reading the servers' rate-limit headers and the pacing rule (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from requests.structures import CaseInsensitiveDict

from bc_jira.http import RetryPolicy
from bc_jira.http_ratelimit import (
    RateLimitInfo,
    pacing_delay,
    parse_rate_limit,
    parse_reset,
    parse_retry_after,
)


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_parse_reset_forms() -> None:
    now = datetime(2026, 3, 26, 15, 58, 30, tzinfo=UTC).timestamp()
    assert parse_reset("2026-03-26T16:00Z", now) == pytest.approx(90.0)  # Atlassian's yyyy-MM-ddTHH:mmZ
    assert parse_reset("2026-03-26T16:00:10+00:00", now) == pytest.approx(100.0)
    assert parse_reset("2026-03-26T15:00Z", now) == 0.0  # past: no wait
    assert parse_reset(str(now + 40), now) == pytest.approx(40.0)  # epoch seconds
    assert parse_reset("40", now) is None  # a small bare number is not a documented form
    assert parse_reset("soon", now) is None
    assert parse_reset(None, now) is None


def test_pacing_delay_rule() -> None:
    p = RetryPolicy(max_pace_delay=5.0)
    assert pacing_delay(RateLimitInfo(limit=100, remaining=50, reset_in=60), p) == 0.0
    assert pacing_delay(RateLimitInfo(limit=100, remaining=20, reset_in=60), p) == 0.0  # 20% is not "< 20%"
    assert pacing_delay(RateLimitInfo(limit=100, remaining=19, reset_in=38), p) == pytest.approx(2.0)
    assert pacing_delay(RateLimitInfo(limit=100, remaining=2, reset_in=60), p) == 5.0  # capped
    assert pacing_delay(RateLimitInfo(limit=100, remaining=0, reset_in=3), p) == pytest.approx(3.0)
    assert pacing_delay(RateLimitInfo(near_limit=True), p) == 1.0  # NearLimit alone: one second apart
    assert pacing_delay(RateLimitInfo(), p) == 0.0


def test_parse_rate_limit_reads_documented_and_beta_names() -> None:

    now = datetime(2026, 3, 26, 15, 58, tzinfo=UTC).timestamp()
    documented = CaseInsensitiveDict(
        {
            "x-ratelimit-limit": "350",
            "x-ratelimit-remaining": "12",
            "x-ratelimit-reset": "2026-03-26T16:00Z",
            "ratelimit-reason": "jira-burst-based",
        }
    )
    info = parse_rate_limit(documented, now)
    assert (info.limit, info.remaining, info.reason) == (350, 12, "jira-burst-based")
    assert info.reset_in == pytest.approx(120.0)
    assert not info.near_limit
    beta = CaseInsensitiveDict(
        {
            "X-Beta-Ratelimit-Reason": "jira-quota-tenant-based",
            "X-Beta-Ratelimit-Nearlimit": "true",
            "X-Beta-Ratelimit-Reset": "2026-03-26T16:00Z",
        }
    )
    info = parse_rate_limit(beta, now)
    assert info.near_limit
    assert info.reason == "jira-quota-tenant-based"
    assert info.reset_in == pytest.approx(120.0)
    assert not parse_rate_limit(CaseInsensitiveDict({"X-RateLimit-Remaining": "n/a"}), now).present

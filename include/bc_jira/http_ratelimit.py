"""What the servers say about their rate budgets: Retry-After, Jira's X-RateLimit-* headers, and pacing.

Pure functions over header values (no I/O): ``ApiClient`` asks them how long to wait and acts on the answer.
"""

from __future__ import annotations

import email.utils
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.http import RetryPolicy


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date (RFC 9110 10.2.3); None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def parse_reset(value: str | None, now: float | None = None) -> float | None:
    """X-RateLimit-Reset as seconds from now (>= 0); None when absent or unreadable.

    Jira sends ISO 8601 ``yyyy-MM-ddTHH:mmZ`` (rate-limiting page, quoted in JRACLOUD-69262); seconds and
    offsets are accepted too, and a bare number is read as epoch seconds (other APIs' convention).
    """
    if not value:
        return None
    value = value.strip()
    current = now if now is not None else time.time()
    try:
        number = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, number - current) if number > 1e9 else None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - current)


@dataclass(frozen=True)
class RateLimitInfo:
    """What an answer says about the rate budget (Jira: X-RateLimit-*, RateLimit-Reason)."""

    limit: int | None = None
    remaining: int | None = None
    reset_in: float | None = None  # seconds until the budget resets
    near_limit: bool = False
    reason: str | None = None

    @property
    def present(self) -> bool:
        return self.remaining is not None or self.near_limit or self.reason is not None

    def describe(self) -> str:
        parts = []
        if self.reason:
            parts.append(f"RateLimit-Reason {self.reason}")
        if self.remaining is not None:
            parts.append(f"remaining {self.remaining}/{self.limit if self.limit is not None else '?'}")
        if self.near_limit:
            parts.append("near limit")
        if self.reset_in is not None:
            parts.append(f"resets in {self.reset_in:.0f}s")
        return ", ".join(parts) or "no rate-limit headers"


def _int_header(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def parse_rate_limit(headers: Mapping[str, str], now: float | None = None) -> RateLimitInfo:
    """Read Jira's rate-limit headers (names are case-insensitive in requests' headers).

    The ``X-Beta-RateLimit-*`` names of the 2026 points quotas (seen in developers' logs, not documented)
    stand in when the documented ones are absent.
    """

    def first(*names: str) -> str | None:
        return next((headers[n] for n in names if headers.get(n)), None)

    return RateLimitInfo(
        limit=_int_header(headers.get("X-RateLimit-Limit")),
        remaining=_int_header(headers.get("X-RateLimit-Remaining")),
        reset_in=parse_reset(first("X-RateLimit-Reset", "X-Beta-RateLimit-Reset"), now),
        near_limit=str(first("X-RateLimit-NearLimit", "X-Beta-RateLimit-NearLimit") or "").strip().lower()
        == "true",
        reason=(first("RateLimit-Reason", "X-Beta-RateLimit-Reason") or "").strip() or None,
    )


NEAR_LIMIT_FRACTION = (
    0.2  # Atlassian: X-RateLimit-NearLimit "indicates that less than 20% of any budget remains"
)


def pacing_delay(info: RateLimitInfo, policy: RetryPolicy) -> float:
    """Seconds to pause before the next call so what is left of the budget lasts until it resets.

    Zero while more than 20% is left. Near the limit: the time to the reset shared over the remaining
    calls (one second per call when the reset is unknown), never more than ``policy.max_pace_delay``: a
    soft slowdown; a 429 that still comes is handled by Retry-After.
    """
    low = info.near_limit or (
        info.remaining is not None
        and info.limit is not None
        and info.limit > 0
        and info.remaining < info.limit * NEAR_LIMIT_FRACTION
    )
    if not low:
        return 0.0
    if info.reset_in is None:
        return min(policy.max_pace_delay, 1.0)
    return min(policy.max_pace_delay, info.reset_in / max(1, info.remaining or 0))


@dataclass(frozen=True)
class WaitRequest:
    """The server asked this client to wait longer than it may wait in process."""

    service: str
    method: str
    path: str
    status: int
    seconds: float
    until: datetime
    info: RateLimitInfo = field(default_factory=RateLimitInfo)

    def describe(self) -> str:
        return (
            f"{self.service} answered {self.status} to {self.method} {self.path} and asked to wait "
            f"{self.seconds:.0f}s (until {self.until.isoformat(timespec='seconds')}; {self.info.describe()})"
        )


class ProcessLimiter:
    """Per-process semaphores keyed by concurrency_key (e.g. one BC service principal)."""

    _lock = threading.Lock()
    _sems: dict[str, tuple[int, threading.BoundedSemaphore]] = {}

    @classmethod
    def get(cls, key: str, limit: int) -> threading.BoundedSemaphore:
        with cls._lock:
            entry = cls._sems.get(key)
            if entry is None or entry[0] != limit:
                entry = (limit, threading.BoundedSemaphore(limit))
                cls._sems[key] = entry
            return entry[1]

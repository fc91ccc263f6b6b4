"""What every request to the sandbox goes through: latency, injected faults and Jira's rate limits.

Faults and rate limits are configured through ``/_sandbox/faults`` and ``/_sandbox/rate_limit`` and apply the
same way on every emulated API (see :class:`SandboxMiddleware`).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.pages import is_page

if TYPE_CHECKING:
    import random

    from bc_jira_sandbox.core import Sandbox


FAULT_KINDS = ("429", "500", "503", "timeout", "drop_after_commit")


@dataclass
class FaultRule:
    kind: str
    rate: float = 1.0
    path: str | None = None  # regular expression searched in the request path
    method: str | None = None
    count: int | None = None  # fire at most this many times (deterministic tests)
    # Seconds in the Retry-After header of a 429/503; None sends none (Jira does not always: JRACLOUD-82801).
    retry_after: float | None = 1.0
    reason: str = "jira-quota-tenant-based"  # RateLimit-Reason of a Jira 429 (see rate_limit_headers)
    timeout_s: float = 30.0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.path and not re.search(self.path, path):
            return False
        return self.count is None or self.fired < self.count


class Faults:
    """Fault rules from ``POST /_sandbox/faults``.

    Accepts the short form ``{"429": 0.1, "503": 0.05, "path": "issue/bulk"}`` and the long form
    ``{"rules": [{"kind": "drop_after_commit", "path": "/issue/bulk", "count": 1}]}``; ``{}`` clears.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rules: list[FaultRule] = []
        self._rng = rng
        self._lock = threading.Lock()

    def configure(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        rules: list[FaultRule] = []
        common = {
            k: body[k] for k in ("path", "method", "count", "retry_after", "timeout_s", "reason") if k in body
        }
        for kind in FAULT_KINDS:
            if kind in body:
                rules.append(FaultRule(kind=kind, rate=float(body[kind]), **common))
        for raw in body.get("rules", []):
            if raw.get("kind") not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {raw.get('kind')!r}; one of {', '.join(FAULT_KINDS)}")
            rules.append(FaultRule(**{k: v for k, v in raw.items() if k != "fired"}))
        with self._lock:
            self.rules = rules
        return [asdict(r) for r in rules]

    def pick(self, method: str, path: str) -> FaultRule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path) and self._rng.random() < rule.rate:
                    rule.fired += 1
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self.rules = []


# -- Jira Cloud rate limiting ------------------------------------------------------------------------
# Sources: https://developer.atlassian.com/cloud/jira/platform/rate-limiting (as quoted in
# https://jira.atlassian.com/browse/JRACLOUD-69262): "429 responses may be accompanied by Retry-After and
# X-RateLimit-Reset headers"; Retry-After is "how many seconds the app must wait before reissuing the
# request" and a request sent earlier "will fail and return the same or longer Retry-After period";
# X-RateLimit-Reset is "the timestamp (in ISO 8601 format) when the rate limit will reset, calculated as the
# request timestamp plus the Retry-After period ... in the format: yyyy-MM-ddTHH:mmZ"; X-RateLimit-Limit is
# "the maximum number of requests ... within a specific time window", X-RateLimit-Remaining "the number of
# requests remaining in the current rate limit window"; RateLimit-Reason "indicates the reason the request
# was declined" (jira-quota-*, jira-burst-based, jira-per-issue-on-write: build-an-app-that-respects-rate-
# limits); X-RateLimit-NearLimit: true "indicates that less than 20% of any budget remains", added to
# successful responses. Points-based quotas are hourly, so a real Retry-After can be many minutes.
JIRA_PATHS = re.compile(r"^/(ex/jira|site)/")
NEAR_LIMIT_FRACTION = 0.2


def reset_header(now: datetime, wait_s: float) -> str:
    """X-RateLimit-Reset for a wait of ``wait_s`` from ``now``: minute precision, rounded up (never early)."""
    at = now + timedelta(seconds=max(0.0, wait_s))
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return at.strftime("%Y-%m-%dT%H:%MZ")


def rate_limit_headers(
    now: datetime,
    *,
    limit: int | None,
    remaining: int | None,
    wait_s: float | None,
    reason: str | None = None,
    retry_after: bool = True,
) -> list[tuple[bytes, bytes]]:
    """The header set Jira sends; ``wait_s`` is None on an answer that is not a 429."""
    out: list[tuple[str, str]] = []
    if limit is not None and remaining is not None:
        out += [("x-ratelimit-limit", str(limit)), ("x-ratelimit-remaining", str(max(0, remaining)))]
        if wait_s is None and remaining < limit * NEAR_LIMIT_FRACTION:
            out.append(("x-ratelimit-nearlimit", "true"))
    if wait_s is not None:
        if retry_after:
            out.append(("retry-after", str(max(0, math.ceil(wait_s)))))
        out.append(("x-ratelimit-reset", reset_header(now, wait_s)))
        if reason:
            out.append(("ratelimit-reason", reason))
    return [(k.encode(), v.encode()) for k, v in out]


@dataclass
class RateBudget:
    """A fixed-window request budget for the Jira API (``POST /_sandbox/rate_limit``).

    Every Jira call takes one request from the window; answers carry X-RateLimit-Limit/-Remaining (and
    NearLimit + Reset once less than 20% is left); an exhausted window answers 429 with Retry-After (the
    seconds to the window's end), X-RateLimit-Reset and RateLimit-Reason, and the request is not processed.
    """

    limit: int
    window_s: float
    reason: str = "jira-quota-tenant-based"
    retry_after: bool = True  # False: 429s without Retry-After (only X-RateLimit-Reset)
    window_start: float = 0.0
    used: int = 0

    def take(self, mono: float) -> tuple[bool, int, float]:
        """(allowed, remaining after this request, seconds until the window resets)."""
        if mono - self.window_start >= self.window_s:
            self.window_start, self.used = mono, 0
        left = self.window_s - (mono - self.window_start)
        if self.used >= self.limit:
            return False, 0, left
        self.used += 1
        return True, self.limit - self.used, left


class RateLimits:
    """The configured budget (none by default: the sandbox then sends no rate-limit headers)."""

    def __init__(self) -> None:
        self.budget: RateBudget | None = None
        self._lock = threading.Lock()

    def configure(self, body: dict[str, Any]) -> dict[str, Any] | None:
        if not body:
            self.clear()
            return None
        limit, window = body.get("limit"), body.get("window_s")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError("limit must be a non-negative integer (requests per window)")
        if not isinstance(window, (int, float)) or isinstance(window, bool) or window <= 0:
            raise ValueError("window_s must be a positive number of seconds")
        budget = RateBudget(
            limit=limit,
            window_s=float(window),
            reason=str(body.get("reason") or "jira-quota-tenant-based"),
            retry_after=bool(body.get("retry_after", True)),
            window_start=time.monotonic(),
        )
        with self._lock:
            self.budget = budget
        return {k: v for k, v in asdict(budget).items() if k not in ("window_start", "used")}

    def take(self, path: str) -> tuple[bool, RateBudget, int, float] | None:
        with self._lock:
            budget = self.budget
            if budget is None or not JIRA_PATHS.search(path):
                return None
            allowed, remaining, left = budget.take(time.monotonic())
            return allowed, budget, remaining, left

    def clear(self) -> None:
        with self._lock:
            self.budget = None


def _error_body(path: str, status: int, kind: str) -> bytes:
    text = {
        "429": "Rate limit exceeded.",
        "500": "Internal server error.",
        "503": "Service unavailable.",
    }.get(kind, kind)
    if path.startswith("/v2.0/"):
        codes = {"429": "Application_TooManyRequests", "503": "ServiceUnavailable"}
        code = codes.get(kind, "InternalServerError")
        return json.dumps({"error": {"code": code, "message": text}}).encode()
    if path.startswith(("/ex/jira/", "/site/")):
        return json.dumps({"errorMessages": [text], "errors": {}}).encode()
    return json.dumps({"error": "temporarily_unavailable", "error_description": text}).encode()


class SandboxMiddleware:
    """Pure ASGI so ``drop_after_commit`` can really break the connection after the handler committed."""

    def __init__(self, app: Any, sb: Sandbox) -> None:
        self.app = app
        self.sb = sb

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # control routes and a person's pages: no latency, faults, rate limits or API call stats
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox") or is_page(scope["path"]):
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if self.sb.options.latency_ms:
            await asyncio.sleep(self.sb.options.latency_ms / 1000)
        rule = self.sb.faults.pick(method, path)
        try:
            taken = self.sb.rate_limits.take(path) if rule is None else None
            if taken is not None:
                await self._budgeted(scope, receive, send, *taken)
            elif rule is None:
                await self.app(scope, receive, send)
            elif rule.kind in ("429", "500", "503"):
                self.sb.stats.fault(rule.kind)
                await self._send_error(send, path, rule)
            elif rule.kind == "timeout":
                self.sb.stats.fault(rule.kind)
                await asyncio.sleep(rule.timeout_s)  # the client gives up first; then nothing is done
                await self._drop(send)
            else:  # drop_after_commit: the write happens, the answer never arrives
                self.sb.stats.fault(rule.kind)
                await self.app(scope, receive, _swallow)
                await self._drop(send)
        finally:
            self.sb.stats.record_call(f"{method} {self._template(scope)}")
            if method != "GET":
                self.sb.mark_dirty()

    def _template(self, scope: dict[str, Any]) -> str:
        route = scope.get("route")
        if route is None:  # the handler did not run (an injected fault): find the route it would have hit
            from starlette.routing import Match

            for candidate in getattr(self.app, "routes", []):
                if candidate.matches(scope)[0] == Match.FULL:
                    route = candidate
                    break
        return getattr(route, "path", None) or "(unmatched)"

    async def _budgeted(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        allowed: bool,
        budget: RateBudget,
        rem: int,
        left: float,
    ) -> None:
        """Answer within the rate budget (with its headers) or refuse it with Jira's 429."""
        now = self.sb.now()
        if not allowed:
            self.sb.stats.fault("rate_limit")
            headers = [(b"content-type", b"application/json")]
            headers += rate_limit_headers(
                now,
                limit=budget.limit,
                remaining=0,
                wait_s=left,
                reason=budget.reason,
                retry_after=budget.retry_after,
            )
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": _error_body(scope["path"], 429, "429")})
            return
        extra = rate_limit_headers(now, limit=budget.limit, remaining=rem, wait_s=None)
        if rem < budget.limit * NEAR_LIMIT_FRACTION:
            extra.append((b"x-ratelimit-reset", reset_header(now, left).encode()))

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _send_error(self, send: Any, path: str, rule: FaultRule) -> None:
        status = int(rule.kind)
        headers = [(b"content-type", b"application/json")]
        if status == 429 and JIRA_PATHS.search(path) and rule.retry_after is not None:
            # Jira's 429: Retry-After with X-RateLimit-Reset and RateLimit-Reason (see rate_limit_headers)
            headers += rate_limit_headers(
                self.sb.now(), limit=None, remaining=None, wait_s=rule.retry_after, reason=rule.reason
            )
        elif status in (429, 503) and rule.retry_after is not None:
            headers.append((b"retry-after", str(max(0, round(rule.retry_after))).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": _error_body(path, status, rule.kind)})

    @staticmethod
    async def _drop(send: Any) -> None:
        # Promise a body and close the connection before it arrives: the client sees a broken response.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
            }
        )
        await send({"type": "http.response.body", "body": b"{", "more_body": True})


async def _swallow(message: dict[str, Any]) -> None:
    return None

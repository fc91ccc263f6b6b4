"""The one HTTP policy shared by both hooks: timeouts, retries, Retry-After, typed errors, redaction.

Why one module: BC and Jira both throttle (429/503 with Retry-After), both answer 401 when a cached token
went stale, and both must never see a secret leak into an exception or a log line. Keeping that in one
place means the hooks only describe API calls. What the rate-limit headers mean is ``bc_jira.http_ratelimit``,
how each vendor spells an error is ``bc_jira.http_errors``, secret scrubbing is ``bc_jira.redact``.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import requests

from bc_jira.http_errors import MAX_MESSAGE, error_details
from bc_jira.http_ratelimit import (
    ProcessLimiter,
    RateLimitInfo,
    WaitRequest,
    pacing_delay,
    parse_rate_limit,
    parse_retry_after,
)
from bc_jira.redact import redact_text, redact_url

if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Iterator, Mapping

log = logging.getLogger(__name__)


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


class ApiError(Exception):
    """An API call failed; carries the API's error code and message, never a secret."""

    def __init__(
        self,
        service: str,
        method: str,
        url: str,
        status: int | None = None,
        code: str | None = None,
        message: str = "",
        retry_after: float | None = None,
        response: requests.Response | None = None,
    ) -> None:
        self.service = service
        self.method = method.upper()
        self.url = redact_url(url)
        self.status = status
        self.code = code
        self.message = redact_text(message)[:MAX_MESSAGE]
        self.retry_after = retry_after
        self.response = response
        super().__init__(str(self))

    @property
    def path(self) -> str:
        return urlsplit(self.url).path or "/"

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path} -> {self.status} {self.code}: {self.message}"

    def __reduce__(self):  # picklable without the response (Airflow may pickle task exceptions)
        return (
            _rebuild_error,
            (
                type(self),
                self.service,
                self.method,
                self.url,
                self.status,
                self.code,
                self.message,
                self.retry_after,
            ),
        )


def _rebuild_error(cls, service, method, url, status, code, message, retry_after):
    return cls(service, method, url, status, code, message, retry_after)


class ClientError(ApiError):
    """4xx not covered by a narrower class."""


class AuthError(ApiError):
    """401 (after one forced token refresh) or 403."""


class NotFoundError(ClientError):
    """404."""


class PreconditionFailed(ClientError):
    """412 (stale If-Match) or 409 (BC Request_EntityChanged)."""


class RateLimited(ApiError):
    """429 still after retries (or the server asked to wait longer than the policy allows)."""


class ServerError(ApiError):
    """5xx still after retries."""


class TransportError(ApiError):
    """Timeout, connection error or dropped response after retries; status is None."""


class TokenProvider(Protocol):
    def auth_header(self, force_refresh: bool = False) -> dict[str, str]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry.

    :param max_attempts: attempts per logical request (the first included).
    :param backoff_base: seconds of the first backoff bound, doubled per attempt (full jitter).
    :param backoff_cap: the largest backoff bound in seconds.
    :param max_retry_after: the longest Retry-After slept in process; a longer one records a
        :class:`WaitRequest` and fails fast (the task defers).
    :param max_pace_delay: the longest pause between two calls when the budget is nearly spent.
    :param retry_statuses: statuses retried (429/503 even for a POST: the server did not process it).
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_retry_after: float = 120.0
    max_pace_delay: float = 5.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Exponential backoff with full jitter: uniform(0, min(cap, base * 2**attempt))."""
        return rand() * min(self.backoff_cap, self.backoff_base * (2**attempt))


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly never reached the server (safe to retry even a POST)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        name = type(reason).__name__ if reason is not None else ""
        return name in {"NewConnectionError", "ConnectTimeoutError", "NameResolutionError"}
    return False


class ApiClient:
    """A requests session wrapped in the retry, auth-refresh, concurrency and error policy."""

    def __init__(
        self,
        service: str,
        base_url: str,
        auth: TokenProvider | None = None,
        *,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy = RetryPolicy(),
        max_concurrency: int | None = None,
        concurrency_key: str | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        shared_limit: Callable[[], AbstractContextManager[object]] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        """:param service: the name in errors and logs (``bc``, ``jira``, ``atlassian``).
        :param base_url: relative paths are resolved under it; auth is sent only to its origin.
        :param auth: adds the ``Authorization`` header and refreshes it once after a 401.
        :param timeout: (connect, read) seconds per attempt.
        :param retry: the retry policy.
        :param max_concurrency: calls in flight at once per ``concurrency_key`` in this process.
        :param concurrency_key: what shares that cap (default: service and base URL).
        :param session: the ``requests`` session to send through.
        :param sleep: how to wait (tests record instead).
        :param shared_limit: a context-manager factory limiting calls across processes.
        :param rand: the jitter source.
        """
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.auth = auth
        self.timeout = timeout
        self.retry = retry
        self.session = session or requests.Session()
        self.sleep = sleep
        self.rand = rand
        self._sem: threading.BoundedSemaphore | None = None
        if max_concurrency:
            key = concurrency_key or f"{service}:{self.base_url}"
            self._sem = ProcessLimiter.get(key, max_concurrency)
        self._shared_limit = shared_limit
        origin = urlsplit(self.base_url)
        self._origin = (origin.scheme, origin.netloc)
        # Set when the server asked to wait longer than the policy sleeps; no request is sent until then.
        self.wait_request: WaitRequest | None = None
        self._pace_until = 0.0  # monotonic time before which the next request waits (near the limit)
        self.clock: Callable[[], float] = time.time

    # -- helpers -------------------------------------------------------------------------------------
    def url_for(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        if not path_or_url:
            return self.base_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    @staticmethod
    def _with_params(url: str, params: Mapping[str, Any] | None) -> str:
        """Encode params with %20 for spaces (OData $filter) instead of requests' '+'."""
        if not params:
            return url
        items = [(k, v) for k, v in params.items() if v is not None]
        if not items:
            return url
        query = urlencode([(k, str(v)) for k, v in items], quote_via=quote, safe="$'(),:/")
        return f"{url}{'&' if '?' in url else '?'}{query}"

    def _same_origin(self, url: str) -> bool:
        parts = urlsplit(url)
        return (parts.scheme, parts.netloc) == self._origin

    @contextmanager
    def _slot(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self._sem is not None:
                stack.enter_context(self._sem)  # cheap first: threads of this process queue here
            if self._shared_limit is not None:
                stack.enter_context(self._shared_limit())
            yield

    def _error(
        self,
        cls: type[ApiError],
        method: str,
        url: str,
        resp: requests.Response | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        message: str = "",
        retry_after: float | None = None,
    ) -> ApiError:
        if resp is not None:
            code, message = error_details(resp)
            status = resp.status_code
        return cls(self.service, method, url, status, code, message, retry_after, resp)

    def _classify(
        self, method: str, url: str, resp: requests.Response, retry_after: float | None
    ) -> ApiError:
        s = resp.status_code
        cls: type[ApiError]
        if s in (401, 403):
            cls = AuthError
        elif s == 404:
            cls = NotFoundError
        elif s in (409, 412):
            cls = PreconditionFailed
        elif s == 429:
            cls = RateLimited
        elif s >= 500:
            cls = ServerError
        else:
            cls = ClientError
        return self._error(cls, method, url, resp, retry_after=retry_after)

    # -- the policy ----------------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        retry_unsafe: bool = False,
    ) -> requests.Response:
        """Send one logical request; retries per policy; returns a 2xx/3xx response or raises ApiError.

        :param method: the HTTP method.
        :param path_or_url: a path under ``base_url``, or an absolute URL (e.g. an ``@odata.nextLink``).
        :param params: query parameters (``None`` values left out; spaces sent as ``%20``).
        :param json: a JSON body.
        :param headers: extra headers (``Accept: application/json`` and auth are added).
        :param data: a form or raw body.
        :param retry_unsafe: retry a non-idempotent method even when the server may have applied it (only
            for calls that are safe to repeat, e.g. Jira's search POST).
        """
        method = method.upper()
        url = self._with_params(self.url_for(path_or_url), params)
        safe = method in _IDEMPOTENT or retry_unsafe
        send_auth = self.auth is not None and self._same_origin(url)
        refreshed = False
        attempt = 0
        self._hold_or_pace(method, url)
        while True:
            attempt += 1
            try:
                resp = self._send(method, url, headers, json, data, send_auth)
            except requests.RequestException as exc:
                self._after_transport_error(exc, method, url, safe, attempt)
                continue
            if resp.status_code == 401 and send_auth and not refreshed:
                refreshed = True
                log.info("%s %s %s -> 401, refreshing token once", self.service, method, redact_url(url))
                self._auth_header(force_refresh=True)
                attempt -= 1  # the refresh retry does not consume a retry attempt
                continue
            if resp.status_code < 400:
                self._note_budget(resp)
                return resp
            self._after_error_status(resp, method, url, safe, attempt)

    def _auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        return self.auth.auth_header(force_refresh=force_refresh) if self.auth is not None else {}

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        data: Any,
        send_auth: bool,
    ) -> requests.Response:
        """One attempt, inside this process's and (when configured) every process's concurrency slot."""
        hdrs = {"Accept": "application/json", **(headers or {})}
        if send_auth:
            hdrs.update(self._auth_header())
        with self._slot():
            return self.session.request(
                method,
                url,
                json=json,
                data=data,
                headers=hdrs,
                timeout=self.timeout,
                allow_redirects=False,
            )

    def _after_transport_error(
        self, exc: requests.RequestException, method: str, url: str, safe: bool, attempt: int
    ) -> None:
        """Sleep before the next attempt, or raise TransportError (never repeat what may have been sent)."""
        policy = self.retry
        kind = type(exc).__name__
        retryable = safe or _not_sent(exc)
        if retryable and attempt < policy.max_attempts:
            wait = policy.backoff(attempt - 1, self.rand)
            log.warning(
                "%s %s %s: %s, retry %s/%s in %.2fs",
                self.service,
                method,
                redact_url(url),
                kind,
                attempt,
                policy.max_attempts - 1,
                wait,
            )
            self.sleep(wait)
            return
        why = "not retried (non-idempotent, may have been applied)" if not retryable else "gave up"
        raise self._error(
            TransportError, method, url, code=kind, message=f"{why} after {attempt} attempt(s)"
        ) from None

    def _after_error_status(
        self, resp: requests.Response, method: str, url: str, safe: bool, attempt: int
    ) -> None:
        """Sleep before the next attempt (Retry-After, else backoff), or raise the typed error."""
        policy = self.retry
        status = resp.status_code
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        info = parse_rate_limit(resp.headers, self.clock()) if status in (429, 503) else RateLimitInfo()
        if retry_after is None and status == 429:
            retry_after = info.reset_in  # Jira: Reset = request time + Retry-After (not always both sent)
        # 429/503 were not processed by the server; other 5xx may have been (don't repeat a POST).
        retryable = status in policy.retry_statuses and (safe or status in (429, 503))
        if retryable and retry_after is not None and retry_after > policy.max_retry_after:
            raise self._asked_to_wait(method, url, resp, retry_after, info)
        if not retryable or attempt >= policy.max_attempts:
            raise self._classify(method, url, resp, retry_after)
        wait = retry_after if retry_after is not None else policy.backoff(attempt - 1, self.rand)
        log.warning(
            "%s %s %s -> %s, retry %s/%s in %.2fs%s",
            self.service,
            method,
            redact_url(url),
            status,
            attempt,
            policy.max_attempts - 1,
            wait,
            f" ({info.describe()})" if info.present else "",
        )
        resp.close()
        self.sleep(wait)

    # -- rate limits ---------------------------------------------------------------------------------------
    def _hold_or_pace(self, method: str, url: str) -> None:
        """Refuse to send while a wait the server asked for runs; pause when its budget is nearly spent."""
        held = self.wait_request
        if held is not None:
            left = held.until.timestamp() - self.clock()
            if left > 0:
                raise self._error(
                    RateLimited,
                    method,
                    url,
                    status=held.status,
                    code="wait_requested",
                    message=f"not sent: {held.describe()}",
                    retry_after=left,
                )
            self.wait_request = None
        pause = self._pace_until - time.monotonic()
        if pause > 0:
            self.sleep(pause)

    def _note_budget(self, resp: requests.Response) -> None:
        info = parse_rate_limit(resp.headers, self.clock())
        if not info.present:
            return
        delay = pacing_delay(info, self.retry)
        if delay > 0:
            log.info(
                "%s: rate budget nearly spent (%s); pacing calls %.2fs apart",
                self.service,
                info.describe(),
                delay,
            )
        self._pace_until = time.monotonic() + delay

    def _asked_to_wait(
        self, method: str, url: str, resp: requests.Response, seconds: float, info: RateLimitInfo
    ) -> ApiError:
        """Record the wait (later calls are not sent before it ends) and return the error to raise."""
        until = datetime.fromtimestamp(self.clock() + seconds, UTC)
        wait = WaitRequest(
            self.service, method, urlsplit(url).path or "/", resp.status_code, seconds, until, info
        )
        self.wait_request = wait
        log.warning(
            "%s: longer than the %.0fs this process waits", wait.describe(), self.retry.max_retry_after
        )
        err = self._classify(method, url, resp, seconds)
        err.message = redact_text(f"{err.message} ({wait.describe()})")[:MAX_MESSAGE]
        err.args = (str(err),)
        return err

    @staticmethod
    def _json(resp: requests.Response) -> Any:
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            return resp.text

    def get_json(self, path_or_url: str, **kw: Any) -> Any:
        return self._json(self.request("GET", path_or_url, **kw))

    def post_json(self, path_or_url: str, json: Any = None, **kw: Any) -> Any:
        return self._json(self.request("POST", path_or_url, json=json, **kw))

    def patch_json(self, path_or_url: str, json: Any = None, **kw: Any) -> Any:
        return self._json(self.request("PATCH", path_or_url, json=json, **kw))

    def put_json(self, path_or_url: str, json: Any = None, **kw: Any) -> Any:
        return self._json(self.request("PUT", path_or_url, json=json, **kw))

    def delete(self, path_or_url: str, **kw: Any) -> Any:
        return self._json(self.request("DELETE", path_or_url, **kw))

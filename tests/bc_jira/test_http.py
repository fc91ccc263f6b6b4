"""Unit tests for the shared HTTP policy (requests-mock; sleeps injected and recorded)."""

from __future__ import annotations

import base64
import logging
import pickle
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from typing import TYPE_CHECKING

import pytest
import requests

from bc_jira.http import (
    ApiClient,
    AuthError,
    ClientError,
    NotFoundError,
    PreconditionFailed,
    RateLimited,
    RetryPolicy,
    ServerError,
    TransportError,
)

if TYPE_CHECKING:
    import requests_mock as rm

BASE = "https://api.example.test/v2.0"
SECRET = "s3cr3t-Value-XYZ"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"


class FakeAuth:
    def __init__(self) -> None:
        self.calls: list[bool] = []
        self.n = 0

    def auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        self.calls.append(force_refresh)
        if force_refresh:
            self.n += 1
        return {"Authorization": f"Bearer {TOKEN}{self.n}"}


@pytest.fixture
def waits() -> list[float]:
    return []


def client(waits: list[float], **kw) -> ApiClient:
    kw.setdefault("auth", FakeAuth())
    return ApiClient("bc", BASE, sleep=waits.append, rand=lambda: 1.0, **kw)


def test_retry_after_seconds_honoured(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(
        f"{BASE}/x",
        [
            {
                "status_code": 429,
                "headers": {"Retry-After": "7"},
                "json": {"error": {"code": "TooMany", "message": "m"}},
            },
            {"status_code": 503, "headers": {"Retry-After": "2"}},
            {"status_code": 200, "json": {"ok": 1}},
        ],
    )
    assert client(waits).get_json("x") == {"ok": 1}
    assert waits == [7.0, 2.0]
    assert requests_mock.call_count == 3


def test_retry_after_http_date_honoured(requests_mock: rm.Mocker, waits: list[float]) -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    requests_mock.get(
        f"{BASE}/x",
        [{"status_code": 429, "headers": {"Retry-After": when}}, {"status_code": 200, "json": {}}],
    )
    client(waits).get_json("x")
    assert len(waits) == 1
    assert 27.0 <= waits[0] <= 30.0


def test_retry_after_beyond_cap_raises_without_waiting(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{BASE}/x", status_code=429, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as ei:
        client(waits).get_json("x")
    assert waits == []
    assert ei.value.retry_after == 600.0
    assert requests_mock.call_count == 1


def test_5xx_retried_with_capped_exponential_backoff_then_server_error(
    requests_mock: rm.Mocker, waits: list[float]
) -> None:
    requests_mock.get(
        f"{BASE}/x", status_code=500, json={"error": {"code": "Internal_ServerError", "message": "boom"}}
    )
    pol = RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_cap=5.0)
    with pytest.raises(ServerError) as ei:
        client(waits, retry=pol).get_json("x")
    assert requests_mock.call_count == 5
    assert waits == [1.0, 2.0, 4.0, 5.0]  # rand()=1.0 -> upper bound of full jitter, capped at 5
    err = ei.value
    assert err.status == 500
    assert err.code == "Internal_ServerError"
    assert err.message == "boom"
    assert str(err) == "bc GET /v2.0/x -> 500 Internal_ServerError: boom"


def test_full_jitter_below_bound(requests_mock: rm.Mocker) -> None:
    waits: list[float] = []
    requests_mock.get(f"{BASE}/x", [{"status_code": 502}, {"status_code": 200, "json": {}}])
    ApiClient(
        "bc", BASE, sleep=waits.append, rand=lambda: 0.25, retry=RetryPolicy(backoff_base=2.0)
    ).get_json("x")
    assert waits == [0.5]


def test_401_forces_one_refresh_then_succeeds(requests_mock: rm.Mocker, waits: list[float]) -> None:
    auth = FakeAuth()
    requests_mock.get(f"{BASE}/x", [{"status_code": 401}, {"status_code": 200, "json": {"v": 1}}])
    assert client(waits, auth=auth).get_json("x") == {"v": 1}
    assert auth.calls.count(True) == 1
    assert requests_mock.request_history[1].headers["Authorization"].endswith("1")


def test_second_401_is_auth_error(requests_mock: rm.Mocker, waits: list[float]) -> None:
    auth = FakeAuth()
    requests_mock.get(
        f"{BASE}/x",
        status_code=401,
        json={"error": {"code": "Authentication_InvalidCredentials", "message": "rejected"}},
    )
    with pytest.raises(AuthError) as ei:
        client(waits, auth=auth).get_json("x")
    assert auth.calls.count(True) == 1
    assert requests_mock.call_count == 2
    assert ei.value.code == "Authentication_InvalidCredentials"


def test_403_no_refresh(requests_mock: rm.Mocker, waits: list[float]) -> None:
    auth = FakeAuth()
    requests_mock.get(f"{BASE}/x", status_code=403)
    with pytest.raises(AuthError):
        client(waits, auth=auth).get_json("x")
    assert True not in auth.calls


@pytest.mark.parametrize(
    ("status", "cls"),
    [(404, NotFoundError), (412, PreconditionFailed), (409, PreconditionFailed), (400, ClientError)],
)
def test_typed_4xx(requests_mock: rm.Mocker, waits: list[float], status: int, cls: type) -> None:
    requests_mock.patch(
        f"{BASE}/x", status_code=status, json={"errorMessages": ["bad"], "errors": {"summary": "required"}}
    )
    with pytest.raises(cls) as ei:
        client(waits).patch_json("x", json={})
    assert ei.value.status == status
    assert "summary: required" in ei.value.message
    assert requests_mock.call_count == 1
    assert waits == []


def test_entra_error_shape(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(
        f"{BASE}/token",
        status_code=400,
        json={"error": "invalid_client", "error_description": "AADSTS7000215: Invalid secret"},
    )
    with pytest.raises(ClientError) as ei:
        client(waits, auth=None).post_json("token", json={})
    assert ei.value.code == "invalid_client"
    assert ei.value.message.startswith("AADSTS7000215")


def test_post_not_retried_after_timeout(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(f"{BASE}/post", exc=requests.ReadTimeout)
    with pytest.raises(TransportError) as ei:
        client(waits).post_json("post", json={"a": 1})
    assert requests_mock.call_count == 1
    assert waits == []
    assert ei.value.status is None


def test_post_not_retried_after_dropped_response(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(f"{BASE}/post", exc=requests.ConnectionError("Connection aborted, RemoteDisconnected"))
    with pytest.raises(TransportError):
        client(waits).post_json("post")
    assert requests_mock.call_count == 1


def test_post_not_retried_on_500_but_on_503(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(f"{BASE}/p500", status_code=500)
    with pytest.raises(ServerError):
        client(waits).post_json("p500")
    assert requests_mock.call_count == 1
    requests_mock.post(
        f"{BASE}/p503", [{"status_code": 503, "headers": {"Retry-After": "1"}}, {"status_code": 204}]
    )
    assert client(waits).post_json("p503") is None
    assert waits == [1.0]


def test_post_retried_when_retry_unsafe(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(
        f"{BASE}/search", [{"exc": requests.ReadTimeout}, {"status_code": 200, "json": {"r": 1}}]
    )
    assert client(waits).post_json("search", json={}, retry_unsafe=True) == {"r": 1}
    assert requests_mock.call_count == 2
    assert len(waits) == 1


def test_get_retried_on_timeout_then_transport_error(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{BASE}/x", exc=requests.ConnectTimeout)
    with pytest.raises(TransportError) as ei:
        client(waits, retry=RetryPolicy(max_attempts=3)).get_json("x")
    assert requests_mock.call_count == 3
    assert len(waits) == 2
    assert ei.value.code == "ConnectTimeout"


def test_redaction_in_errors_and_logs(
    requests_mock: rm.Mocker, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{BASE}/cb?code=AUTHCODE123&client_secret={SECRET}&state=ok"
    requests_mock.get(
        url,
        [
            {"status_code": 503},
            {
                "status_code": 400,
                "json": {
                    "error": "invalid_grant",
                    "error_description": f"bad Bearer {TOKEN} client_secret={SECRET}",
                },
            },
        ],
    )
    caplog.set_level(logging.DEBUG, logger="bc_jira")
    with pytest.raises(ClientError) as ei:
        client(waits).get_json(url)
    err = ei.value
    ours = " ".join(r.getMessage() for r in caplog.records if r.name.startswith("bc_jira"))
    assert "retry" in ours
    everything = " ".join([str(err), err.url, err.message, repr(err.args), ours])
    for needle in (SECRET, "AUTHCODE123", TOKEN):
        assert needle not in everything
    assert "state=ok" in err.url
    assert "code=***" in err.url
    assert pickle.loads(pickle.dumps(err)).message == err.message


def test_auth_only_sent_to_own_origin(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get("https://elsewhere.test/x", json={})
    client(waits).get_json("https://elsewhere.test/x")
    assert "Authorization" not in requests_mock.last_request.headers


def test_params_encode_spaces_as_percent20(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{BASE}/v", json={})
    client(waits).get_json("v", params={"$filter": "status eq 'Draft'", "$top": 5, "$skip": None})
    assert "?$filter=status%20eq%20'Draft'&$top=5" in requests_mock.last_request.url


def test_concurrency_cap(waits: list[float]) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    class SlowSession(requests.Session):
        def request(self, *a, **kw):  # type: ignore[override]
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.05)
            with lock:
                active -= 1
            r = requests.Response()
            r.status_code = 200
            r._content = b"{}"
            return r

    key = f"test:{time.time()}"
    clients = [
        ApiClient("bc", BASE, max_concurrency=3, concurrency_key=key, session=SlowSession()) for _ in range(2)
    ]
    threads = [threading.Thread(target=clients[i % 2].get_json, args=("x",)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 3


# -- Jira rate limits: long waits recorded, pacing near the limit ----------------------------------------
JIRA = "https://api.example.test/ex/jira/c1/rest/api/3"


def jira_client(waits: list[float], **kw) -> ApiClient:
    return ApiClient("jira", JIRA, FakeAuth(), sleep=waits.append, rand=lambda: 1.0, **kw)


def test_long_retry_after_records_a_wait_and_holds_later_calls(
    requests_mock: rm.Mocker, waits: list[float]
) -> None:
    requests_mock.post(
        f"{JIRA}/issue/bulk",
        status_code=429,
        headers={
            "Retry-After": "300",
            "X-RateLimit-Reset": "2099-01-01T00:00Z",
            "RateLimit-Reason": "jira-quota-tenant-based",
        },
        json={"errorMessages": ["Rate limit exceeded."]},
    )
    search = requests_mock.get(f"{JIRA}/search/jql", json={"issues": []})
    c = jira_client(waits, retry=RetryPolicy(max_retry_after=60))
    t0 = time.time()
    with pytest.raises(RateLimited) as ei:
        c.post_json("issue/bulk", {"issueUpdates": []})
    assert waits == []
    assert requests_mock.call_count == 1
    wait = c.wait_request
    assert wait is not None
    assert wait.status == 429
    assert wait.seconds == 300.0
    assert wait.path == "/ex/jira/c1/rest/api/3/issue/bulk"
    assert wait.info.reason == "jira-quota-tenant-based"
    assert t0 + 299 <= wait.until.timestamp() <= time.time() + 301
    assert "asked to wait 300s" in str(ei.value)
    assert "jira-quota-tenant-based" in str(ei.value)
    # Atlassian: a request sent before the period ends "will fail and return the same or longer Retry-After"
    with pytest.raises(RateLimited) as held:
        c.get_json("search/jql")
    assert search.call_count == 0
    assert "not sent" in str(held.value)
    assert held.value.retry_after > 290
    # once the wait is over, calls go out again
    c.clock = lambda: t0 + 400
    assert c.get_json("search/jql") == {"issues": []}
    assert c.wait_request is None


def test_reset_without_retry_after_is_the_wait(requests_mock: rm.Mocker, waits: list[float]) -> None:
    reset = (datetime.now(UTC) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%MZ")
    requests_mock.get(f"{JIRA}/x", status_code=429, headers={"X-RateLimit-Reset": reset})
    c = jira_client(waits)
    with pytest.raises(RateLimited):
        c.get_json("x")
    assert c.wait_request is not None
    assert 9 * 60 - 1 <= c.wait_request.seconds <= 10 * 60
    assert waits == []


def test_short_reset_without_retry_after_is_slept(requests_mock: rm.Mocker, waits: list[float]) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat()
    requests_mock.get(
        f"{JIRA}/x", [{"status_code": 429, "headers": {"X-RateLimit-Reset": reset}}, {"json": {"ok": 1}}]
    )
    c = jira_client(waits)
    assert c.get_json("x") == {"ok": 1}
    assert len(waits) == 1
    assert 28 <= waits[0] <= 30
    assert c.wait_request is None


def test_long_503_retry_after_is_a_wait_too(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{JIRA}/x", status_code=503, headers={"Retry-After": "900"})
    c = jira_client(waits)
    with pytest.raises(ServerError):
        c.get_json("x")
    assert c.wait_request is not None
    assert c.wait_request.status == 503
    assert waits == []


def test_near_limit_answers_pace_the_next_call(
    requests_mock: rm.Mocker, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=40)).isoformat()
    requests_mock.get(
        f"{JIRA}/x",
        [
            {"json": {}, "headers": {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "80"}},
            {
                "json": {},
                "headers": {
                    "X-RateLimit-Limit": "100",
                    "X-RateLimit-Remaining": "10",
                    "X-RateLimit-NearLimit": "true",
                    "X-RateLimit-Reset": reset,
                },
            },
            {"json": {}, "headers": {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99"}},
            {"json": {}},
        ],
    )
    c = jira_client(waits, retry=RetryPolicy(max_pace_delay=10.0))
    caplog.set_level(logging.INFO, logger="bc_jira.http")
    c.get_json("x")
    c.get_json("x")
    assert waits == []  # plenty left after the first answer: no pause
    c.get_json("x")  # 10 left, ~40 s to the reset: ~4 s apart
    assert len(waits) == 1
    assert 3.0 <= waits[0] <= 4.0
    c.get_json("x")  # the budget was refilled: no pause any more
    assert len(waits) == 1
    assert any(
        "nearly spent" in r.getMessage() and "remaining 10/100" in r.getMessage() for r in caplog.records
    )


def test_retry_after_on_2xx_is_not_a_pause(requests_mock: rm.Mocker, waits: list[float]) -> None:
    # Atlassian documents Retry-After only on 429 (and some 5xx) answers
    requests_mock.get(f"{JIRA}/x", json={}, headers={"Retry-After": "30"})
    c = jira_client(waits)
    c.get_json("x")
    c.get_json("x")
    assert waits == []


def test_client_against_sandbox_budget_paces_instead_of_hitting_429(sandbox, airflow_conns) -> None:
    """Real HTTP: a budget of 10 per 2 s; 14 calls with pacing never see a 429 (without it: the 11th)."""
    creds = sandbox.control("GET", "/_sandbox/credentials")

    class Basic:
        def auth_header(self, force_refresh: bool = False) -> dict[str, str]:
            token = base64.b64encode(f"{creds['jira_email']}:{creds['jira_api_token']}".encode()).decode()
            return {"Authorization": f"Basic {token}"}

    sandbox.control("POST", "/_sandbox/rate_limit", {"limit": 10, "window_s": 2})
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        time.sleep(s)

    c = ApiClient(
        "jira", f"{sandbox.url}/site/rest/api/3", Basic(), sleep=sleep, retry=RetryPolicy(max_pace_delay=2.5)
    )
    for _ in range(14):
        assert c.get_json("myself")["accountId"]
    assert sandbox.stats()["faults"].get("rate_limit", 0) == 0
    assert slept
    assert all(0 < s <= 2.5 for s in slept)

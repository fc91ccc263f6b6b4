"""Unit tests for the shared HTTP policy (requests-mock; sleeps injected and recorded)."""

from __future__ import annotations

import logging
import pickle
import threading
import time
from email.utils import formatdate

import pytest
import requests
import requests_mock as rm

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
    parse_retry_after,
    redact_url,
)

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
    assert len(waits) == 1 and 27.0 <= waits[0] <= 30.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


def test_retry_after_beyond_cap_raises_without_waiting(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{BASE}/x", status_code=429, headers={"Retry-After": "600"})
    with pytest.raises(RateLimited) as ei:
        client(waits).get_json("x")
    assert waits == [] and ei.value.retry_after == 600.0 and requests_mock.call_count == 1


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
    assert err.status == 500 and err.code == "Internal_ServerError" and err.message == "boom"
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
    assert auth.calls.count(True) == 1 and requests_mock.call_count == 2
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
    assert ei.value.status == status and "summary: required" in ei.value.message
    assert requests_mock.call_count == 1 and waits == []


def test_entra_error_shape(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(
        f"{BASE}/token",
        status_code=400,
        json={"error": "invalid_client", "error_description": "AADSTS7000215: Invalid secret"},
    )
    with pytest.raises(ClientError) as ei:
        client(waits, auth=None).post_json("token", json={})
    assert ei.value.code == "invalid_client" and ei.value.message.startswith("AADSTS7000215")


def test_post_not_retried_after_timeout(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.post(f"{BASE}/post", exc=requests.ReadTimeout)
    with pytest.raises(TransportError) as ei:
        client(waits).post_json("post", json={"a": 1})
    assert requests_mock.call_count == 1 and waits == [] and ei.value.status is None


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
    assert requests_mock.call_count == 2 and len(waits) == 1


def test_get_retried_on_timeout_then_transport_error(requests_mock: rm.Mocker, waits: list[float]) -> None:
    requests_mock.get(f"{BASE}/x", exc=requests.ConnectTimeout)
    with pytest.raises(TransportError) as ei:
        client(waits, retry=RetryPolicy(max_attempts=3)).get_json("x")
    assert requests_mock.call_count == 3 and len(waits) == 2
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
    assert "state=ok" in err.url and "code=***" in err.url
    assert pickle.loads(pickle.dumps(err)).message == err.message


def test_redact_url_strips_userinfo() -> None:
    assert (
        redact_url("https://user:pw@h.test/p?access_token=abc&x=1") == "https://h.test/p?access_token=***&x=1"
    )


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

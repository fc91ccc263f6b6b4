"""Narrow unit tests for BusinessCentralHook (requests-mock, MSAL's real client against mocked Entra)."""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from bc_jira.entra import clear_token_cache
from bc_jira.hooks.business_central import MAX_CONCURRENCY, BcSettings, BusinessCentralHook
from bc_jira.http import AuthError, PreconditionFailed, RetryPolicy
from bc_jira.store import StateStore

if TYPE_CHECKING:
    import requests_mock as rm

LOGIN = "https://login.microsoftonline.com"
API = "https://api.businesscentral.dynamics.com/v2.0"
SECRET = "very-secret-client-value-123"


@pytest.fixture
def settings() -> BcSettings:
    clear_token_cache()
    return BcSettings(
        client_id=str(uuid.uuid4()),
        client_secret=SECRET,
        tenant_id=str(uuid.uuid4()),
        environment="production",
        company_id=str(uuid.uuid4()),
    )


def mock_entra(
    m: rm.Mocker, s: BcSettings, tokens: list[str] | None = None, status: int = 200, error: dict | None = None
) -> rm.adapter._Matcher:
    m.get(f"{LOGIN}/common/discovery/instance", json={"metadata": []})  # MSAL's alias lookup
    m.get(
        f"{LOGIN}/{s.tenant_id}/v2.0/.well-known/openid-configuration",
        json={
            "token_endpoint": f"{LOGIN}/{s.tenant_id}/oauth2/v2.0/token",
            "authorization_endpoint": f"{LOGIN}/{s.tenant_id}/oauth2/v2.0/authorize",
            "issuer": f"{LOGIN}/{s.tenant_id}/v2.0",
        },
    )
    if error:
        return m.post(f"{LOGIN}/{s.tenant_id}/oauth2/v2.0/token", status_code=status, json=error)
    tokens = tokens or ["tok-1"]
    return m.post(
        f"{LOGIN}/{s.tenant_id}/oauth2/v2.0/token",
        [{"json": {"access_token": t, "token_type": "Bearer", "expires_in": 3599}} for t in tokens],
    )


def hook(s: BcSettings, waits: list[float] | None = None) -> BusinessCentralHook:
    return BusinessCentralHook(
        settings=s, sleep=(waits if waits is not None else []).append, retry=RetryPolicy(max_attempts=3)
    )


def base(s: BcSettings) -> str:
    return f"{API}/{s.tenant_id}/production/api/v2.0/companies({s.company_id})"


# -- hook over mocked HTTP ------------------------------------------------------------------------------


def test_no_network_in_init(requests_mock: rm.Mocker) -> None:
    BusinessCentralHook()
    BusinessCentralHook("other_conn")
    assert requests_mock.call_count == 0


def free_slots(store: StateStore, key: str) -> int:
    """How many of the principal's MAX_CONCURRENCY slots another caller can take right now."""
    with contextlib.ExitStack() as taken:
        for n in range(MAX_CONCURRENCY):
            try:
                taken.enter_context(store.call_slot(key, MAX_CONCURRENCY, timeout=0.3))
            except TimeoutError:
                return n
    return MAX_CONCURRENCY


def test_injected_call_limiter_holds_one_of_five_slots_per_principal(
    requests_mock: rm.Mocker, settings: BcSettings, sqlite_url: str
) -> None:
    """A hook given settings keeps the cross-process limiter it is handed (the state store's call slots)."""
    store = StateStore.from_url(sqlite_url)
    key = f"bc:{settings.tenant_id}:{settings.client_id}"
    mock_entra(requests_mock, settings)
    during: list[int] = []

    def companies(request: Any, context: Any) -> dict[str, Any]:
        during.append(free_slots(store, key))  # the hook's call holds one slot while in flight
        return {"value": []}

    requests_mock.get(f"{API}/{settings.tenant_id}/production/api/v2.0/companies", json=companies)
    h = BusinessCentralHook(settings=settings, call_limiter=store.call_slot, sleep=[].append)
    assert h.list_companies() == []
    assert during == [MAX_CONCURRENCY - 1]
    assert free_slots(store, key) == MAX_CONCURRENCY  # released with the answer


def test_settings_without_a_limiter_do_not_touch_a_store(
    requests_mock: rm.Mocker, settings: BcSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a hook that reads its connection from Airflow builds the state store's limiter by itself."""
    monkeypatch.setattr(StateStore, "from_airflow", classmethod(lambda cls, *a: pytest.fail("store built")))
    mock_entra(requests_mock, settings)
    requests_mock.get(f"{API}/{settings.tenant_id}/production/api/v2.0/companies", json={"value": []})
    assert hook(settings).list_companies() == []


def test_hook_from_an_airflow_connection_uses_the_state_stores_limiter(
    requests_mock: rm.Mocker, settings: BcSettings, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = StateStore.from_url(sqlite_url)
    monkeypatch.setattr(StateStore, "from_airflow", classmethod(lambda cls, *a: store))
    extra = {"tenant_id": settings.tenant_id, "company_id": settings.company_id}
    monkeypatch.setenv(
        "AIRFLOW_CONN_BC_LIMITED",
        json.dumps(
            {"conn_type": "business_central", "login": settings.client_id, "password": SECRET, "extra": extra}
        ),
    )
    key = f"bc:{settings.tenant_id}:{settings.client_id}"
    mock_entra(requests_mock, settings)
    during: list[int] = []

    def companies(request: Any, context: Any) -> dict[str, Any]:
        during.append(free_slots(store, key))
        return {"value": []}

    requests_mock.get(f"{API}/{settings.tenant_id}/production/api/v2.0/companies", json=companies)
    assert BusinessCentralHook("bc_limited", sleep=[].append).list_companies() == []
    assert during == [MAX_CONCURRENCY - 1]


def test_iter_modified_pages_across_three_pages(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    token = mock_entra(requests_mock, settings)
    b = base(settings)
    page2 = f"{b}/purchaseInvoices?$skiptoken=p2"
    page3 = f"{b}/purchaseInvoices?$skiptoken=p3"
    first = requests_mock.get(
        f"{b}/purchaseInvoices",
        [
            {
                "json": {
                    "value": [{"id": "a", "status": "Draft"}, {"id": "b", "status": "In_x0020_Review"}],
                    "@odata.nextLink": page2,
                }
            }
        ],
    )
    requests_mock.get(page2, json={"value": [{"id": "c", "status": "_x0020_"}], "@odata.nextLink": page3})
    requests_mock.get(page3, json={"value": [{"id": "d", "status": "Open"}]})
    h = hook(settings)
    gen = h.iter_modified(
        "purchaseInvoices",
        datetime(2026, 11, 24, 10, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 15, tzinfo=UTC),
        select=["number", "status"],
        extra_filter={"status": "Draft"},
        page_size=2,
    )
    assert next(gen)["id"] == "a"
    fetched = [r for r in requests_mock.request_history if "purchaseInvoices" in r.url]
    assert len(fetched) == 1  # nothing fetched ahead of the consumer
    rest = list(gen)
    assert [r["id"] for r in rest] == ["b", "c", "d"]
    assert [r["status"] for r in rest] == ["In Review", "", "Open"]
    req = first.last_request
    raw_query = urlsplit(req.url).query
    assert "%20" in raw_query
    assert "+" not in raw_query
    q = {k: v[0] for k, v in parse_qs(raw_query).items()}
    assert q["$filter"] == (
        "lastModifiedDateTime gt 2026-11-24T10:00:00Z and "
        "lastModifiedDateTime le 2026-11-24T10:15:00Z and status eq 'Draft'"
    )
    assert q["$orderby"] == "lastModifiedDateTime asc"
    assert q["$select"] == "id,lastModifiedDateTime,number,status"
    assert req.headers["Prefer"] == "odata.maxpagesize=2"
    assert req.headers["Authorization"] == "Bearer tok-1"
    assert all(r.headers["Prefer"] == "odata.maxpagesize=2" for r in requests_mock.request_history[-2:])
    assert token.call_count == 1  # the MSAL cache served the other pages


def test_token_body_and_scope(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    token = mock_entra(requests_mock, settings)
    requests_mock.get(f"{base(settings)}/vendors(abc)", status_code=404)
    requests_mock.get(f"{base(settings)}/vendors", json={"value": []})
    list(hook(settings).iter_records("vendors"))
    form = parse_qs(unquote(token.last_request.text))
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["https://api.businesscentral.dynamics.com/.default"]
    assert form["client_id"] == [settings.client_id]


def test_401_forces_one_token_refresh(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    token = mock_entra(requests_mock, settings, tokens=["old", "new"])
    vid = str(uuid.uuid4())
    url = f"{base(settings)}/vendors({vid})"
    requests_mock.get(
        url,
        [
            {
                "status_code": 401,
                "json": {"error": {"code": "Authentication_InvalidCredentials", "message": "x"}},
            },
            {"json": {"id": vid, "blocked": "_x0020_", "@odata.etag": 'W/"JzE7Jw=="'}},
        ],
    )
    rec = hook(settings).get_record("vendors", vid)
    assert rec["blocked"] == ""
    assert rec["@odata.etag"] == 'W/"JzE7Jw=="'
    assert token.call_count == 2
    assert [
        r.headers.get("Authorization") for r in requests_mock.request_history if r.url.startswith(url)
    ] == ["Bearer old", "Bearer new"]


def test_401_twice_is_auth_error(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    token = mock_entra(requests_mock, settings, tokens=["a", "b", "c"])
    requests_mock.get(f"{base(settings)}/vendors", status_code=401)
    with pytest.raises(AuthError):
        list(hook(settings).iter_records("vendors"))
    assert token.call_count == 2


def test_patch_encodes_enum_and_sends_if_match(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    vid = str(uuid.uuid4())
    patch = requests_mock.patch(
        f"{base(settings)}/vendors({vid})",
        json={"id": vid, "blocked": "_x0020_", "@odata.etag": 'W/"JzI7Jw=="'},
    )
    rec = hook(settings).unblock_vendor(vid, 'W/"JzE7Jw=="')
    assert patch.last_request.json() == {"blocked": "_x0020_"}
    assert patch.last_request.headers["If-Match"] == 'W/"JzE7Jw=="'
    assert rec["blocked"] == ""


def test_patch_stale_etag(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    vid = str(uuid.uuid4())
    requests_mock.patch(
        f"{base(settings)}/vendors({vid})",
        status_code=412,
        json={
            "error": {
                "code": "Request_EntityChanged",
                "message": "Another user has already changed the record.",
            }
        },
    )
    with pytest.raises(PreconditionFailed) as ei:
        hook(settings).set_vendor_blocked(vid, "All", 'W/"old"')
    assert ei.value.code == "Request_EntityChanged"


def test_post_invoice_bound_action(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    iid = str(uuid.uuid4())
    post = requests_mock.post(f"{base(settings)}/purchaseInvoices({iid})/Microsoft.NAV.post", status_code=204)
    assert hook(settings).post_purchase_invoice(iid) is None
    assert post.call_count == 1


def test_subscriptions(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    env = f"{API}/{settings.tenant_id}/production/api/v2.0"
    create = requests_mock.post(
        f"{env}/subscriptions", status_code=201, json={"subscriptionId": "s1", "@odata.etag": 'W/"e1"'}
    )
    listed = {
        "subscriptionId": "s1",
        "@odata.etag": 'W/"e2"',
        "notificationUrl": "https://air.example/bc-jira/bc/notifications",
        "resource": f"/api/v2.0/companies({settings.company_id})/purchaseInvoices",
        "clientState": "state-1",
        "expirationDateTime": "2026-03-04T10:00:00Z",
    }
    requests_mock.get(f"{env}/subscriptions('s1')", json=listed)
    renew = requests_mock.patch(f"{env}/subscriptions('s1')", json={"subscriptionId": "s1"})
    delete = requests_mock.delete(f"{env}/subscriptions('s1')", status_code=204)
    h = hook(settings)
    h.create_subscription("https://air.example/bc-jira/bc/notifications", "purchaseInvoices", "state-1")
    assert create.last_request.json() == {
        "notificationUrl": "https://air.example/bc-jira/bc/notifications",
        "resource": f"/api/v2.0/companies({settings.company_id})/purchaseInvoices",
        "clientState": "state-1",
    }
    h.renew_subscription("s1")
    assert renew.last_request.headers["If-Match"] == 'W/"e2"'
    # Learn's documented renewal body (dynamics_subscriptions_update), not {}
    assert renew.last_request.json() == {
        "notificationUrl": "https://air.example/bc-jira/bc/notifications",
        "resource": f"/api/v2.0/companies({settings.company_id})/purchaseInvoices",
        "clientState": "state-1",
    }
    gets = requests_mock.call_count
    h.renew_subscription("s1", 'W/"e9"', {"clientState": "state-2"}, current=listed)  # no extra GET
    assert requests_mock.call_count == gets + 1
    assert renew.last_request.headers["If-Match"] == 'W/"e9"'
    assert renew.last_request.json()["clientState"] == "state-2"
    assert h.delete_subscription("s1", etag='W/"e3"') is True
    assert delete.last_request.headers["If-Match"] == 'W/"e3"'


def test_test_connection_bad_secret(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(
        requests_mock,
        settings,
        status=401,
        error={
            "error": "invalid_client",
            "error_description": "AADSTS7000215: Invalid client secret provided.",
        },
    )
    ok, msg = hook(settings).test_connection()
    assert not ok
    assert "AADSTS7000215" in msg
    assert "secret" in msg
    assert SECRET not in msg


def test_test_connection_ok_and_unknown_company(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    env = f"{API}/{settings.tenant_id}/production/api/v2.0"
    requests_mock.get(f"{env}/companies", json={"value": [{"id": settings.company_id, "name": "CRONUS"}]})
    ok, msg = hook(settings).test_connection()
    assert ok
    assert "CRONUS" in msg
    other = BcSettings(**{**settings.__dict__, "company_id": str(uuid.uuid4())})
    ok, msg = hook(other).test_connection()
    assert not ok
    assert "Unknown company" in msg
    assert "CRONUS" in msg


def test_test_connection_wrong_environment(requests_mock: rm.Mocker, settings: BcSettings) -> None:
    mock_entra(requests_mock, settings)
    requests_mock.get(
        f"{API}/{settings.tenant_id}/production/api/v2.0/companies",
        status_code=404,
        json={"error": {"code": "NoEnvironment", "message": "no such environment"}},
    )
    ok, msg = hook(settings).test_connection()
    assert not ok
    assert "Environment 'production' not found" in msg


def test_settings_repr_hides_secret(settings: BcSettings) -> None:
    assert SECRET not in repr(settings)

"""Late, reused, poison and unverifiable deliveries over HTTP against the plugin in a real api-server.

One api-server (real plugin mounting, Airflow's connection lookup with a custom secrets backend that fails on
demand, uvicorn) serves every step, in an order that keeps the connector's 30 s secrets cache cold where a
step needs it: first the "secrets backend down" steps, then the rest.
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bc_jira.store import StateStore
from tests.support.api_server import ApiServer
from tests.support.jira_tokens import fresh_claims, hub_signature, make_jwt

if TYPE_CHECKING:
    from collections.abc import Iterator

CLIENT_STATE = "cs-api-server-0123456789"
CLIENT_SECRET = "cl-api-server-0123456789abcdef0123456789abcdef"
WEBHOOK_SECRET = "wh-api-server-0123456789"
COMPANY = "6f1c7b9a-0000-4000-8000-000000000001"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("api_server")
    state, flag = tmp / "state.db", tmp / "secrets-down"
    conns = tmp / "conns.json"
    # The webhook secrets live in the secrets backend (as in a deployment with a secrets manager), not in
    # environment variables that would answer when the backend is down.
    conns.write_text(
        json.dumps(
            {
                "bc_default": {"conn_type": "business_central", "extra": {"client_state": CLIENT_STATE}},
                "jira_default": {
                    "conn_type": "jira_cloud",
                    "login": "client-id",
                    "password": CLIENT_SECRET,
                    "extra": {
                        "auth": "oauth2",
                        "site_url": "https://x.atlassian.net",
                        "webhook_secret": WEBHOOK_SECRET,
                    },
                },
                "bc_jira_db": {"conn_type": "sqlite", "host": str(state)},
            }
        )
    )
    env = {
        "AIRFLOW__SECRETS__BACKEND": "tests.support.flaky_secrets.FlakySecretsBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps({"conns": str(conns), "flag": str(flag)}),
        "BC_JIRA_DELIVERY_TOMBSTONE_HOURS": "24",
    }
    started = time.monotonic()
    api = ApiServer(tmp / "home", env)
    print(f"api-server up in {time.monotonic() - started:.1f} s")
    try:
        yield {
            "api": api,
            "base": f"{api.url}/bc-jira",
            "store": StateStore.from_url(f"sqlite:///{state}"),
            "flag": flag,
        }
    finally:
        api.stop()


def jira_body(issue_id: str, changelog_id: str, to: str = "Done") -> bytes:
    return json.dumps(
        {
            "timestamp": 1,
            "webhookEvent": "jira:issue_updated",
            "issue": {
                "id": issue_id,
                "key": f"FIN-{issue_id}",
                "fields": {"status": {"name": to, "statusCategory": {"key": "done"}}},
            },
            "changelog": {
                "id": changelog_id,
                "items": [{"field": "status", "fieldId": "status", "toString": to}],
            },
        }
    ).encode()


def bearer(token: str, ident: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {token}",
        "X-Atlassian-Webhook-Identifier": ident,
        "Content-Type": "application/json",
    }


def bc_items(rid: str, when: str = "2026-03-01T10:00:00Z") -> bytes:
    return json.dumps(
        {
            "value": [
                {
                    "subscriptionId": "sub-1",
                    "clientState": CLIENT_STATE,
                    "expirationDateTime": "2026-03-04T10:00:00Z",
                    "resource": f"api/v2.0/companies({COMPANY})/vendors({rid})",
                    "changeType": "updated",
                    "lastModifiedDateTime": when,
                }
            ]
        }
    ).encode()


def test_unreadable_connections_fail_closed_503_nothing_staged(server: dict[str, Any]) -> None:
    base, store, flag, api = server["base"], server["store"], server["flag"], server["api"]
    body = jira_body("500", "c-500")
    # the secrets backend is down for the webhook secrets (bc_default / jira_default): 503, nothing staged
    flag.write_text("bc_default jira_default")
    r = requests.post(f"{base}/bc/notifications", data=bc_items("a1"), timeout=30)
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After"), r.text
    r = requests.post(
        f"{base}/jira/webhook",
        data=body,
        headers=bearer(make_jwt(fresh_claims(), CLIENT_SECRET), "f-1"),
        timeout=30,
    )
    assert r.status_code == 503, r.text
    assert (
        "connection 'bc_default' could not be read: FlakySecretsBackend (ConnectionError)" in api.log_text()
    )
    # the handshake touches no connection: still answered
    hs = requests.post(f"{base}/bc/notifications?validationToken=tok-1", timeout=30)
    assert (hs.status_code, hs.text) == (200, "tok-1")
    # the state store's connection unreadable: 503 as well (not a silent local SQLite file)
    flag.write_text("bc_jira_db")
    r = requests.post(f"{base}/bc/notifications", data=bc_items("a2"), timeout=30)
    assert r.status_code == 503, r.text
    assert "connection 'bc_jira_db' could not be read" in api.log_text()
    flag.unlink()
    assert store.count_pending() == 0
    r = requests.post(f"{base}/bc/notifications", data=bc_items("a3"), timeout=30)
    assert r.status_code == 202, r.text
    assert r.json()["staged"] == 1, r.text
    assert [e.payload["record_id"] for e in store.pending_events()] == ["a3"]


def test_jwt_deliveries_late_retries_and_reused_identifiers(server: dict[str, Any]) -> None:
    base, store = server["base"], server["store"]
    body = jira_body("601", "c-601")
    h = bearer(make_jwt(fresh_claims(), CLIENT_SECRET), "late-601")
    first = requests.post(f"{base}/jira/webhook", data=body, headers=h, timeout=30)
    assert first.status_code == 202, first.text
    assert first.json()["staged"] == 1, first.text
    (ev,) = store.pending_events("jira.transition")
    assert ev.payload["verified_by"] == "jwt"
    assert ev.payload["delivery_id"] == "late-601"
    store.delete_event(ev.id)  # processed and deleted, as jira_transitions_to_bc does
    # Jira retries up to ~30 min later with the same identifier (and a fresh token)
    late = requests.post(
        f"{base}/jira/webhook",
        data=body,
        headers={
            **bearer(make_jwt(fresh_claims(), CLIENT_SECRET), "late-601"),
            "X-Atlassian-Webhook-Retry": "4",
        },
        timeout=30,
    )
    assert late.status_code == 202
    assert late.json() == {"status": "accepted", "staged": 0, "duplicate": True}
    assert store.count_pending("jira.transition") == 0
    # the same identifier, a different (validly signed) body: not staged, audited as a conflicting duplicate
    other = jira_body("602", "c-602")
    reused = requests.post(
        f"{base}/jira/webhook",
        data=other,
        headers=bearer(make_jwt(fresh_claims(), CLIENT_SECRET), "late-601"),
        timeout=30,
    )
    assert reused.status_code == 202
    assert reused.json()["conflict"] is True
    assert store.count_pending("jira.transition") == 0
    (row,) = store.query_audit(action="duplicate_conflict")
    assert row.issue_key == "FIN-602"
    assert "late-601" in row.reason
    # an admin webhook's delivery (X-Hub-Signature with webhook_secret) is accepted too
    admin = jira_body("603", "c-603")
    r = requests.post(
        f"{base}/jira/webhook",
        data=admin,
        headers={
            "X-Hub-Signature": hub_signature(admin, WEBHOOK_SECRET),
            "X-Atlassian-Webhook-Identifier": "adm-1",
        },
        timeout=30,
    )
    assert r.status_code == 202
    assert r.json()["staged"] == 1
    assert store.pending_events("jira.transition")[-1].payload["verified_by"] == "hmac"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            make_jwt({"exp": int(time.time()) - 600, "iat": int(time.time()) - 900}, CLIENT_SECRET),
            id="expired",
        ),
        pytest.param(
            make_jwt({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, CLIENT_SECRET),
            id="future-iat",
        ),
        pytest.param(make_jwt(fresh_claims(), CLIENT_SECRET + "x"), id="wrong-key"),
        pytest.param(make_jwt(fresh_claims(), CLIENT_SECRET, alg="none", signature=False), id="alg-none"),
        pytest.param(make_jwt(fresh_claims(), CLIENT_SECRET, alg="HS512"), id="alg-hs512"),
        pytest.param(make_jwt({"iat": int(time.time())}, CLIENT_SECRET), id="no-exp"),
    ],
)
def test_bad_tokens_401_nothing_staged(server: dict[str, Any], token: str) -> None:
    base, store = server["base"], server["store"]
    before = store.count_pending("jira.transition")
    r = requests.post(
        f"{base}/jira/webhook", data=jira_body("700", "c-700"), headers=bearer(token, "bad-700"), timeout=30
    )
    assert r.status_code == 401
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert store.count_pending("jira.transition") == before
    missing = requests.post(f"{base}/jira/webhook", data=jira_body("700", "c-700"), timeout=30)
    assert missing.status_code == 401


def test_bc_repeat_after_processing_is_a_duplicate(server: dict[str, Any]) -> None:
    base, store = server["base"], server["store"]
    r = requests.post(f"{base}/bc/notifications", data=bc_items("b1"), timeout=30)
    assert r.status_code == 202
    assert r.json()["staged"] == 1
    for ev in store.pending_events("bc.vendors"):
        if ev.payload["record_id"] == "b1":
            store.delete_event(ev.id)
    again = requests.post(f"{base}/bc/notifications", data=bc_items("b1"), timeout=30)
    assert again.status_code == 202
    assert (again.json()["staged"], again.json()["duplicates"]) == (0, 1)
    assert "b1" not in [e.payload["record_id"] for e in store.pending_events("bc.vendors")]


def test_poison_bodies_400_logged_once_nothing_staged(server: dict[str, Any]) -> None:
    base, store, api = server["base"], server["store"], server["api"]
    before = store.count_pending()
    deep = b"[" * 100_000 + b"]" * 100_000
    r = requests.post(
        f"{base}/jira/webhook",
        data=deep,
        headers={
            "X-Hub-Signature": hub_signature(deep, WEBHOOK_SECRET),
            "X-Atlassian-Webhook-Identifier": "deep-1",
        },
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert "depth 128" in r.json()["error"], r.text
    r = requests.post(
        f"{base}/jira/webhook",
        data=deep,
        headers=bearer(make_jwt(fresh_claims(), CLIENT_SECRET), "deep-2"),
        timeout=30,
    )
    assert r.status_code == 400
    bc_deep = b'{"value": ' + deep + b"}"
    r = requests.post(f"{base}/bc/notifications", data=bc_deep, timeout=30)
    assert r.status_code == 400, r.text
    assert "deeper than 128" in r.json()["error"], r.text
    assert store.count_pending() == before
    time.sleep(0.5)
    log = api.log_text()
    assert "RecursionError" not in log
    assert "Traceback" not in log
    assert len(re.findall(r"jira webhook deep-1: 400 .*too deep", log)) == 1
    assert len(re.findall(r"bc notification: 400 .*too deep", log)) == 1


def test_api_server_log_never_shows_secrets(server: dict[str, Any]) -> None:
    log = server["api"].log_text()
    for secret in (CLIENT_STATE, CLIENT_SECRET, WEBHOOK_SECRET):
        assert secret not in log

"""The web app through FastAPI's TestClient: handshake, signed/forged deliveries, dedupe, OAuth, health."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from fastapi.testclient import TestClient

from bc_jira.edges import intake, shared_secrets
from bc_jira.store import StateStore
from bc_jira.web.app import create_app

SECRETS = shared_secrets.Secrets(
    client_state="cs-plugin", webhook_secret="wh-plugin", jira_client_secret="cl-plugin"
)


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    return StateStore.from_url(sqlite_url)


@pytest.fixture
def client(store: StateStore) -> TestClient:
    app = create_app(store_factory=lambda: store, secrets_factory=lambda: SECRETS)
    return TestClient(app)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_bc_handshake_echo(client: TestClient, method: str) -> None:
    """Learn states the validationToken query parameter and the 200 echo, not the method: answer both."""
    r = client.request(method, "/bc/notifications?validationToken=tok-123")
    assert r.status_code == 200
    assert r.text == "tok-123"
    assert r.headers["content-type"].startswith("text/plain")


def test_bc_get_without_token_stages_nothing(client: TestClient, store: StateStore) -> None:
    r = client.get("/bc/notifications")
    assert r.status_code == 400
    assert "handshake" in r.text
    assert store.count_pending() == 0


def test_bc_notification_staged_and_forged_dropped(client: TestClient, store: StateStore) -> None:
    item = {
        "subscriptionId": "s1",
        "clientState": "cs-plugin",
        "changeType": "updated",
        "resource": "api/v2.0/companies(c1)/vendors(v1)",
        "lastModifiedDateTime": "2026-03-01T10:00:00Z",
    }
    r = client.post("/bc/notifications", json={"value": [item]})
    assert r.status_code == 202
    assert store.count_pending("bc.vendors") == 1
    r = client.post(
        "/bc/notifications",
        json={"value": [dict(item, clientState="nope", lastModifiedDateTime="2026-03-02T00:00:00Z")]},
    )
    assert r.status_code == 202
    assert store.count_pending("bc.vendors") == 1
    assert client.post("/bc/notifications", content=b"garbage").status_code == 400


def _signed(body: bytes, ident: str) -> dict[str, str]:
    sig = hmac.new(b"wh-plugin", body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature": f"sha256={sig}",
        "X-Atlassian-Webhook-Identifier": ident,
        "Content-Type": "application/json",
    }


BODY = json.dumps(
    {
        "webhookEvent": "jira:issue_updated",
        "issue": {
            "id": "10001",
            "key": "FIN-1",
            "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}},
        },
        "changelog": {"id": "77", "items": [{"field": "status", "fieldId": "status", "toString": "Done"}]},
    }
).encode()


def test_jira_signed_202_one_row_twice_still_one(client: TestClient, store: StateStore) -> None:
    r = client.post("/jira/webhook", content=BODY, headers=_signed(BODY, "w-1"))
    assert r.status_code == 202
    assert store.count_pending("jira.transition") == 1
    r = client.post("/jira/webhook", content=BODY, headers=_signed(BODY, "w-1"))
    assert r.status_code == 202
    assert r.json().get("duplicate") is True
    assert store.count_pending("jira.transition") == 1
    assert store.get_webhook("admin_deliveries")["last_delivery_at"]


def test_jira_forged_and_unsigned_401(client: TestClient, store: StateStore) -> None:
    forged = dict(_signed(BODY, "w-2"), **{"X-Hub-Signature": "sha256=" + "ab" * 32})
    assert client.post("/jira/webhook", content=BODY, headers=forged).status_code == 401
    assert client.post("/jira/webhook", content=BODY).status_code == 401
    assert store.count_pending() == 0


def test_jira_body_cap(client: TestClient, store: StateStore) -> None:
    big = b"x" * (intake.MAX_JIRA_BODY + 10)
    assert client.post("/jira/webhook", content=big, headers=_signed(big, "w-3")).status_code == 413


def test_store_down_is_503(store: StateStore) -> None:
    def broken() -> Any:
        raise RuntimeError("db down")

    app = create_app(store_factory=broken, secrets_factory=lambda: SECRETS)
    c = TestClient(app)
    r = c.post("/jira/webhook", content=BODY, headers=_signed(BODY, "w-4"))
    assert r.status_code == 503
    r = c.post("/bc/notifications", json={"value": []})
    assert r.status_code == 503
    assert c.get("/health").status_code == 503


def test_health_reports_store_and_backlog(client: TestClient, store: StateStore) -> None:
    store.put_subscription(
        "/api/v2.0/companies(c)/vendors",
        entity="vendors",
        subscription_id="s",
        expiration="2000-01-01T00:00:00Z",
    )
    body = client.get("/health").json()
    assert body["store"]["ok"] is True
    assert body["ok"] is False
    assert any("vendors" in p for p in body["problems"])
    assert body["pending_events"]["jira.transition"] == 0


def test_health_shows_consent_expiry_and_refused_refresh(client: TestClient, store: StateStore) -> None:
    """Atlassian ends a grant 365 days after the consent (jira-api.md 1.3): a problem 30 days before."""
    day = 86400.0
    consent = time.time() - 340 * day
    with store.token_lock("jira:jira_default") as txn:
        txn.save("rt-ciphertext", "at-ciphertext", time.time() + 3000, {"connected_at": consent})
    body = client.get("/health").json()
    expires = body["jira_token"]["consent_expires_at"]
    assert expires == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(consent + 365 * day)) + expires[19:]
    assert body["ok"] is False
    assert body["jira_token"]["consent_estimated"] is False
    assert [p for p in body["problems"] if "consent" in p and "/bc-jira/jira/oauth/start" in p]
    with store.token_lock("jira:jira_default") as txn:  # a fresh consent: no problem
        txn.save("rt-ciphertext", "at-ciphertext", time.time() + 3000, {"connected_at": time.time()})
    assert client.get("/health").json()["ok"] is True
    failure = {
        "at": time.time(),
        "status": 403,
        "code": "invalid_grant",
        "message": "Unknown or invalid refresh token.",
    }
    with store.token_lock("jira:jira_default") as txn:
        txn.save("rt-ciphertext", None, None, {"connected_at": time.time(), "last_refresh_error": failure})
    body = client.get("/health").json()
    assert body["ok"] is False
    assert body["jira_token"]["last_refresh_error"]["code"] == "invalid_grant"
    assert any("refused" in p and "invalid_grant" in p for p in body["problems"])


def test_oauth_start_requires_airflow_user(client: TestClient) -> None:
    r = client.get("/jira/oauth/start", follow_redirects=False)
    assert r.status_code == 401
    assert "location" not in r.headers


def test_oauth_flow_against_sandbox(sandbox: Any, store: StateStore) -> None:
    """start (state stored) -> sandbox /authorize auto-consents -> callback stores tokens encrypted."""
    from airflow.api_fastapi.core_api.security import get_user

    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.hooks.jira_connection import JiraSettings

    c = sandbox.creds
    settings = JiraSettings(
        auth="oauth2",
        site_url=c["site_url"],
        client_id=c["atlassian_client_id"],
        client_secret=c["atlassian_client_secret"],
        redirect_uri=c["redirect_uri"],
        auth_url=sandbox.url,
        api_url=sandbox.url,
    )
    hooks: list[Any] = []

    def hook_factory(conn_id: str) -> Any:
        hooks.append(JiraCloudHook(conn_id, settings=settings, store=store))
        return hooks[-1]

    class User:
        def get_name(self) -> str:
            return "admin"

    app = create_app(store_factory=lambda: store, secrets_factory=lambda: SECRETS, hook_factory=hook_factory)
    app.dependency_overrides[get_user] = lambda: User()
    tc = TestClient(app)
    start = tc.get("/jira/oauth/start", follow_redirects=False)
    assert start.status_code == 302
    consent = requests.get(start.headers["location"], allow_redirects=False, timeout=10)
    assert consent.status_code == 302
    back = urlsplit(consent.headers["location"])
    assert back.path == "/bc-jira/jira/oauth/callback"
    q = {k: v[0] for k, v in parse_qs(back.query).items()}
    done = tc.get("/jira/oauth/callback", params=q)
    assert done.status_code == 200, done.text
    assert c["cloud_id"] in done.text
    row = store.get_token("jira:jira_default")
    assert row is not None
    assert row.refresh_token_enc
    assert row.meta["cloud_id"] == c["cloud_id"]
    assert "connected_by" in row.meta
    token_health = TestClient(app).get("/health").json()["jira_token"]
    assert token_health["consent_estimated"] is False
    assert token_health["last_refresh_error"] is None
    assert token_health["consent_expires_at"][:10] == time.strftime(
        "%Y-%m-%d", time.gmtime(row.meta["connected_at"] + 365 * 86400)
    )
    dump = store.dump_text()
    assert c["refresh_token"] not in dump
    # the stored grant works: a fresh hook calls Jira with it
    fresh = JiraCloudHook("jira_default", settings=settings, store=store)
    assert fresh.myself().get("accountId")
    # replaying the callback (state used) is refused
    assert tc.get("/jira/oauth/callback", params=q).status_code == 400
    assert tc.get("/jira/oauth/callback", params={"state": "forged", "code": "x"}).status_code == 400

"""intake: BC handshake/clientState/staging, Jira HMAC + JWT verification, dedupe, late and poison bodies."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from bc_jira.edges import intake, settle
from bc_jira.store import StateStore
from tests.support.bc_notifications import COMPANY, CS, bc_item, bc_post

SECRET = "webhook-secret-xyz"
CLIENT_SECRET = "atlassian-client-secret"


@pytest.fixture
def store(sqlite_url: str) -> StateStore:
    st = StateStore.from_url(sqlite_url)
    st.ensure_schema()
    return st


def test_handshake_echoes_token_as_text(store: StateStore) -> None:
    res = intake.handle_bc_notification({"validationToken": "abc123"}, b"", client_state=CS, store=store)
    assert (res.status, res.body, res.media_type) == (200, "abc123", "text/plain")
    assert store.count_pending() == 0


def test_bc_items_staged_once_with_kind_and_no_secret(store: StateStore) -> None:
    items = [bc_item(), bc_item("vendors", "BBBB0000-1111-2222-3333-444455556666")]
    res = bc_post(store, items)
    assert (res.status, res.staged, res.duplicates) == (202, 2, 0)
    again = bc_post(store, items)
    assert (again.status, again.staged, again.duplicates) == (202, 0, 2)
    inv = store.pending_events("bc.purchase_invoices")
    assert len(inv) == 1
    assert store.count_pending("bc.vendors") == 1
    p = inv[0].payload
    assert p["record_id"] == "aaaa0000-1111-2222-3333-444455556666"
    assert p["entity"] == "purchase_invoices"
    assert CS not in json.dumps(p)
    assert "clientState" not in p


def test_same_record_new_change_time_is_a_new_event(store: StateStore) -> None:
    bc_post(store, [bc_item()])
    bc_post(store, [bc_item(when="2026-03-01T10:05:00Z")])
    assert store.count_pending("bc.purchase_invoices") == 2


def test_wrong_client_state_dropped_but_202(store: StateStore) -> None:
    res = bc_post(store, [bc_item(state="forged"), bc_item(rid="CCCC0000-1111-2222-3333-444455556666")])
    assert res.status == 202
    assert res.staged == 1
    assert res.dropped == 1
    assert store.count_pending() == 1


def test_malformed_bodies_that_cannot_be_bc_get_400(store: StateStore) -> None:
    for body in (b"not json", b"[1,2]", b'{"values": []}', b'{"value": {}}'):
        res = intake.handle_bc_notification({}, body, client_state=CS, store=store)
        assert res.status == 400, body
    too_big = b"{" + b" " * (intake.MAX_BC_BODY + 1) + b"}"
    assert intake.handle_bc_notification({}, too_big, client_state=CS, store=store).status == 413
    assert store.count_pending() == 0


def test_unknown_entity_and_bad_items_dropped(store: StateStore) -> None:
    res = bc_post(store, [bc_item("customers"), "junk", {"clientState": CS}])
    assert (res.status, res.staged, res.dropped) == (202, 0, 3)


def test_collection_stages_a_window_scan(store: StateStore) -> None:
    item = bc_item()
    item.update(
        changeType="collection",
        resource=f"api/v2.0/companies({COMPANY})/vendors?$filter=lastModifiedDateTime%20gt%202026-03-01T09:59:59.95Z",
    )
    bare = dict(item, resource=f"api/v2.0/companies({COMPANY})/purchaseInvoices", lastModifiedDateTime="x")
    assert bc_post(store, [item, bare]).staged == 2
    ev = store.pending_events("bc.vendors")[0]
    assert ev.payload["scan"] == {"since": "2026-03-01T09:59:59.95Z"}
    assert ev.payload["record_id"] is None
    full, since = settle.bc_scan_since(store.pending_events("bc.vendors"))
    assert not full
    assert since is not None
    assert since.isoformat().startswith("2026-03-01T09:59:59.95")
    assert settle.bc_scan_since(store.pending_events("bc.purchase_invoices")) == (True, None)


def test_store_failure_becomes_503_not_4xx() -> None:
    class Broken:
        def stage_delivery(self, *a: Any, **kw: Any) -> str:
            raise RuntimeError("db down")

    res = intake.safely(lambda: bc_post(Broken(), [bc_item()]), "test")  # type: ignore[arg-type]
    assert res.status == 503
    assert "Retry-After" in res.headers


# -- Jira ------------------------------------------------------------------------------------------------


def jira_body(
    issue_id: str = "10001",
    changelog_id: str | None = "555",
    event: str = "jira:issue_updated",
    field: str = "status",
) -> bytes:
    payload: dict[str, Any] = {
        "timestamp": 1,
        "webhookEvent": event,
        "issue_event_type_name": "issue_generic",
        "user": {"accountId": "acc-1"},
        "issue": {
            "id": issue_id,
            "key": f"FIN-{issue_id[-1]}",
            "fields": {"status": {"name": "Done", "statusCategory": {"key": "done"}}},
        },
    }
    if changelog_id is not None:
        payload["changelog"] = {
            "id": changelog_id,
            "items": [
                {"field": field, "fieldId": field, "fromString": "To Do", "toString": "Done", "to": "10002"}
            ],
        }
    return json.dumps(payload).encode()


def sign(body: bytes, secret: str = SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def jira_post(store: StateStore, body: bytes, headers: dict[str, str]) -> intake.IntakeResult:
    return intake.handle_jira_webhook(
        headers, body, webhook_secret=SECRET, client_secret=CLIENT_SECRET, store=store
    )


def test_signed_delivery_staged_once(store: StateStore) -> None:
    body = jira_body()
    h = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "d-1"}
    res = jira_post(store, body, h)
    assert (res.status, res.staged, res.verified_by) == (202, 1, "hmac")
    assert jira_post(store, body, {**h, "X-Atlassian-Webhook-Retry": "1"}).duplicates == 1
    # same change delivered by a second webhook (new identifier): still one row
    assert jira_post(store, body, {**h, "X-Atlassian-Webhook-Identifier": "d-2"}).duplicates == 1
    evs = store.pending_events("jira.transition")
    assert len(evs) == 1
    assert evs[0].payload["issue_id"] == "10001"
    assert evs[0].payload["to_category"] == "done"


def test_headers_case_insensitive_and_identifier_dedupe_without_changelog_id(store: StateStore) -> None:
    body = jira_body(changelog_id=None)
    h = {"x-hub-signature": sign(body), "x-atlassian-webhook-identifier": "d-9"}
    assert jira_post(store, body, h).status == 202
    assert store.count_pending("jira.transition") == 0  # no changelog -> not a status change
    body = jira_body()
    h = {"x-hub-signature": sign(body), "x-atlassian-webhook-identifier": "d-9"}
    assert jira_post(store, body, h).staged == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature": "sha256=" + "0" * 64},
        {"X-Hub-Signature": "sha1=abc"},
        {"X-Hub-Signature": "garbage"},
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": "Basic dXNlcjpwdw=="},
    ],
)
def test_forged_or_unsigned_rejected_nothing_staged(store: StateStore, headers: dict[str, str]) -> None:
    res = jira_post(store, jira_body(), headers)
    assert res.status == 401
    assert store.count_pending() == 0


def test_signature_over_other_body_rejected(store: StateStore) -> None:
    body = jira_body()
    res = jira_post(store, jira_body(issue_id="10002"), {"X-Hub-Signature": sign(body)})
    assert res.status == 401
    assert store.count_pending() == 0


def test_no_secret_configured_rejects_signed(store: StateStore) -> None:
    body = jira_body()
    res = intake.handle_jira_webhook(
        {"X-Hub-Signature": sign(body)}, body, webhook_secret=None, client_secret=None, store=store
    )
    assert res.status == 401


def test_non_status_events_accepted_not_staged(store: StateStore) -> None:
    for body in (jira_body(field="summary"), jira_body(event="comment_created")):
        res = jira_post(store, body, {"X-Hub-Signature": sign(body)})
        assert res.status == 202
        assert res.staged == 0
    assert store.count_pending() == 0


def test_oversized_and_unparsable(store: StateStore) -> None:
    big = b" " * (intake.MAX_JIRA_BODY + 1)
    assert jira_post(store, big, {"X-Hub-Signature": sign(big)}).status == 413
    bad = b"{nope"
    assert jira_post(store, bad, {"X-Hub-Signature": sign(bad)}).status == 400


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], secret: str = CLIENT_SECRET, alg: str = "HS256") -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def test_app_jwt_accepted(store: StateStore) -> None:
    token = make_jwt({"iss": "client", "exp": int(time.time()) + 60, "iat": int(time.time())})
    res = jira_post(store, jira_body(), {"Authorization": f"Bearer {token}"})
    assert (res.status, res.staged, res.verified_by) == (202, 1, "jwt")


@pytest.mark.parametrize(
    "token",
    [
        make_jwt({"exp": int(time.time()) - 3600}),  # expired
        make_jwt({"iat": int(time.time())}),  # no exp
        make_jwt({"exp": int(time.time()) + 60}, secret="other"),  # wrong key
        make_jwt({"exp": int(time.time()) + 60}, alg="none"),  # alg none
        make_jwt({"exp": int(time.time()) + 60}, alg="HS512"),  # another alg (signed HS256 anyway)
        make_jwt({"exp": int(time.time()) + 60, "nbf": int(time.time()) + 3600}),  # not yet valid
        make_jwt({"exp": int(time.time()) + 7200, "iat": int(time.time()) + 3600}),  # issued in the future
        make_jwt({"exp": int(time.time()) + 60, "iat": "yesterday"}),  # iat not a number
        make_jwt({"exp": str(int(time.time()) + 60)}),  # exp not a number
    ],
)
def test_bad_jwt_rejected(store: StateStore, token: str) -> None:
    assert jira_post(store, jira_body(), {"Authorization": f"Bearer {token}"}).status == 401
    assert store.count_pending() == 0


def test_unsigned_alg_none_token_rejected(store: StateStore) -> None:
    """``alg: none`` with an empty signature (the classic bypass), not only a mislabelled HS256 token."""
    head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"exp": int(time.time()) + 60}).encode())
    res = jira_post(store, jira_body(), {"Authorization": f"Bearer {head}.{claims}."})
    assert res.status == 401
    assert store.count_pending() == 0


def test_small_clock_skew_on_iat_is_tolerated(store: StateStore) -> None:
    now = int(time.time())
    token = make_jwt({"iat": now + 20, "exp": now + 200})
    assert jira_post(store, jira_body(), {"Authorization": f"Bearer {token}"}).staged == 1


def test_jwt_claim_names_logged_at_debug_never_values(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_jwt({"exp": int(time.time()) + 60, "iat": int(time.time()), "sub": "value-not-to-log"})
    with caplog.at_level("DEBUG", logger="bc_jira.edges.intake"):
        assert jira_post(store, jira_body(), {"Authorization": f"Bearer {token}"}).status == 202
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "['exp', 'iat', 'sub']" in text
    assert "value-not-to-log" not in text
    assert token not in text


# -- late retries, reused identifiers, tombstones --------------------------------------------------------


def test_late_retry_after_processing_is_a_duplicate_not_staged_again(store: StateStore) -> None:
    body = jira_body()
    h = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "late-1"}
    assert jira_post(store, body, h).staged == 1
    # the DAG processed the event and deleted it (promise 2: deleted only after its effect is done)
    for ev in store.pending_events("jira.transition"):
        store.delete_event(ev.id)
    late = jira_post(store, body, {**h, "X-Atlassian-Webhook-Retry": "5"})
    assert (late.status, late.staged, late.duplicates) == (202, 0, 1)
    assert store.count_pending() == 0
    assert store.count_deliveries() == 1


def test_bc_notification_repeated_after_processing_is_a_duplicate(store: StateStore) -> None:
    assert bc_post(store, [bc_item()]).staged == 1
    for ev in store.pending_events("bc.purchase_invoices"):
        store.delete_event(ev.id)
    again = bc_post(store, [bc_item()])
    assert (again.status, again.staged, again.duplicates) == (202, 0, 1)
    assert store.count_pending() == 0


def test_reused_identifier_with_other_body_is_a_conflicting_duplicate(store: StateStore) -> None:
    first, second = jira_body(changelog_id="700"), jira_body(issue_id="10009", changelog_id="701")
    h = {"X-Atlassian-Webhook-Identifier": "same-id"}
    assert jira_post(store, first, {**h, "X-Hub-Signature": sign(first)}).staged == 1
    res = jira_post(store, second, {**h, "X-Hub-Signature": sign(second)})
    assert (res.status, res.staged, res.duplicates, res.reason) == (202, 0, 1, "conflicting duplicate")
    assert res.body["conflict"] is True
    evs = store.pending_events("jira.transition")
    assert [e.payload["changelog_id"] for e in evs] == ["700"]
    rows = store.query_audit(action="duplicate_conflict")
    assert len(rows) == 1
    assert rows[0].issue_key == "FIN-9"
    assert "same-id" in rows[0].reason
    assert rows[0].read["body_sha256"] == hashlib.sha256(second).hexdigest()


def test_tombstones_purged_after_their_ttl(store: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from bc_jira.store import events as store_events

    body = jira_body()
    h = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "ttl-1"}
    monkeypatch.setenv(intake.TOMBSTONE_HOURS_ENV, "0.5")
    assert jira_post(store, body, h).staged == 1
    for ev in store.pending_events():
        store.delete_event(ev.id)
    real_now = store_events.utcnow
    monkeypatch.setattr(store_events, "utcnow", lambda: real_now() + dt.timedelta(minutes=29))
    assert jira_post(store, body, h).duplicates == 1  # inside the TTL: still remembered
    assert store.count_deliveries() == 1
    monkeypatch.setattr(store_events, "utcnow", lambda: real_now() + dt.timedelta(minutes=31))
    other = jira_body(issue_id="10003", changelog_id="900")
    jira_post(store, other, {"X-Hub-Signature": sign(other), "X-Atlassian-Webhook-Identifier": "ttl-2"})
    assert store.count_deliveries() == 1  # ttl-1 purged, ttl-2 kept


def test_tombstone_ttl_setting() -> None:
    assert intake.tombstone_ttl({}).total_seconds() == 24 * 3600
    assert intake.tombstone_ttl({intake.TOMBSTONE_HOURS_ENV: "48"}).total_seconds() == 48 * 3600
    assert intake.tombstone_ttl({intake.TOMBSTONE_HOURS_ENV: "-1"}).total_seconds() == 24 * 3600
    assert intake.tombstone_ttl({intake.TOMBSTONE_HOURS_ENV: "soon"}).total_seconds() == 24 * 3600


def test_concurrent_twins_stage_once(store: StateStore) -> None:
    """The same delivery arriving twice at the same moment (two api-server workers): one staging."""
    import threading

    body = jira_body(changelog_id="42")
    h = {"X-Hub-Signature": sign(body), "X-Atlassian-Webhook-Identifier": "twin"}
    out: list[intake.IntakeResult] = []
    threads = [threading.Thread(target=lambda: out.append(jira_post(store, body, h))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.staged for r in out) == [0, 0, 0, 1]
    assert store.count_pending() == 1


# -- poison input ------------------------------------------------------------------------------------------

DEEP = b"[" * 100_000 + b"]" * 100_000


def test_deeply_nested_jira_body_is_400_not_503(store: StateStore) -> None:
    res = intake.safely(lambda: jira_post(store, DEEP, {"X-Hub-Signature": sign(DEEP)}), "test")
    assert res.status == 400
    assert "depth 128" in res.body["error"]
    assert "size" in res.body["error"]
    assert store.count_pending() == 0
    assert store.count_deliveries() == 0


def test_deeply_nested_bc_body_is_400(store: StateStore) -> None:
    deep = b'{"value": ' + DEEP + b"}"
    res = intake.safely(lambda: intake.handle_bc_notification({}, deep, client_state=CS, store=store), "test")
    assert res.status == 400
    assert "deeper than 128" in res.body["error"]
    assert store.count_pending() == 0


# -- the parsing steps (pure) -------------------------------------------------------------------------------


def test_bc_item_payload_names_entity_record_and_scan_window() -> None:
    key, payload = intake.bc_item_payload(bc_item(entity="vendors", rid="V1")) or ("", {})
    assert key.startswith("bc:sub-1|")
    assert payload["entity"] == "vendors"
    assert payload["record_id"] == "v1"
    assert payload["scan"] is None
    assert payload["company_id"] == COMPANY
    collection = {
        **bc_item(),
        "changeType": "collection",
        "resource": f"api/v2.0/companies({COMPANY})/vendors",
    }
    staged = intake.bc_item_payload(collection)
    assert staged is not None
    assert staged[1]["scan"] == {"since": None}
    assert intake.bc_item_payload(bc_item(entity="items")) is None  # not an entity we subscribe to


def test_transition_of_reads_only_status_changes() -> None:
    payload = json.loads(jira_body())
    row = intake.transition_of(payload, {"X-Atlassian-Webhook-Retry": "1"}, "d-1", "hmac")
    assert row is not None
    assert row["delivery_id"] == "d-1"
    assert row["retry"] == "1"
    assert row["verified_by"] == "hmac"
    assert intake.transition_of({**payload, "webhookEvent": "jira:issue_created"}, {}, "d-2", "jwt") is None
    assert intake.transition_of({**payload, "changelog": {"items": []}}, {}, "d-3", "jwt") is None


def _post_for(store: StateStore, items: list[Any], companies: set[str]) -> intake.IntakeResult:
    body = json.dumps({"value": items}).encode()
    return intake.handle_bc_notification({}, body, client_state=CS, store=store, companies=companies)


def test_bc_items_of_a_company_not_configured_are_refused(store: StateStore) -> None:
    """Only a subscription of a company removed from ``companies`` sends these: 410 (BC deletes it) and
    nothing staged. A delivery that mixes in a wanted company's items is accepted (a 4xx would make BC
    delete the wanted subscription too); only the wanted items are staged."""
    other = "0000aaaa-0000-4000-8000-000000000002"
    foreign = dict(bc_item(), resource=f"api/v2.0/companies({other})/purchaseInvoices(AB)")
    res = _post_for(store, [foreign], {COMPANY})
    assert res.status == 410
    assert other in res.body["error"]
    assert store.count_pending() == 0
    mixed = _post_for(store, [foreign, bc_item()], {COMPANY})
    assert (mixed.status, mixed.staged, mixed.dropped) == (202, 1, 1)
    assert [e.payload["company_id"] for e in store.pending_events()] == [COMPANY]
    # a forged item beside a foreign one: 202 as for any forged item (nothing to learn, nothing deleted)
    forged = _post_for(store, [foreign, bc_item(state="forged")], {COMPANY})
    assert (forged.status, forged.staged) == (202, 0)
    # every configured company is accepted; no list (no subscription stored yet): everything, as before
    assert _post_for(store, [foreign], {COMPANY, other}).staged == 1
    assert bc_post(store, [dict(foreign, lastModifiedDateTime="2026-03-02T00:00:00Z")]).staged == 1

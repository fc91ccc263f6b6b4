"""BC + Entra sandbox over real HTTP, driven by BusinessCentralHook with MSAL's real client."""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from bc_jira.entra import clear_token_cache
from bc_jira.hooks.business_central import BusinessCentralHook
from bc_jira.http import ClientError, PreconditionFailed, TransportError
from tests.conftest import IN_CI, SHARED_SPECS
from tests.support.bc_hook import sandbox_bc_settings

if TYPE_CHECKING:
    from collections.abc import Iterator

SPEC_PATHS = [
    Path(__file__).resolve().parents[3] / "include/bc_jira_sandbox/bc-api-v2-entities.json",
    SHARED_SPECS / "bc-api-v2-entities.json",
]
SPEC = json.loads(SPEC_PATHS[0].read_text())
LINES = {"purchaseInvoices": "purchaseInvoiceLines", "purchaseOrders": "purchaseOrderLines"}
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$")


settings_for = sandbox_bc_settings  # the one home: tests/support/bc_hook.py


@pytest.fixture
def hook(sandbox: Any) -> BusinessCentralHook:
    clear_token_cache()
    return BusinessCentralHook(settings=settings_for(sandbox))


def validate(entity: str, record: dict[str, Any]) -> None:
    """Field names, JSON types, formats, max lengths and enum members exactly as the spec lists them."""
    props = {p["name"]: p for p in SPEC["entities"][entity]["properties"]}
    data = {k: v for k, v in record.items() if not k.startswith("@odata.")}
    assert set(data) <= set(props), f"{entity}: unknown fields {set(data) - set(props)}"
    for name, value in data.items():
        p = props[name]
        if value is None:
            assert p.get("nullable", True), name
            continue
        jt = p["json_type"]
        ok = {
            "string": isinstance(value, str),
            "boolean": isinstance(value, bool),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "number": isinstance(value, int | float) and not isinstance(value, bool),
        }[jt]
        assert ok, f"{entity}.{name}={value!r} is not {jt}"
        fmt = p.get("format")
        if fmt == "uuid":
            assert GUID.match(value), f"{entity}.{name}={value!r}"
        elif fmt == "date":
            assert DATE.match(value), f"{entity}.{name}={value!r}"
        elif fmt == "date-time":
            assert DATETIME.match(value), f"{entity}.{name}={value!r}"
        if p.get("max_length") and isinstance(value, str):
            assert len(value) <= p["max_length"], f"{entity}.{name} too long"
        if p.get("enum"):
            assert value in p["enum_json_values"], f"{entity}.{name}={value!r}"


class Receiver:
    """A tiny notification endpoint on 127.0.0.1: answers handshakes and records notifications."""

    def __init__(self) -> None:
        self.handshakes: list[str] = []
        self.notifications: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.mode = "echo"  # echo | wrong
        self.methods: list[str] = []  # the HTTP method of each handshake
        self.answer_get = True  # False: a receiver that routes only POST (405 to a GET handshake)
        self.statuses: list[int] = []  # answers for the next notifications (default 202)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                token = parse_qs(urlsplit(self.path).query).get("validationToken", [None])[0]
                if token is None or not outer.answer_get:
                    self._send(405, b"", "text/plain")
                    return
                outer.handshakes.append(token)
                outer.methods.append("GET")
                self._send(200, (token if outer.mode == "echo" else "nope").encode(), "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                token = parse_qs(urlsplit(self.path).query).get("validationToken", [None])[0]
                if token is not None:
                    outer.handshakes.append(token)
                    outer.methods.append("POST")
                    answer = token if outer.mode == "echo" else "nope"
                    self._send(200, answer.encode(), "text/plain")
                    return
                # headers first: wait() returns as soon as the notification is in, and reads headers next
                outer.headers.append(dict(self.headers))
                outer.notifications.append(json.loads(body))
                status = outer.statuses.pop(0) if outer.statuses else 202
                self._send(status, b"", "text/plain")

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bc-jira/bc/notifications"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, n: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.notifications) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.notifications

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def events(sandbox: Any) -> dict[str, int]:
    return sandbox.stats()["events"]


# -- reading -------------------------------------------------------------------------------------------------


def test_hook_reads_pages_with_msal(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=20, invoices=45, orders=5)
    recs = list(
        hook.iter_modified(
            "purchaseInvoices",
            "2000-01-01T00:00:00Z",
            None,
            page_size=10,
            select=["number", "status", "totalAmountIncludingTax"],
        )
    )
    assert len(recs) == 45
    assert len({r["id"] for r in recs}) == 45
    stamps = [datetime.fromisoformat(r["lastModifiedDateTime"].replace("Z", "+00:00")) for r in recs]
    assert stamps == sorted(stamps)
    assert set(recs[0]) == {
        "@odata.etag",
        "id",
        "lastModifiedDateTime",
        "number",
        "status",
        "totalAmountIncludingTax",
    }
    st = sandbox.stats()
    pages = st["calls"]["GET /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/{entity}"]
    assert pages == 5
    assert st["events"]["entra.token"] == 1  # MSAL cached the token across pages


def test_window_filter_is_exclusive_inclusive(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=10, invoices=30, orders=0)
    all_recs = list(hook.iter_modified("purchaseInvoices", None))
    lo, hi = all_recs[5]["lastModifiedDateTime"], all_recs[20]["lastModifiedDateTime"]
    window = list(hook.iter_modified("purchaseInvoices", lo, hi))
    assert [r["id"] for r in window] == [r["id"] for r in all_recs[6:21]]


def test_odata_filters_select_orderby_top_skip(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=30, invoices=40, orders=15)
    drafts = list(hook.iter_modified("purchaseInvoices", None, extra_filter={"status": "Draft"}))
    assert drafts
    assert all(r["status"] == "Draft" for r in drafts)
    review = list(hook.iter_records("purchaseOrders", filter="status eq 'In_x0020_Review'"))
    assert review
    assert all(r["status"] == "In Review" for r in review)
    blocked = list(hook.iter_records("vendors", filter="blocked eq 'Payment' or blocked eq 'All'"))
    assert {v["blocked"] for v in blocked} == {"Payment", "All"}
    c = hook.client
    path = f"companies({sandbox.creds['company_id']})/vendors"
    body = c.get_json(path, params={"$orderby": "number desc", "$top": 3, "$skip": 2, "$select": "number"})
    numbers = [v["number"] for v in body["value"]]
    everything = sorted((v["number"] for v in hook.iter_records("vendors")), reverse=True)
    assert numbers == everything[2:5]
    assert "@odata.nextLink" not in body
    first = everything[0]
    one = c.get_json(path, params={"$filter": f"number eq '{first}'"})["value"]
    assert len(one) == 1
    assert one[0]["number"] == first
    # a quoted DateTimeOffset is a type error in OData v4, as on the real service
    with pytest.raises(ClientError) as ei:
        c.get_json(path, params={"$filter": "lastModifiedDateTime gt '2026-01-01T00:00:00Z'"})
    assert ei.value.status == 400
    assert "incompatible types" in ei.value.message
    with pytest.raises(ClientError):
        c.get_json(path, params={"$filter": "blocked eq ' '"})  # enum members are _x0020_-encoded
    with pytest.raises(ClientError):
        c.get_json(path, params={"$select": "nosuchfield"})


def test_top_with_paging_and_maxpagesize_header(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=25, invoices=0, orders=0)
    c = hook.client
    path = f"companies({sandbox.creds['company_id']})/vendors"
    resp = c.request("GET", path, params={"$top": 7}, headers={"Prefer": "odata.maxpagesize=3"})
    assert resp.headers["Preference-Applied"] == "odata.maxpagesize=3"
    seen = resp.json()["value"]
    nxt = resp.json().get("@odata.nextLink")
    while nxt:
        body = c.get_json(nxt, headers={"Prefer": "odata.maxpagesize=3"})
        seen += body["value"]
        nxt = body.get("@odata.nextLink")
    assert len(seen) == 7


def test_record_modified_mid_scan_is_not_lost(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=12, invoices=0, orders=0)
    gen = hook.iter_modified("vendors", None, page_size=4)
    first = [next(gen) for _ in range(4)]
    # a user edits a record of page 1 while we read: it moves to the end (new lastModifiedDateTime)
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",
        {"entity": "vendors", "id": first[0]["id"], "set": {"phoneNumber": "+45 1234"}},
    )
    rest = list(gen)
    ids = [r["id"] for r in first + rest]
    assert len(set(ids)) == 12
    assert ids.count(first[0]["id"]) == 2


# -- writing -------------------------------------------------------------------------------------------------


def test_post_draft_invoice_keeps_id(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=10, invoices=12, orders=0)
    draft = next(
        r
        for r in hook.iter_records("purchaseInvoices", filter="status eq 'Draft'")
        if hook.get_record("vendors", r["vendorId"])["blocked"] != "All"
    )
    hook.post_purchase_invoice(draft["id"])
    posted = hook.get_record("purchaseInvoices", draft["id"])
    assert posted["id"] == draft["id"]
    assert posted["status"] == "Open"
    assert posted["number"] != draft["number"]
    assert posted["number"].startswith("108")
    assert posted["lastModifiedDateTime"] > draft["lastModifiedDateTime"]
    assert posted["@odata.etag"] != draft["@odata.etag"]
    with pytest.raises(ClientError) as ei:
        hook.post_purchase_invoice(draft["id"])
    assert ei.value.code == "Application_DialogException"
    assert "draft invoice only" in ei.value.message


def test_post_for_vendor_blocked_all_fails(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=20, invoices=0, orders=0)
    vendor = next(hook.iter_records("vendors", filter="blocked eq 'All'"))
    body = {"entity": "purchaseInvoices", "create": {"vendorId": vendor["id"]}}
    created = sandbox.control("POST", "/_sandbox/bc/change", body)["records"][0]
    assert created["status"] == "Draft"
    assert created["vendorNumber"] == vendor["number"]
    with pytest.raises(ClientError) as ei:
        hook.post_purchase_invoice(created["id"])
    assert "blocked with type All" in ei.value.message


def test_unblock_vendor_with_if_match(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=20, invoices=0, orders=0)
    vendor = next(hook.iter_records("vendors", filter="blocked eq 'All'"))
    stale = vendor["@odata.etag"]
    done = hook.unblock_vendor(vendor["id"], stale)
    assert done["blocked"] == ""
    assert done["@odata.etag"] != stale
    raw = sandbox.control("GET", "/_sandbox/bc/records/vendors")["value"]
    assert next(v for v in raw if v["id"] == vendor["id"])["blocked"] == "_x0020_"
    with pytest.raises(PreconditionFailed) as ei:
        hook.set_vendor_blocked(vendor["id"], "Payment", stale)
    assert ei.value.status == 412
    assert ei.value.code == "Request_EntityChanged"
    with pytest.raises(ClientError) as ei2:  # If-Match is required
        hook.client.patch_json(
            f"companies({sandbox.creds['company_id']})/vendors({vendor['id']})", json={"blocked": "All"}
        )
    assert ei2.value.code == "BadRequest_InvalidToken"
    with pytest.raises(ClientError):  # un-encoded blank is not an enum member
        hook.client.patch_json(
            f"companies({sandbox.creds['company_id']})/vendors({vendor['id']})",
            json={"blocked": " "},
            headers={"If-Match": "*"},
        )


def test_expired_token_refreshed_once(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=3, invoices=0, orders=0)
    assert len(list(hook.iter_records("vendors"))) == 3
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 7200})
    assert len(list(hook.iter_records("vendors"))) == 3
    assert events(sandbox)["entra.token"] == 2


# -- test_connection -----------------------------------------------------------------------------------------


def test_test_connection_true_via_airflow_connection(sandbox: Any, airflow_conns: dict[str, str]) -> None:
    clear_token_cache()
    ok, msg = BusinessCentralHook().test_connection()
    assert ok, msg
    assert "CRONUS" in msg


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"client_secret": "wrong-secret-value"}, "AADSTS7000215"),
        ({"tenant_id": "11111111-2222-4333-8444-555555555555"}, "AADSTS90002"),
        ({"client_id": "11111111-2222-4333-8444-555555555555"}, "AADSTS700016"),
        ({"environment": "sandbox"}, "Environment 'sandbox' not found"),
        ({"company_id": "11111111-2222-4333-8444-555555555555"}, "Unknown company"),
    ],
)
def test_test_connection_false(sandbox: Any, over: dict[str, str], needle: str) -> None:
    clear_token_cache()
    ok, msg = BusinessCentralHook(settings=settings_for(sandbox, **over)).test_connection()
    assert not ok, msg
    assert needle in msg, msg
    assert sandbox.creds["bc_client_secret"] not in msg


def test_missing_or_bad_bearer_is_401_in_bc_shape(sandbox: Any) -> None:
    c = sandbox.creds
    url = f"{sandbox.url}/v2.0/{c['tenant_id']}/production/api/v2.0/companies"
    for headers in ({}, {"Authorization": "Bearer abc.def.ghi"}):
        resp = requests.get(url, headers=headers, timeout=10)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "Authentication_InvalidCredentials"


# -- subscriptions and notifications -------------------------------------------------------------------------


def test_subscription_handshake_notify_renew_delete(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    sandbox.reset(vendors=10, invoices=5, orders=0)
    sub = hook.create_subscription(receiver.url, "vendors")
    assert len(receiver.handshakes) == 1
    validate("subscriptions", sub)
    assert sub["clientState"] == sandbox.creds["bc_client_state"]
    vendor = next(hook.iter_records("vendors"))
    for phone in ("+45 1", "+45 2"):  # two edits within the batching delay merge into one notification
        sandbox.control(
            "POST",
            "/_sandbox/bc/change",
            {"entity": "vendors", "id": vendor["id"], "set": {"phoneNumber": phone}},
        )
    sandbox.control(
        "POST",
        "/_sandbox/bc/change",  # a null update is not notified
        {"entity": "vendors", "id": vendor["id"], "set": {"phoneNumber": "+45 2"}},
    )
    got = receiver.wait(1)
    assert len(got) == 1
    assert len(got[0]["value"]) == 1
    item = got[0]["value"][0]
    assert set(item) == {
        "subscriptionId",
        "clientState",
        "expirationDateTime",
        "resource",
        "changeType",
        "lastModifiedDateTime",
    }
    assert item["subscriptionId"] == sub["subscriptionId"]
    assert item["changeType"] == "updated"
    assert item["clientState"] == sandbox.creds["bc_client_state"]
    assert item["resource"] == f"api/v2.0/companies({sandbox.creds['company_id']})/vendors({vendor['id']})"
    hdr = {k.lower(): v for k, v in receiver.headers[0].items()}
    assert hdr["clientrequestid"] == hdr["x-ms-correlation-id"]
    assert "authorization" not in hdr
    # invoices are not subscribed: no notification for them
    sandbox.control("POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "create": {}})
    renewed = hook.renew_subscription(sub["subscriptionId"])
    assert len(receiver.handshakes) == 2
    assert renewed["expirationDateTime"] >= sub["expirationDateTime"]
    with pytest.raises(PreconditionFailed):
        hook.renew_subscription(sub["subscriptionId"], etag=sub["@odata.etag"])
    assert [s["subscriptionId"] for s in hook.list_subscriptions()] == [sub["subscriptionId"]]
    assert hook.delete_subscription(sub["subscriptionId"]) is True
    assert hook.list_subscriptions() == []
    assert hook.delete_subscription(sub["subscriptionId"]) is False
    time.sleep(1.5)
    assert len(receiver.notifications) == 1


def test_subscription_create_fails_without_handshake(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    receiver.mode = "wrong"
    with pytest.raises(ClientError) as ei:
        hook.create_subscription(receiver.url, "purchaseInvoices")
    assert "validationToken" in ei.value.message
    assert hook.list_subscriptions() == []
    with pytest.raises(ClientError):  # BC sends no webhooks for purchase orders
        hook.create_subscription(receiver.url, "purchaseOrders")


def test_renewal_needs_the_documented_body_and_handshakes(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    """Learn (dynamics_subscriptions_update): PATCH with If-Match and the body {notificationUrl, resource,
    clientState}; "PATCH requests will perform a handshake". An empty body or another resource is refused."""
    sub = hook.create_subscription(receiver.url, "vendors")
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 86400})
    path = f"subscriptions('{sub['subscriptionId']}')"
    headers = {"If-Match": sub["@odata.etag"]}
    with pytest.raises(ClientError) as empty:
        hook.client.request("PATCH", path, json={}, headers=headers)
    assert empty.value.status == 400
    assert "notificationUrl and resource" in empty.value.message
    moved = {**hook_body(sub), "resource": sub["resource"].replace("/vendors", "/purchaseInvoices")}
    with pytest.raises(ClientError) as other:
        hook.client.request("PATCH", path, json=moved, headers=headers)
    assert other.value.status == 400
    assert "does not match" in other.value.message
    assert len(receiver.handshakes) == 1  # refused before any handshake; nothing changed
    assert hook.get_subscription(sub["subscriptionId"])["expirationDateTime"] == sub["expirationDateTime"]
    renewed = hook.renew_subscription(sub["subscriptionId"])  # the documented body
    assert len(receiver.handshakes) == 2
    left = datetime.fromisoformat(
        renewed["expirationDateTime"].replace("Z", "+00:00")
    ) - datetime.fromisoformat(sub["expirationDateTime"].replace("Z", "+00:00"))
    assert 86000 < left.total_seconds() < 86800  # three days from now, one day later than before
    receiver.mode = "wrong"  # BC validates the endpoint on renewal too
    with pytest.raises(ClientError, match="validat"):
        hook.renew_subscription(sub["subscriptionId"])


def hook_body(sub: dict[str, Any]) -> dict[str, Any]:
    return {k: sub[k] for k in ("notificationUrl", "resource", "clientState")}


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_handshake_method_is_a_setting(
    method: str, sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    """Learn documents the validationToken query parameter, not the HTTP method: the sandbox can send both."""
    assert sandbox.control("POST", "/_sandbox/bc/options", {"handshake_method": method}) == {
        "handshake_method": method
    }
    sub = hook.create_subscription(receiver.url, "purchaseInvoices")
    hook.renew_subscription(sub["subscriptionId"])
    assert receiver.methods == [method, method]
    hook.delete_subscription(sub["subscriptionId"])
    receiver.answer_get = False  # a receiver that routes only POST
    if method == "GET":
        with pytest.raises(ClientError, match="validated"):
            hook.create_subscription(receiver.url, "purchaseInvoices")
    else:
        assert hook.create_subscription(receiver.url, "purchaseInvoices")["subscriptionId"]
    bad = requests.post(f"{sandbox.url}/_sandbox/bc/options", json={"handshake_method": "PUT"}, timeout=10)
    assert bad.status_code == 400


def test_subscription_deleted_on_plain_4xx(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    sandbox.reset(vendors=5, invoices=3, orders=0)
    hook.create_subscription(receiver.url, "purchaseInvoices")
    receiver.statuses = [400]
    sandbox.control("POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "create": {}})
    receiver.wait(1)
    deadline = time.monotonic() + 5
    while hook.list_subscriptions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hook.list_subscriptions() == []


def test_notification_retried_after_503(sandbox: Any, hook: BusinessCentralHook, receiver: Receiver) -> None:
    sandbox.reset(vendors=5, invoices=3, orders=0)
    hook.create_subscription(receiver.url, "purchaseInvoices")
    receiver.statuses = [503]
    created = sandbox.control("POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "create": {}})[
        "records"
    ][0]
    got = receiver.wait(2, timeout=15)  # retry delay: BC's 60 s scaled by notify_delay_s/30 (1 s in tests)
    assert len(got) == 2
    assert got[0] == got[1]
    assert got[1]["value"][0]["changeType"] == "created"
    assert created["id"] in got[1]["value"][0]["resource"]
    assert len(hook.list_subscriptions()) == 1


def test_collection_notification_over_1000_changes(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    sandbox.reset(vendors=1005, invoices=0, orders=0)
    hook.create_subscription(receiver.url, "vendors")
    sandbox.control("POST", "/_sandbox/bc/change", {"entity": "vendors", "touch": 1001})
    got = receiver.wait(1)
    items = got[0]["value"]
    assert len(items) == 1
    assert items[0]["changeType"] == "collection"
    m = re.search(r"\?\$filter=lastModifiedDateTime%20gt%20(\S+Z)$", items[0]["resource"])
    assert m, items[0]["resource"]
    changed = list(hook.iter_modified("vendors", m.group(1)))
    assert len(changed) == 1001


# -- fidelity: payloads against the spec field list ----------------------------------------------------------


def test_payloads_match_spec(sandbox: Any, hook: BusinessCentralHook) -> None:
    sandbox.reset(vendors=30, invoices=40, orders=15)
    c = hook.client
    cid = sandbox.creds["company_id"]
    for company in hook.list_companies():
        validate("companies", company)
    for entity in ("vendors", "purchaseInvoices", "purchaseOrders"):
        lines = LINES.get(entity)
        params = {"$expand": lines} if lines else None
        body = c.get_json(f"companies({cid})/{entity}", params=params)
        assert body["value"], entity
        for rec in body["value"]:
            assert rec["@odata.etag"].startswith('W/"')
            for line in rec.pop(lines, []) if lines else []:
                validate(lines, line)
            validate(entity, rec)
            expected = {p["name"] for p in SPEC["entities"][entity]["properties"]}
            assert set(rec) - {"@odata.etag"} == expected  # every field, nothing else
    raw = c.get_json(f"companies({cid})/purchaseInvoices")["value"]
    assert {r["currencyCode"] for r in raw} >= {"", "EUR", "USD", "GBP"}
    assert {r["status"] for r in raw} == {"Draft", "Open", "Paid"}
    orders = c.get_json(f"companies({cid})/purchaseOrders")["value"]
    assert {r["status"] for r in orders} == {"Draft", "In_x0020_Review", "Open"}
    vendors = c.get_json(f"companies({cid})/vendors")["value"]
    assert {r["blocked"] for r in vendors} == {"_x0020_", "Payment", "All"}


def test_vendored_spec_matches_shared_copy() -> None:
    shared = SPEC_PATHS[1]
    if not shared.exists():
        if IN_CI:
            pytest.fail(f"{shared} missing: CI lays shared/ beside the checkout")
        pytest.skip("shared spec directory not present on this machine")
    assert json.loads(shared.read_text()) == SPEC


def test_seed_is_deterministic_and_fast() -> None:
    from bc_jira_sandbox.core import Options, Sandbox

    sb1 = Sandbox(Options(seed=7, seed_vendors=0, seed_invoices=0, seed_orders=0))
    sb2 = Sandbox(Options(seed=7, seed_vendors=0, seed_invoices=0, seed_orders=0))
    start = time.perf_counter()
    sb1.seed(vendors=50, invoices=1000, orders=20)
    elapsed = time.perf_counter() - start
    sb2.seed(vendors=50, invoices=1000, orders=20)
    assert elapsed < 1.0, f"seeding took {elapsed:.2f}s"

    def strip(recs: dict[str, Any]) -> list[tuple[str, str, Any]]:
        return [(r["id"], r["number"], r.get("totalAmountIncludingTax")) for r in recs.values()]

    assert strip(sb1.bc.records["purchaseInvoices"]) == strip(sb2.bc.records["purchaseInvoices"])
    assert len(sb1.bc.records["purchaseInvoices"]) == 1000


# -- faults through the shared HTTP policy -------------------------------------------------------------------


def test_429_retry_after_honoured_and_dropped_post_not_repeated(sandbox: Any) -> None:
    sandbox.reset(vendors=5, invoices=10, orders=0)
    waits: list[float] = []
    h = BusinessCentralHook(settings=settings_for(sandbox), sleep=waits.append)
    sandbox.faults(rules=[{"kind": "429", "path": "/vendors$", "count": 2, "retry_after": 3}])
    assert len(list(h.iter_records("vendors"))) == 5
    assert waits == [3.0, 3.0]
    draft = next(
        r
        for r in h.iter_records("purchaseInvoices", filter="status eq 'Draft'")
        if h.get_record("vendors", r["vendorId"])["blocked"] != "All"
    )
    sandbox.faults(rules=[{"kind": "drop_after_commit", "path": "Microsoft.NAV.post", "count": 1}])
    with pytest.raises(TransportError):
        h.post_purchase_invoice(draft["id"])
    calls = sandbox.stats()["calls"]
    assert sum(v for k, v in calls.items() if k.endswith("Microsoft.NAV.post")) == 1  # not repeated
    assert h.get_record("purchaseInvoices", draft["id"])["status"] == "Open"  # it was applied


# -- deletes and the `in` filter -------------------------------------------------------------------------


def test_delete_needs_if_match_answers_204_and_notifies_deleted(
    sandbox: Any, hook: BusinessCentralHook, receiver: Receiver
) -> None:
    sandbox.reset(vendors=5, invoices=12, orders=0)
    hook.create_subscription(receiver.url, "purchaseInvoices")
    draft = next(hook.iter_records("purchaseInvoices", filter="status eq 'Draft'"))
    path = f"companies({sandbox.creds['company_id']})/purchaseInvoices({draft['id']})"
    with pytest.raises(ClientError) as missing:
        hook.client.request("DELETE", path)
    assert missing.value.code == "BadRequest_InvalidToken"
    with pytest.raises(PreconditionFailed):
        hook.client.request("DELETE", path, headers={"If-Match": 'W/"stale"'})
    answer = hook.client.request("DELETE", path, headers={"If-Match": draft["@odata.etag"]})
    assert answer.status_code == 204
    assert answer.content == b""
    assert draft["id"] not in {r["id"] for r in hook.iter_records("purchaseInvoices")}
    got = receiver.wait(1)
    items = [i for n in got for i in n["value"]]
    assert [(i["changeType"], i["resource"].rsplit("(", 1)[1].rstrip(")")) for i in items] == [
        ("deleted", draft["id"])
    ]
    with pytest.raises(ClientError) as gone:  # a second DELETE: the record is gone
        hook.client.request("DELETE", path, headers={"If-Match": "*"})
    assert gone.value.status == 404


def test_posted_invoice_and_vendor_with_open_documents_cannot_be_deleted(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=5, invoices=12, orders=3)
    cid = sandbox.creds["company_id"]
    posted = next(hook.iter_records("purchaseInvoices", filter="status eq 'Open'"))
    with pytest.raises(ClientError) as ei:
        hook.client.request(
            "DELETE", f"companies({cid})/purchaseInvoices({posted['id']})", headers={"If-Match": "*"}
        )
    assert ei.value.status == 400
    assert ei.value.code == "Application_DialogException"
    draft = next(hook.iter_records("purchaseInvoices", filter="status eq 'Draft'"))
    with pytest.raises(ClientError) as ev:
        hook.client.request(
            "DELETE", f"companies({cid})/vendors({draft['vendorId']})", headers={"If-Match": "*"}
        )
    assert "outstanding" in ev.value.message
    fresh = sandbox.control("POST", "/_sandbox/bc/change", {"entity": "vendors", "create": {}})["records"][0]
    done = hook.client.request(
        "DELETE", f"companies({cid})/vendors({fresh['id']})", headers={"If-Match": "*"}
    )
    assert done.status_code == 204
    assert posted["id"] in {r["id"] for r in hook.iter_records("purchaseInvoices")}


def test_in_filter_matches_a_list_of_guids_and_refuses_long_lists(
    sandbox: Any, hook: BusinessCentralHook
) -> None:
    sandbox.reset(vendors=30, invoices=0, orders=0)
    ids = [v["id"] for v in hook.iter_records("vendors")]
    want = ids[:3] + ["00000000-0000-4000-8000-00000000dead"]
    got = list(hook.iter_records("vendors", filter=f"id in ({', '.join(want)})", select=["id"]))
    assert sorted(r["id"] for r in got) == sorted(ids[:3])
    assert all(set(r) == {"@odata.etag", "id"} for r in got)
    path = f"companies({sandbox.creds['company_id']})/vendors"
    with pytest.raises(ClientError) as quoted:  # an Edm.Guid literal is unquoted, as for `eq`
        hook.client.get_json(path, params={"$filter": f"id in ('{ids[0]}')"})
    assert "incompatible types" in quoted.value.message
    with pytest.raises(ClientError) as nodes:  # short literals: over OData's node count, under the URL limit
        hook.client.get_json(path, params={"$filter": f"balance in ({','.join(str(n) for n in range(101))})"})
    assert nodes.value.status == 400
    assert "node count limit" in nodes.value.message
    many = [f"00000000-0000-4000-8000-{n:012x}" for n in range(70)]
    with pytest.raises(ClientError) as long:
        hook.client.get_json(path, params={"$filter": f"id in ({','.join(many)})"})
    assert long.value.status == 414
    with pytest.raises(ClientError) as syntax:
        hook.client.get_json(path, params={"$filter": f"id in {ids[0]}"})
    assert syntax.value.status == 400

"""Several companies in the sandbox's BC environment, over real HTTP: listing, isolation, 404/403,
per-company notifications, control routes and pages that take a company."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from tests.conftest import SandboxProcess
from tests.support.receiver import Receiver

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class Bc:
    """Raw BC API v2.0 calls with a real client-credentials token (status codes and bodies as they come)."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        c = sandbox.creds
        tok = requests.post(
            f"{sandbox.url}/{c['tenant_id']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": c["bc_client_id"],
                "client_secret": c["bc_client_secret"],
                "scope": "https://api.businesscentral.dynamics.com/.default",
            },
            timeout=10,
        )
        tok.raise_for_status()
        self.headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        self.root = f"{sandbox.url}/v2.0/{c['tenant_id']}/{c['environment']}/api/v2.0"

    def get(self, path: str, **params: str) -> requests.Response:
        return requests.get(f"{self.root}/{path}", headers=self.headers, params=params, timeout=10)

    def post(self, path: str, body: Any) -> requests.Response:
        return requests.post(f"{self.root}/{path}", headers=self.headers, json=body, timeout=10)

    def companies(self) -> list[dict[str, Any]]:
        resp = self.get("companies")
        assert resp.status_code == 200, resp.text
        return list(resp.json()["value"])

    def records(self, company_id: str, entity: str) -> list[dict[str, Any]]:
        resp = self.get(f"companies({company_id})/{entity}")
        assert resp.status_code == 200, resp.text
        return list(resp.json()["value"])


@pytest.fixture
def three(sandbox: SandboxProcess) -> SandboxProcess:
    """The session's sandbox reset with three companies (the next test's reset goes back to one)."""
    sandbox.reset(companies=3)
    return sandbox


def test_companies_are_listed_with_distinct_ids_and_names(three: SandboxProcess) -> None:
    bc = Bc(three)
    listed = bc.companies()
    assert [c["name"] for c in listed] == ["CRONUS DK", "CRONUS US", "CRONUS CA"]
    assert [c["displayName"] for c in listed] == [
        "CRONUS Danmark A/S",
        "CRONUS USA, Inc.",
        "CRONUS Canada, Inc.",
    ]
    assert listed[0]["id"] == three.creds["company_id"]
    assert len({c["id"] for c in listed}) == 3
    assert all(GUID.match(c["id"]) for c in listed)
    one = bc.get("companies", **{"$filter": "name eq 'CRONUS US'"}).json()["value"]
    assert [c["id"] for c in one] == [listed[1]["id"]]
    # same seed, same ids: a second reset gives the same companies
    three.reset(companies=3)
    assert [c["id"] for c in bc.companies()] == [c["id"] for c in listed]


def test_default_is_one_company_with_the_data_it_always_had(sandbox: SandboxProcess) -> None:
    bc = Bc(sandbox)
    assert [c["id"] for c in bc.companies()] == [sandbox.creds["company_id"]]
    first = {r["id"]: r for r in bc.records(sandbox.creds["company_id"], "purchaseInvoices")}
    sandbox.reset(companies=3)
    again = {r["id"]: r for r in bc.records(sandbox.creds["company_id"], "purchaseInvoices")}
    assert again.keys() == first.keys()  # more companies leave company 1's seeded data as it was
    assert {k: v["totalAmountIncludingTax"] for k, v in again.items()} == {
        k: v["totalAmountIncludingTax"] for k, v in first.items()
    }


def test_each_company_has_its_own_records(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    per = {
        cid: {e: bc.records(cid, e) for e in ("vendors", "purchaseInvoices", "purchaseOrders")} for cid in ids
    }
    for cid in ids:
        assert len(per[cid]["vendors"]) == 25
        assert len(per[cid]["purchaseInvoices"]) == 60
    inv_ids = [{r["id"] for r in per[cid]["purchaseInvoices"]} for cid in ids]
    assert not inv_ids[0] & inv_ids[1]
    assert not inv_ids[1] & inv_ids[2]
    vendor_ids = [{r["id"] for r in per[cid]["vendors"]} for cid in ids]
    assert not vendor_ids[0] & vendor_ids[1]
    # a record of company 2 is not found under company 1 (and its lines and attachments stay with it)
    theirs = per[ids[1]]["purchaseInvoices"][0]
    assert bc.get(f"companies({ids[1]})/purchaseInvoices({theirs['id']})").status_code == 200
    miss = bc.get(f"companies({ids[0]})/purchaseInvoices({theirs['id']})")
    assert miss.status_code == 404
    assert miss.json()["error"]["code"] == "Internal_RecordNotFound"
    lines = bc.get(f"companies({ids[1]})/purchaseInvoices({theirs['id']})/purchaseInvoiceLines")
    assert lines.status_code == 200
    assert lines.json()["value"]
    assert {ln["documentId"] for ln in lines.json()["value"]} == {theirs["id"]}
    expanded = bc.get(f"companies({ids[1]})/purchaseInvoices", **{"$expand": "documentAttachments"}).json()
    links = [
        a["attachmentContent@odata.mediaReadLink"]
        for r in expanded["value"]
        for a in r["documentAttachments"]
    ]
    assert links
    assert all(f"companies({ids[1]})/" in u for u in links)
    # own number series: company 2's vendors start at V10010 too
    assert min(r["number"] for r in per[ids[1]]["vendors"]) == "V10010"


def test_unknown_company_is_bc_s_company_not_found(three: SandboxProcess) -> None:
    bc = Bc(three)
    resp = bc.get("companies(00000000-0000-0000-0000-00000000abcd)/vendors")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "Internal_CompanyNotFound"


def test_revoked_permission_answers_403_in_that_company_only(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    row = three.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS US", "access": False})
    assert row["id"] == ids[1]
    assert row["access"] is False
    denied = bc.get(f"companies({ids[1]})/purchaseInvoices")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_InsufficientPermissions"
    assert bc.get(f"companies({ids[1]})").status_code == 403
    assert bc.get(f"companies({ids[0]})/purchaseInvoices").status_code == 200
    assert bc.get(f"companies({ids[2]})/purchaseInvoices").status_code == 200
    assert ids[1] in [c["id"] for c in bc.companies()]  # still listed
    sub = bc.post(
        "subscriptions",
        {"notificationUrl": "http://127.0.0.1:9/x", "resource": f"/api/v2.0/companies({ids[1]})/vendors"},
    )
    assert sub.status_code == 403
    three.control("POST", "/_sandbox/bc/companies", {"company": ids[1], "access": True})
    assert bc.get(f"companies({ids[1]})/purchaseInvoices").status_code == 200


def test_deleted_company_is_gone(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    three.control("POST", "/_sandbox/bc/companies", {"company": "CRONUS CA", "delete": True})
    assert [c["id"] for c in bc.companies()] == ids[:2]
    gone = bc.get(f"companies({ids[2]})/vendors")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Internal_CompanyNotFound"
    listed = three.control("GET", "/_sandbox/bc/companies")["value"]
    assert [c["deleted"] for c in listed] == [False, False, True]
    bad = requests.post(
        f"{three.url}/_sandbox/bc/change",
        json={"company": "CRONUS CA", "entity": "vendors", "create": {}},
        timeout=10,
    )
    assert bad.status_code == 404


def test_control_change_takes_a_company(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    made = three.control(
        "POST", "/_sandbox/bc/change", {"company": "CRONUS US", "entity": "purchaseInvoices", "create": {}}
    )
    rec = made["records"][0]
    assert bc.get(f"companies({ids[1]})/purchaseInvoices({rec['id']})").status_code == 200
    assert bc.get(f"companies({ids[0]})/purchaseInvoices({rec['id']})").status_code == 404
    # by id, in a list of changes with the body's company as default
    three.control(
        "POST",
        "/_sandbox/bc/change",
        {
            "company": ids[1],
            "changes": [
                {"entity": "purchaseInvoices", "id": rec["id"], "set": {"vendorInvoiceNumber": "X-1"}}
            ],
        },
    )
    got = bc.get(f"companies({ids[1]})/purchaseInvoices({rec['id']})").json()
    assert got["vendorInvoiceNumber"] == "X-1"
    dump = three.control("GET", f"/_sandbox/bc/records/purchaseInvoices?company={ids[1]}")["value"]
    assert rec["id"] in {r["id"] for r in dump}
    assert rec["id"] not in {
        r["id"] for r in three.control("GET", "/_sandbox/bc/records/purchaseInvoices")["value"]
    }
    # without a company: company 1, as before
    plain = three.control("POST", "/_sandbox/bc/change", {"entity": "vendors", "create": {}})["records"][0]
    assert bc.get(f"companies({ids[0]})/vendors({plain['id']})").status_code == 200
    att = three.control(
        "POST", "/_sandbox/bc/attachments", {"company": "CRONUS US", "invoice": rec["id"], "kind": "png"}
    )
    assert att["parentId"] == rec["id"]
    assert [
        a["id"] for a in three.control("GET", f"/_sandbox/bc/attachments/{rec['id']}?company=CRONUS%20US")
    ] == [att["id"]]


def test_change_in_one_company_notifies_only_its_subscription(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    receiver = Receiver()
    try:
        for n, cid in enumerate(ids[:2]):
            resp = bc.post(
                "subscriptions",
                {
                    "notificationUrl": f"{receiver.base}/c{n}",
                    "resource": f"/api/v2.0/companies({cid})/purchaseInvoices",
                    "clientState": f"cs{n}",
                },
            )
            assert resp.status_code == 201, resp.text
        assert len(bc.get("subscriptions").json()["value"]) == 2  # environment-level
        made = three.control(
            "POST",
            "/_sandbox/bc/change",
            {"company": "CRONUS US", "entity": "purchaseInvoices", "create": {}},
        )
        rec = made["records"][0]
        body = receiver.wait("/c1", lambda b: True)
        (item,) = body["value"]
        assert item["resource"] == f"api/v2.0/companies({ids[1]})/purchaseInvoices({rec['id']})"
        assert item["changeType"] == "created"
        assert item["clientState"] == "cs1"
        time.sleep(1.5)  # notify_delay_s is 1 s in tests: company 1's subscription had its chance
        assert receiver.bodies("/c0") == []
        three.control("POST", "/_sandbox/bc/change", {"entity": "purchaseInvoices", "touch": 1})
        other = receiver.wait("/c0", lambda b: True)
        assert all(f"companies({ids[0]})/" in i["resource"] for i in other["value"])
    finally:
        receiver.close()


def test_calls_are_counted_per_company(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    requests.post(f"{three.url}/_sandbox/stats/reset", timeout=5)
    for _ in range(3):
        bc.get(f"companies({ids[1]})/vendors")
    bc.get(f"companies({ids[0]})/vendors")
    stats = three.stats()
    assert stats["company_calls"] == {ids[1]: 3, ids[0]: 1}
    key = "GET /v2.0/{tenant}/{environment}/api/v2.0/companies({company_id})/{entity}"
    assert stats["calls"][key] == 4  # route templates as before


def test_bc_pages_take_a_company(three: SandboxProcess) -> None:
    bc = Bc(three)
    ids = [c["id"] for c in bc.companies()]
    theirs = bc.records(ids[1], "vendors")[0]
    mine = bc.records(ids[0], "vendors")[0]
    page = requests.get(f"{three.url}/bc-web", params={"company": "CRONUS US", "page": "27"}, timeout=10)
    assert page.status_code == 200
    assert "CRONUS US" in page.text
    assert "company=CRONUS+US" in page.text  # its links stay in that company
    card = requests.get(
        f"{three.url}/bc-web",
        params={"company": "CRONUS US", "page": "26", "filter": f"'No.' IS '{theirs['number']}'"},
        timeout=10,
    )
    assert card.status_code == 200
    assert theirs["id"] in card.text
    default = requests.get(
        f"{three.url}/bc-web", params={"page": "26", "filter": f"'No.' IS '{mine['number']}'"}, timeout=10
    )
    assert mine["id"] in default.text
    unknown = requests.get(f"{three.url}/bc-web", params={"company": "NOPE", "page": "27"}, timeout=10)
    assert unknown.status_code == 404


def test_serve_companies_option_starts_with_n_companies() -> None:
    proc = SandboxProcess(
        "--companies", "2", "--seed-invoices", "3", "--seed-vendors", "2", "--seed-orders", "0"
    )
    try:
        bc = Bc(proc)
        listed = bc.companies()
        assert [c["name"] for c in listed] == ["CRONUS DK", "CRONUS US"]
        assert len(bc.records(listed[1]["id"], "purchaseInvoices")) == 3
        # a reset without "companies" keeps the served number
        proc.control("POST", "/_sandbox/reset", {})
        assert len(bc.companies()) == 2
        bad = requests.post(f"{proc.url}/_sandbox/reset", json={"companies": 0}, timeout=10)
        assert bad.status_code == 400
    finally:
        proc.stop()


def test_data_file_keeps_every_company(tmp_path: Any) -> None:
    from bc_jira_sandbox.core import Options, Sandbox

    path = str(tmp_path / "state.pickle")
    opts = dict(seed=5, seed_vendors=2, seed_invoices=2, seed_orders=0, companies=2, data_file=path)
    first = Sandbox(Options(**opts))
    first.bc_companies[1].revoked = True
    first.save()
    again = Sandbox(Options(**opts))
    assert [s.company["id"] for s in again.bc_companies] == [s.company["id"] for s in first.bc_companies]
    assert (
        again.bc_companies[1].records["purchaseInvoices"].keys()
        == first.bc_companies[1].records["purchaseInvoices"].keys()
    )
    assert again.bc_companies[1].revoked
    assert again.bc_companies[1].subscriptions is again.bc.subscriptions  # still one environment

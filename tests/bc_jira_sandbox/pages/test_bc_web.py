"""The sandbox's BC web client over real HTTP: the connector's "Open in Business Central" links land on the
record's card, lists show each record's status (escaped), and the buttons change BC as a user would,
with the same change notifications as ``POST /_sandbox/bc/change``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
import requests

from bc_jira.config import parse_config
from bc_jira.entities import ENTITIES, spec
from bc_jira.mapping import bc_link
from tests.support.bc_hook import sandbox_bc_hook
from tests.support.receiver import Receiver

if TYPE_CHECKING:
    from collections.abc import Iterator

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def records(sandbox: Any, entity_set: str) -> list[dict[str, Any]]:
    return sandbox.control("GET", f"/_sandbox/bc/records/{entity_set}")["value"]


def get(sandbox: Any, query: str) -> requests.Response:
    return requests.get(f"{sandbox.url}/bc-web{query}", timeout=10)


def post(sandbox: Any, path: str, **form: str) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/bc-web{path}", data=form, headers=FORM, allow_redirects=False, timeout=10
    )


@pytest.fixture
def bc(sandbox: Any) -> Any:
    sandbox.reset(vendors=15, invoices=12, orders=6)
    return sandbox


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def subscribe(sandbox: Any, receiver: Receiver, entity_set: str) -> str:
    """A BC subscription to ``receiver`` made the connector's way (the hook, MSAL, the handshake)."""
    hook = sandbox_bc_hook(sandbox)
    path = f"/bc/{entity_set}"
    hook.create_subscription(f"{receiver.base}{path}", entity_set)
    return path


def test_every_link_the_connector_writes_lands_on_that_records_card(bc: Any) -> None:
    cfg = parse_config(json.loads(bc.env()["AIRFLOW_VAR_BC_JIRA_CONFIG"]))  # what airflow-env exports
    assert cfg.bc_web_client_url == f"{bc.url}/bc-web"
    seen = set()
    for entity in ENTITIES:
        for rec in records(bc, spec(entity).entity_set):
            url = bc_link(cfg, entity, rec)
            assert url is not None
            page = requests.get(url, timeout=10)
            assert page.status_code == 200, (url, page.text[:300])
            assert f"<th>No.</th><td>{rec['number']}</td>" in page.text
            assert f"id {rec['id']}" in page.text
            seen.add(url.split("page=")[1].split("&")[0])
    assert seen == {"26", "51", "138", "50"}  # vendor, draft and posted invoice, order cards


def test_lists_show_records_with_their_status(bc: Any) -> None:
    invoices = records(bc, "purchaseInvoices")
    drafts = [r for r in invoices if r["status"] == "Draft"]
    posted = [r for r in invoices if r["status"] != "Draft"]
    assert drafts
    assert posted
    html = get(bc, "?page=9308").text
    assert f"{len(drafts)} record(s)" in html
    assert all(f">{r['number']}</a>" in html for r in drafts)
    assert not [r for r in posted if f">{r['number']}</a>" in html]
    assert "New draft invoice" in html
    html = get(bc, "?page=146").text
    assert all(f">{r['number']}</a>" in html for r in posted)
    assert all(f"<td>{status}</td>" in html for status in {r["status"] for r in posted})
    orders = records(bc, "purchaseOrders")
    html = get(bc, "?page=9307").text
    assert all(f">{r['number']}</a>" in html for r in orders)
    if any(r["status"] == "In_x0020_Review" for r in orders):
        assert "<td>In Review</td>" in html
    assert "_x0020_" not in html
    vendors = records(bc, "vendors")
    html = get(bc, "?page=27").text
    assert all(f">{r['number']}</a>" in html for r in vendors)
    blocked = [r for r in vendors if r["blocked"] in ("Payment", "All")]
    assert blocked
    assert html.count("Block all") == len(vendors) - len(blocked)  # a block button on each unblocked vendor
    home = get(bc, "").text
    assert all(f"page={p}" in home for p in (9308, 146, 27, 9307))


def test_values_are_escaped_on_lists_and_cards(bc: Any) -> None:
    v = records(bc, "vendors")[0]
    evil = '<img src=x onerror=alert(1)> "A&B"'
    bc.control(
        "POST", "/_sandbox/bc/change", {"entity": "vendors", "id": v["id"], "set": {"displayName": evil}}
    )
    for query in ("?page=27", f"?page=26&filter='No.' IS '{v['number']}'"):
        html = get(bc, query).text
        assert "<img" not in html
        assert "&lt;img src=x onerror=alert(1)&gt; &quot;A&amp;B&quot;" in html


def test_new_draft_invoice_button_enters_a_draft_and_bc_notifies(bc: Any, receiver: Receiver) -> None:
    path = subscribe(bc, receiver, "purchaseInvoices")
    before = {r["id"] for r in records(bc, "purchaseInvoices")}
    resp = post(bc, "/purchase-invoices/new")
    assert resp.status_code == 303
    new = [r for r in records(bc, "purchaseInvoices") if r["id"] not in before]
    assert len(new) == 1
    assert new[0]["status"] == "Draft"
    assert resp.headers["location"] == f"/bc-web?page=51&filter=%27No.%27+IS+%27{new[0]['number']}%27"
    card = requests.get(f"{bc.url}{resp.headers['location']}", timeout=10).text
    assert f"<th>No.</th><td>{new[0]['number']}</td>" in card
    note = receiver.wait(path, lambda b: any(new[0]["id"] in i["resource"] for i in b["value"]))
    item = next(i for i in note["value"] if new[0]["id"] in i["resource"])
    assert item["changeType"] == "created"
    assert item["clientState"] == bc.creds["bc_client_state"]


def test_block_vendor_button_blocks_it_and_bc_notifies(bc: Any, receiver: Receiver) -> None:
    path = subscribe(bc, receiver, "vendors")
    v = next(r for r in records(bc, "vendors") if r["blocked"] not in ("Payment", "All"))
    resp = post(bc, "/vendors/block", id=v["id"], blocked="All")
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/bc-web?page=26&filter=%27No.%27+IS+%27{v['number']}%27"
    after = next(r for r in records(bc, "vendors") if r["id"] == v["id"])
    assert after["blocked"] == "All"
    note = receiver.wait(path, lambda b: any(v["id"] in i["resource"] for i in b["value"]))
    item = next(i for i in note["value"] if v["id"] in i["resource"])
    assert item["changeType"] == "updated"
    assert item["lastModifiedDateTime"] == after["lastModifiedDateTime"]
    card = requests.get(f"{bc.url}{resp.headers['location']}", timeout=10).text
    assert "<th>Blocked</th><td>All</td>" in card
    assert "Block all" not in card  # nothing left to block


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("?page=abc", 404),
        ("?page=22", 404),  # not a page of the sandbox
        ("?page=26", 400),  # a card needs a record
        ("?page=26&filter='Name' IS 'x'", 400),  # only No. filters
        ("?page=26&filter=No. = 1", 400),
        ("?page=26&filter='No.' IS 'V0'", 404),
    ],
)
def test_bad_urls_are_4xx_pages(bc: Any, query: str, status: int) -> None:
    resp = get(bc, query)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("text/html")


def test_bad_block_presses_are_4xx_and_change_nothing(bc: Any) -> None:
    v = next(r for r in records(bc, "vendors") if r["blocked"] not in ("Payment", "All"))
    assert post(bc, "/vendors/block", id=v["id"], blocked="Nope").status_code == 400
    assert (
        post(bc, "/vendors/block", id="00000000-0000-0000-0000-000000000009", blocked="All").status_code
        == 404
    )
    assert post(bc, "/vendors/block", blocked="All").status_code == 404
    as_json = requests.post(
        f"{bc.url}/bc-web/vendors/block", json={"id": v["id"], "blocked": "All"}, timeout=10
    )
    assert as_json.status_code == 400
    assert next(r for r in records(bc, "vendors") if r["id"] == v["id"])["blocked"] == v["blocked"]

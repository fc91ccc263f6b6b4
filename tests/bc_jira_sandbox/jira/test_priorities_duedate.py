"""The sandbox's Jira priorities (catalogue, schemes, the project's scheme enforced on create/edit), the
system field ``duedate`` (dates only), ``ORDER BY duedate`` and ADF tables checked like the ADF schema."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.jira_http import SandboxJira


@pytest.fixture
def jira(sandbox: Any) -> SandboxJira:
    return SandboxJira(sandbox)


def _fields(jira: SandboxJira, key: str) -> dict[str, Any]:
    resp = jira.call("GET", f"issue/{key}", params={"fields": "priority,duedate"})
    assert resp.status_code == 200, resp.text
    return resp.json()["fields"]


def test_priority_catalogue_and_the_projects_scheme(jira: SandboxJira) -> None:
    everything = jira.call("GET", "priority").json()
    assert [p["name"] for p in everything] == ["Highest", "High", "Medium", "Low", "Lowest", "Critical"]
    schemes = jira.call("GET", "priorityscheme", params={"expand": "priorities,projects"}).json()
    assert schemes["isLast"] is True
    ours = [s for s in schemes["values"] if any(p["key"] == "FIN" for p in s["projects"]["values"])]
    assert [s["name"] for s in ours] == ["Default Priority Scheme"]
    names = [p["name"] for p in ours[0]["priorities"]["values"]]
    assert names == ["Highest", "High", "Medium", "Low", "Lowest"]  # no Critical
    paged = jira.call("GET", f"priorityscheme/{ours[0]['id']}/priorities", params={"maxResults": 2}).json()
    assert (paged["total"], len(paged["values"]), paged["isLast"]) == (5, 2, False)
    project = jira.call("GET", "project/FIN").json()
    search = jira.call("GET", "priority/search", params={"projectId": project["id"]}).json()
    assert "Critical" not in [p["name"] for p in search["values"]]
    assert jira.call("GET", "priorityscheme/424242/priorities").status_code == 400


def test_create_and_edit_take_a_priority_of_the_scheme_only(jira: SandboxJira) -> None:
    by_name = jira.create("by name", priority={"name": "High"})
    assert by_name.status_code == 201, by_name.text
    assert _fields(jira, by_name.json()["key"])["priority"]["name"] == "High"
    default = jira.create("no priority")
    assert _fields(jira, default.json()["key"])["priority"]["name"] == "Medium"
    outside = jira.create("not in scheme", priority={"name": "Critical"})
    assert outside.status_code == 400
    assert outside.json()["errors"] == {"priority": "The priority selected is invalid."}
    unknown = jira.create("unknown", priority={"id": "999"})
    assert unknown.json()["errors"]["priority"] == "The priority selected is invalid."
    shape = jira.create("bare string", priority="High")
    assert shape.json()["errors"]["priority"] == "Specify the Priority (id or name) in the string format"
    key = by_name.json()["key"]
    assert jira.call("PUT", f"issue/{key}", {"fields": {"priority": {"id": "1"}}}).status_code == 204
    assert _fields(jira, key)["priority"]["name"] == "Highest"
    bad_edit = jira.call("PUT", f"issue/{key}", {"fields": {"priority": {"name": "Critical"}}})
    assert bad_edit.status_code == 400
    assert _fields(jira, key)["priority"]["name"] == "Highest"  # nothing changed


@pytest.mark.parametrize("bad", ["2026-02-30", "2026-02-01T10:00:00Z", "01/02/2026", 20260201])
def test_duedate_must_be_a_date(jira: SandboxJira, bad: Any) -> None:
    resp = jira.create("bad due", duedate=bad)
    assert resp.status_code == 400
    assert resp.json()["errors"]["duedate"] == f"Error parsing date string: {bad}"


def test_duedate_is_stored_cleared_and_sorted_by(sandbox: Any, jira: SandboxJira) -> None:
    keys = {}
    for name, due in (("late", "2026-09-01"), ("none", None), ("early", "2026-01-15"), ("mid", "2026-05-05")):
        extra = {"duedate": due} if due else {}
        resp = jira.create(name, **extra)
        assert resp.status_code == 201, resp.text
        keys[name] = resp.json()["key"]
    assert _fields(jira, keys["mid"])["duedate"] == "2026-05-05"
    sandbox.control("POST", "/_sandbox/clock", {"advance_s": 5})
    for order, want in (
        ("ASC", ["early", "mid", "late", "none"]),
        ("DESC", ["none", "late", "mid", "early"]),
    ):
        found = jira.call(
            "POST", "search/jql", {"jql": f"project = FIN ORDER BY duedate {order}", "fields": ["summary"]}
        ).json()
        assert [i["fields"]["summary"] for i in found["issues"]] == want
    assert jira.call("PUT", f"issue/{keys['mid']}", {"fields": {"duedate": None}}).status_code == 204
    assert _fields(jira, keys["mid"])["duedate"] is None
    bad = jira.call("POST", "search/jql", {"jql": "project = FIN ORDER BY nosuchfield"})
    assert bad.status_code == 400
    assert "Field 'nosuchfield' does not exist" in bad.json()["errorMessages"][0]


def _table(*rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "table", "content": [{"type": "tableRow", "content": list(r)} for r in rows]}],
    }


def _cell(kind: str, text: str | None) -> dict[str, Any]:
    para = {"type": "paragraph", "content": [{"type": "text", "text": text}] if text else []}
    return {"type": kind, "content": [para]}


def test_adf_tables_are_checked_like_the_adf_schema(jira: SandboxJira) -> None:
    good = _table(
        [_cell("tableHeader", "Qty"), _cell("tableHeader", "Item")],
        [_cell("tableCell", "2"), _cell("tableCell", None)],
    )
    assert jira.create("table", description=good).status_code == 201
    empty_cell = _table([{"type": "tableCell", "content": []}])
    resp = jira.create("empty cell", description=empty_cell)
    assert resp.status_code == 400
    assert "tableCell needs content" in resp.json()["errors"]["description"]
    text_in_cell = _table([{"type": "tableCell", "content": [{"type": "text", "text": "x"}]}])
    assert (
        "not allowed inside 'tableCell'"
        in jira.create("t", description=text_in_cell).json()["errors"]["description"]
    )
    cell_in_table = {
        "type": "doc",
        "version": 1,
        "content": [{"type": "table", "content": [_cell("tableCell", "x")]}],
    }
    assert (
        "not allowed inside 'table'"
        in jira.create("t", description=cell_in_table).json()["errors"]["description"]
    )
    empty_row = _table([])
    assert "tableRow needs content" in jira.create("t", description=empty_row).json()["errors"]["description"]

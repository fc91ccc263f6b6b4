"""The upsert batch's report: issue keys per action (capped), the JQL and links, the mapped task's label."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from bc_jira.sync.base import _Outcome
from bc_jira.sync.report import (
    audit_batch_url,
    batch_label,
    batch_report,
    capped,
    jira_search_url,
    keys_jql,
)


def test_report_lists_keys_per_action_in_jira_order_and_counts_unchanged() -> None:
    outcomes = [
        _Outcome("create", "FIN-10"),
        _Outcome("create", "FIN-9"),
        _Outcome("update", "FIN-2"),
        _Outcome("unchanged", "FIN-3"),
        _Outcome("unchanged", "FIN-4"),
        _Outcome("skipped"),
        _Outcome("error", None),
        _Outcome("claimed", "FIN-7"),
    ]
    rep = batch_report(outcomes)
    assert rep.lines("purchase_invoices") == [
        "purchase_invoices: created 2: FIN-9, FIN-10",
        "purchase_invoices: updated 1: FIN-2",
        "purchase_invoices: unchanged 2 (not listed)",
    ]
    assert rep.all_keys == ["FIN-2", "FIN-3", "FIN-4", "FIN-9", "FIN-10"]  # a claimed record is not ours


def test_long_lists_are_capped_with_the_count_of_the_rest() -> None:
    keys = [f"FIN-{n}" for n in range(1, 251)]
    assert capped(keys, 3) == "FIN-1, FIN-2, FIN-3 and 247 more"
    assert capped(keys[:3], 3) == "FIN-1, FIN-2, FIN-3"
    line = batch_report([_Outcome("create", k) for k in keys]).lines("vendors")[0]
    assert line.startswith("vendors: created 250: FIN-1, FIN-2,")
    assert line.endswith("FIN-20 and 230 more")


def test_jql_names_every_key_and_refuses_what_is_not_a_key() -> None:
    assert keys_jql(["FIN-1", "AB_2-30"]) == "key in (FIN-1, AB_2-30) ORDER BY key ASC"
    assert keys_jql(['FIN-1) OR project = "X', "FIN-", "-3"]) is None
    assert keys_jql([]) is None
    url = jira_search_url("https://acme.atlassian.net/", "key in (FIN-1, FIN-2) ORDER BY key ASC")
    assert url.startswith("https://acme.atlassian.net/issues/?jql=")
    assert parse_qs(urlsplit(url).query)["jql"] == ["key in (FIN-1, FIN-2) ORDER BY key ASC"]


def test_audit_url_names_the_task_instance() -> None:
    url = audit_batch_url("", "bc_vendors_to_jira", "manual__2026-01-01T00:00:00+00:00", "upsert", 3)
    parts = urlsplit(url)
    assert parts.path == "/bc-jira/audit"
    assert parse_qs(parts.query) == {
        "dag": ["bc_vendors_to_jira"],
        "run": ["manual__2026-01-01T00:00:00+00:00"],
        "task": ["upsert"],
        "map_index": ["3"],
    }
    assert "map_index" not in audit_batch_url("https://af.example/", "d", "r", "t", -1)
    assert audit_batch_url("https://af.example/", "d", "r", "t", None).startswith(
        "https://af.example/bc-jira/"
    )


def test_batch_label() -> None:
    assert batch_label(2, 7, 500) == "batch 2/7 · 500 records"
    assert batch_label(1, 1, 1) == "batch 1/1 · 1 record"
    assert batch_label(None, None, 3) == "batch · 3 records"

"""The pure part of attaching the vendor's files: which files, under which name, upload / found / comment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bc_jira.config import ConfigError, parse_config
from bc_jira.entities import navigation_expands
from bc_jira.sync.attachments import File, decide, plan_files, refusal, stable_name
from bc_jira.sync.extract import record_expand

GUID = "1d9af659-82ec-4f2d-bbf6-e16f9b3080d5"


@dataclass
class LinkRow:
    issue_id: str | None
    issue_key: str | None
    state: str


@dataclass
class Eff:
    state: str
    attempts: int = 0
    result: Any = None
    error: str | None = None


def _cfg(**att: Any) -> Any:
    return parse_config({"project_key": "FIN", "attachments": att} if att else {"project_key": "FIN"})


def _file(name: str = "Invoice 7.pdf", size: int = 900) -> File:
    return File("purchase_invoices", "rec-1", "1001", "10001", "FIN-1", GUID, name, size)


def test_stable_name_carries_the_bc_id_and_keeps_the_extension() -> None:
    assert stable_name("Invoice 7.pdf", GUID.upper()) == f"Invoice 7 [bc-{GUID}].pdf"
    assert stable_name("README", GUID) == f"README [bc-{GUID}]"
    assert _file().jira_name == f"Invoice 7 [bc-{GUID}].pdf"


def test_effect_keys_are_stable_and_differ_per_issue_and_kind() -> None:
    f = _file()
    assert f.upload_key == _file().upload_key
    assert f.upload_key != f.comment_key
    other_issue = File(f.entity, f.bc_id, f.document_number, "10002", "FIN-2", GUID, f.file_name, f.size)
    assert other_issue.upload_key != f.upload_key  # a re-created issue gets the file again


def test_plan_takes_files_of_records_whose_issue_exists() -> None:
    records = [
        {
            "id": "a",
            "number": "1",
            "documentAttachments": [{"id": "x1", "fileName": "a.pdf", "byteSize": 10}],
        },
        {"id": "b", "documentAttachments": [{"id": "x2", "fileName": "b.pdf", "byteSize": 10}]},
        {"id": "c", "documentAttachments": [{"id": "x3", "fileName": "c.pdf", "byteSize": 10}]},
        {"id": "d", "documentAttachments": []},
        {"id": "e"},
    ]
    links = {
        "a": LinkRow("10001", "FIN-1", "linked"),
        "b": LinkRow(None, None, "pending"),  # the create's answer was lost: no issue known yet
        "c": LinkRow(None, None, "failed"),
        "d": LinkRow("10004", "FIN-4", "linked"),
    }
    planned = plan_files(_cfg(), "purchase_invoices", records, links)
    assert [(f.bc_id, f.attachment_id, f.issue_id, f.size) for f in planned] == [("a", "x1", "10001", 10)]
    assert plan_files(_cfg(enabled=False), "purchase_invoices", records, links) == []
    assert plan_files(_cfg(), "vendors", records, links) == []  # vendors' files are not read


def test_plan_reads_the_older_attachments_entity_when_configured() -> None:
    records = [{"id": "a", "attachments": [{"id": "x1", "fileName": "a.pdf", "byteSize": 10}]}]
    links = {"a": LinkRow("10001", "FIN-1", "resolved")}
    assert len(plan_files(_cfg(source="attachments"), "purchase_invoices", records, links)) == 1
    assert plan_files(_cfg(), "purchase_invoices", records, links) == []


@pytest.mark.parametrize(
    ("upload", "on_issue", "why_not", "action"),
    [
        (None, {}, None, "upload"),
        (Eff("pending"), {}, None, "upload"),
        (Eff("pending", attempts=1), {f"Invoice 7 [bc-{GUID}].pdf": "10050"}, None, "found"),
        (
            Eff("pending", attempts=1),
            {"Invoice 7.pdf": "10050"},
            None,
            "upload",
        ),  # only the stable name counts
        (Eff("done", result={"jira_attachment_id": "10050"}), None, None, "done"),
        (Eff("pending"), {}, "too big", "comment"),
        (Eff("failed", error="413"), None, None, "comment"),
    ],
)
def test_decide(upload: Any, on_issue: Any, why_not: Any, action: str) -> None:
    assert decide(_file(), upload, on_issue, why_not).action == action


def test_found_and_done_carry_the_jira_id() -> None:
    name = _file().jira_name
    assert decide(_file(), Eff("pending", 1), {name: "10050"}, None).jira_id == "10050"
    assert decide(_file(), Eff("done", result={"jira_attachment_id": "7"}), None, None).jira_id == "7"


def test_refusal_by_size_and_type() -> None:
    cfg = _cfg(max_bytes=1000, allowed_types=["application/pdf"])
    assert refusal(_file(size=1000), cfg) is None
    assert "over the" in (refusal(_file(size=1001), cfg) or "")
    assert "image/png" in (refusal(_file("scan.png"), cfg) or "")
    assert refusal(_file("scan.png"), _cfg()) is None  # image/* by default
    assert refusal(_file("tool.exe"), _cfg()) is not None


def test_expands_combine_into_one_clause() -> None:
    assert navigation_expands("purchase_invoices") == (
        "documentAttachments($select=id,fileName,byteSize,lastModifiedDateTime)"
    )
    assert navigation_expands("vendors") is None
    on = record_expand(_cfg(), "purchase_invoices") or ""
    assert on.startswith("purchaseInvoiceLines(")
    assert ",documentAttachments($select=" in on
    off = record_expand(_cfg(enabled=False), "purchase_invoices") or ""
    assert off.startswith("purchaseInvoiceLines(")
    assert "ttachments" not in off
    assert ",attachments($select=" in (record_expand(_cfg(source="attachments"), "purchase_invoices") or "")
    assert record_expand(_cfg(), "vendors") is None


def test_config_errors_name_the_key_and_the_fix() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"project_key": "FIN", "attachments": {"max_bytes": "10MB", "allowed_types": "pdf"}})
    text = str(exc.value)
    assert "attachments.max_bytes" in text
    assert "10485760" in text
    assert "attachments.allowed_types" in text
    with pytest.raises(ConfigError):
        parse_config({"project_key": "FIN", "attachments": {"enabled": "yes"}})

from __future__ import annotations

import pytest

from bc_jira import adf


def test_doc_paragraph_and_link_are_valid() -> None:
    d = adf.doc(
        adf.paragraph("Hello ", adf.text("world", strong=True)),
        adf.paragraph(adf.link("Open", "https://example.com/x?a=1")),
    )
    assert d["version"] == 1
    assert d["type"] == "doc"
    assert adf.validate(d) == []
    link = d["content"][1]["content"][0]
    assert link["marks"] == [{"type": "link", "attrs": {"href": "https://example.com/x?a=1"}}]


def test_empty_text_is_dropped_not_emitted() -> None:
    p = adf.paragraph("", None, "x", adf.text(""))
    assert p == {"type": "paragraph", "content": [{"type": "text", "text": "x"}]}
    assert adf.text("") is None
    d = adf.doc()
    assert d["content"] == [{"type": "paragraph", "content": []}]
    assert adf.validate(d) == []


def test_facts_table_every_cell_has_a_paragraph() -> None:
    t = adf.facts_table([("Number", "1001"), ("Empty", ""), ("Amount", 12.5)])
    d = adf.doc(t)
    assert adf.validate(d) == []
    rows = t["content"]
    assert [r["content"][0]["type"] for r in rows] == ["tableHeader"] * 3
    assert rows[1]["content"][1]["content"] == [{"type": "paragraph", "content": []}]
    assert rows[2]["content"][1]["content"][0]["content"][0]["text"] == "12.5"


def test_table_with_header() -> None:
    t = adf.table([["a", "b"], []], header=["H1", "H2"])
    assert len(t["content"]) == 2
    assert adf.validate(adf.doc(t)) == []
    with pytest.raises(ValueError, match="at least one row"):
        adf.table([])


def test_control_characters_stripped_and_links_checked() -> None:
    assert adf.text("a\x00b\x07c\n")["text"] == "abc\n"
    with pytest.raises(ValueError, match="must be http"):
        adf.link("x", "javascript:alert(1)")


def test_validate_catches_bad_documents() -> None:
    assert adf.validate({"type": "doc", "content": []})  # no version
    bad = adf.doc({"type": "paragraph", "content": [{"type": "text", "text": ""}]})
    assert adf.validate(bad)
    row = {"type": "tableRow", "content": [{"type": "tableCell"}]}
    bad_cell = adf.doc({"type": "table", "content": [row]})
    assert adf.validate(bad_cell)


def test_plain_multiline() -> None:
    d = adf.plain("line 1\nline 2")
    assert [p["content"][0]["text"] for p in d["content"]] == ["line 1", "line 2"]
    assert adf.validate(d) == []

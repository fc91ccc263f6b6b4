"""Atlassian Document Format builders.

Jira rejects descriptions and comments that are not valid ADF (400), so every node is built here:
``doc`` has version 1, text nodes are never empty, table cells always hold a paragraph, links only
carry http(s) hrefs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

Node = dict[str, Any]

# Jira rejects very large documents; keep individual text nodes bounded.
MAX_TEXT = 32_000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean(text: Any) -> str:
    s = "" if text is None else str(text)
    # Control characters other than newline/tab are not allowed in ADF text.
    return _CONTROL.sub("", s)[:MAX_TEXT]


def text(value: Any, *, strong: bool = False, code: bool = False, href: str | None = None) -> Node | None:
    """A text node, or None when the text is empty (ADF forbids empty text nodes)."""
    s = _clean(value)
    if not s:
        return None
    node: Node = {"type": "text", "text": s}
    marks: list[Node] = []
    if strong:
        marks.append({"type": "strong"})
    if code:
        marks.append({"type": "code"})
    if href:
        marks.append({"type": "link", "attrs": {"href": _href(href)}})
    if marks:
        node["marks"] = marks
    return node


def _href(url: str) -> str:
    if not (url.startswith("https://") or url.startswith("http://")):
        raise ValueError("ADF links must be http(s) URLs")
    return url


def link(label: Any, href: str) -> Node | None:
    """Inline link text; the label falls back to the URL itself."""
    return text(_clean(label) or href, href=href)


def paragraph(*content: Node | str | None) -> Node:
    """A paragraph from inline nodes or plain strings; empty parts are dropped."""
    inline: list[Node] = []
    for part in content:
        node = text(part) if isinstance(part, str) else part
        if node is not None:
            inline.append(node)
    return {"type": "paragraph", "content": inline}


def heading(value: Any, level: int = 3) -> Node:
    if not 1 <= level <= 6:
        raise ValueError("heading level must be 1..6")
    node = text(value)
    return {"type": "heading", "attrs": {"level": level}, "content": [node] if node else []}


def _cell(kind: str, value: Node | str | Any) -> Node:
    if isinstance(value, dict) and value.get("type") == "paragraph":
        para = value
    elif isinstance(value, dict) and value.get("type") == "text":
        para = paragraph(value)
    else:
        para = paragraph(_clean(value))
    return {"type": kind, "content": [para]}


def table(rows: Sequence[Sequence[Any]], *, header: Sequence[str] | None = None) -> Node:
    """A table; each row is a sequence of cell values (strings, text nodes or paragraphs)."""
    out: list[Node] = []
    if header:
        out.append({"type": "tableRow", "content": [_cell("tableHeader", h) for h in header]})
    for row in rows:
        if not row:
            continue
        out.append({"type": "tableRow", "content": [_cell("tableCell", v) for v in row]})
    if not out:
        raise ValueError("an ADF table needs at least one row")
    return {"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"}, "content": out}


def facts_table(facts: Iterable[tuple[str, Any]]) -> Node:
    """Two-column label/value table: the label cell is a header cell, the value a normal cell."""
    rows = []
    for label, value in facts:
        rows.append(
            {
                "type": "tableRow",
                "content": [_cell("tableHeader", label), _cell("tableCell", value)],
            }
        )
    if not rows:
        raise ValueError("facts_table needs at least one fact")
    return {"type": "table", "attrs": {"isNumberColumnEnabled": False, "layout": "default"}, "content": rows}


def doc(*blocks: Node | None) -> Node:
    """The root node; Jira wants at least one block, so an empty doc gets an empty paragraph."""
    content = [b for b in blocks if b is not None]
    return {"version": 1, "type": "doc", "content": content or [paragraph()]}


def plain(value: Any) -> Node:
    """A whole document from plain text: one paragraph per line (comments, outcomes)."""
    lines = _clean(value).split("\n")
    return doc(*(paragraph(line) for line in lines))


# --- canonical form (to tell whether a document changed) ----------------------------------------

# The attributes that change what a reader sees; every other attribute is presentation Jira may add or
# rewrite on the way back (a table's ``localId``, ``width``, ``displayMode``; a cell's ``attrs: {}``:
# https://developer.atlassian.com/cloud/jira/platform/apis/document/nodes/table).
_MEANING_ATTRS = {"heading": ("level",), "link": ("href",), "mention": ("id",), "status": ("text",)}


def canonical(node: Any) -> Any:
    """``node`` reduced to what a reader sees: node types, text (whitespace runs collapsed), marks (as a
    sorted set) and the few attributes that carry meaning. Two documents that read the same compare equal,
    whatever attributes or empty containers Jira added when it stored one of them."""
    if isinstance(node, str):
        return " ".join(node.split())
    if not isinstance(node, dict):
        return None
    kind = node.get("type")
    out: dict[str, Any] = {"t": kind}
    attrs = node.get("attrs") or {}
    kept = {a: attrs[a] for a in _MEANING_ATTRS.get(str(kind), ()) if a in attrs}
    if kept:
        out["a"] = kept
    if kind == "text":
        out["x"] = canonical(node.get("text") or "")
        marks = [canonical(m) for m in node.get("marks") or []]
        if marks:
            out["m"] = sorted(marks, key=lambda m: (str(m.get("t")), str(m.get("a"))))
    content = [canonical(c) for c in node.get("content") or []]
    if content:
        out["c"] = content
    return out


# --- validation (used by tests and as a guard before sending) -----------------------------------

_BLOCKS = {"paragraph", "heading", "table", "bulletList", "orderedList", "rule", "codeBlock", "blockquote"}
_MARKS = {"strong", "em", "code", "link", "strike", "underline"}


def validate(node: Node) -> list[str]:
    """Structural ADF check for the nodes this module builds; returns problems (empty = valid)."""
    problems: list[str] = []
    if node.get("type") != "doc" or node.get("version") != 1 or not isinstance(node.get("content"), list):
        return ["root must be {version: 1, type: doc, content: [...]}"]
    if set(node) - {"type", "version", "content"}:
        problems.append("doc has extra keys")
    for i, block in enumerate(node["content"]):
        _check_block(block, f"content[{i}]", problems)
    return problems


def _check_inline(node: Any, path: str, problems: list[str]) -> None:
    if not isinstance(node, dict) or node.get("type") != "text":
        problems.append(f"{path}: only text inline nodes expected")
        return
    if not isinstance(node.get("text"), str) or not node["text"]:
        problems.append(f"{path}: text must be a non-empty string")
    for j, mark in enumerate(node.get("marks", [])):
        if mark.get("type") not in _MARKS:
            problems.append(f"{path}.marks[{j}]: unknown mark {mark.get('type')!r}")
        if mark.get("type") == "link":
            href = (mark.get("attrs") or {}).get("href", "")
            if not isinstance(href, str) or not href.startswith(("http://", "https://")):
                problems.append(f"{path}.marks[{j}]: link needs an http(s) href")


def _check_block(block: Any, path: str, problems: list[str]) -> None:
    if not isinstance(block, dict) or block.get("type") not in _BLOCKS:
        problems.append(f"{path}: not a known block node")
        return
    kind = block["type"]
    if kind in ("paragraph", "heading"):
        if kind == "heading" and not 1 <= (block.get("attrs") or {}).get("level", 0) <= 6:
            problems.append(f"{path}: heading needs attrs.level 1..6")
        for j, inline in enumerate(block.get("content", [])):
            _check_inline(inline, f"{path}.content[{j}]", problems)
    elif kind == "table":
        rows = block.get("content") or []
        if not rows:
            problems.append(f"{path}: table needs rows")
        for r, row in enumerate(rows):
            if row.get("type") != "tableRow" or not row.get("content"):
                problems.append(f"{path}.content[{r}]: tableRow with cells expected")
                continue
            for c, cell in enumerate(row["content"]):
                cpath = f"{path}.content[{r}].content[{c}]"
                if cell.get("type") not in ("tableCell", "tableHeader") or not cell.get("content"):
                    problems.append(f"{cpath}: tableCell/tableHeader with block content expected")
                    continue
                for b, inner in enumerate(cell["content"]):
                    _check_block(inner, f"{cpath}.content[{b}]", problems)

"""Atlassian Document Format: the node subset Jira accepts here, validated like Jira does."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

_BLOCK_CHILDREN: dict[str, set[str] | None] = {
    "doc": {
        "paragraph",
        "heading",
        "bulletList",
        "orderedList",
        "table",
        "codeBlock",
        "blockquote",
        "rule",
        "panel",
        "mediaSingle",
        "expand",
    },
    "paragraph": {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"},
    "heading": {"text", "hardBreak", "mention", "emoji", "inlineCard", "date", "status"},
    "bulletList": {"listItem"},
    "orderedList": {"listItem"},
    "listItem": {"paragraph", "bulletList", "orderedList", "codeBlock"},
    "table": {"tableRow"},
    "tableRow": {"tableHeader", "tableCell"},
    "tableHeader": {"paragraph", "bulletList", "orderedList", "heading", "codeBlock", "rule", "panel"},
    "tableCell": {"paragraph", "bulletList", "orderedList", "heading", "codeBlock", "rule", "panel"},
    "codeBlock": {"text"},
    "blockquote": {"paragraph", "bulletList", "orderedList", "codeBlock"},
    "panel": {"paragraph", "bulletList", "orderedList", "heading"},
    "expand": {"paragraph", "bulletList", "orderedList", "heading", "table", "codeBlock", "panel"},
    "rule": None,
    "hardBreak": None,
    "text": None,
    "mention": None,
    "emoji": None,
    "inlineCard": None,
    "date": None,
    "status": None,
    "mediaSingle": None,
}
_NEEDS_CONTENT = {"bulletList", "orderedList", "table", "tableRow", "tableHeader", "tableCell", "listItem"}
_MARKS = {"strong", "em", "code", "strike", "underline", "link", "subsup", "textColor"}


def validate_adf(doc: Any) -> str | None:
    """None when ``doc`` is a well-formed ADF document (the node subset Jira accepts here), else why not."""
    if not isinstance(doc, dict) or doc.get("type") != "doc":
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if doc.get("version") != 1 or not isinstance(doc.get("content"), list):
        return "INVALID_INPUT: a doc needs version 1 and a content array"
    extra = set(doc) - {"type", "version", "content"}
    if extra:
        return f"INVALID_INPUT: unexpected keys on doc: {sorted(extra)}"

    for i, child in enumerate(doc["content"]):
        err = _walk(child, "doc", f"content[{i}]")
        if err:
            return err
    return None


def as_stored(doc: Any) -> Any:
    """The document as Jira hands it back after storing it: not byte-for-byte what was sent. Jira's own
    example of a stored table carries attributes a client need not send (``"attrs": {"isNumberColumnEnabled":
    false, "layout": "center", "width": 900, "displayMode": "default"}``, each cell ``"attrs": {}``:
    https://developer.atlassian.com/cloud/jira/platform/apis/document/nodes/table), and stored tables carry a
    ``localId`` (https://bitbucket.org/atlassian/adf-builder-java/issues/112). So the sandbox adds those to
    what it stores: a client that compares a description with what it sent byte for byte sees a change."""
    if not isinstance(doc, dict):
        return doc
    out = copy.deepcopy(doc)
    _store_node(out)
    return out


def _store_node(node: dict[str, Any]) -> None:
    kind = node.get("type")
    if kind == "table":
        # derived from the table, so storing the same document twice stores the same thing (no change)
        local_id = str(uuid.uuid5(uuid.NAMESPACE_URL, json.dumps(node, sort_keys=True)))
        node["attrs"] = {"localId": local_id, "width": 760, "displayMode": "default"} | dict(
            node.get("attrs") or {}
        )
    elif kind in ("tableCell", "tableHeader"):
        node.setdefault("attrs", {})
    for child in node.get("content") or []:
        if isinstance(child, dict):
            _store_node(child)


# -- JQL (the subset the connector and its webhooks use) -----------------------------------------------------


def _walk(node: Any, parent: str, path: str) -> str | None:
    """Why ``node`` (at ``path``, inside a ``parent`` node) is not valid ADF, or None."""
    if not isinstance(node, dict) or not isinstance(node.get("type"), str):
        return f"INVALID_INPUT at {path}: a node must be an object with a type"
    ntype = node["type"]
    allowed = _BLOCK_CHILDREN.get(parent)
    if ntype not in _BLOCK_CHILDREN:
        return f"INVALID_INPUT at {path}: unknown node type {ntype!r}"
    if allowed is None or ntype not in allowed:
        return f"INVALID_INPUT at {path}: {ntype!r} is not allowed inside {parent!r}"
    if ntype == "text":
        return _text_error(node, path)
    if ntype == "heading" and (node.get("attrs") or {}).get("level") not in (1, 2, 3, 4, 5, 6):
        return f"INVALID_INPUT at {path}: heading needs attrs.level 1-6"
    content = node.get("content", [])
    if not isinstance(content, list):
        return f"INVALID_INPUT at {path}: content must be an array"
    # ADF JSON schema (https://unpkg.com/@atlaskit/adf-schema/dist/json-schema/v1/full.json): table_node,
    # table_row_node, table_cell_node and table_header_node all have "content" with "minItems": 1 (a cell
    # holds at least one block, e.g. a paragraph; developer.atlassian.com/cloud/jira/platform/apis/document/
    # nodes/table_cell).
    if ntype in _NEEDS_CONTENT and not content:
        return f"INVALID_INPUT at {path}: {ntype} needs content"
    for i, child in enumerate(content):
        err = _walk(child, ntype, f"{path}.content[{i}]")
        if err:
            return err
    return None


def _text_error(node: dict[str, Any], path: str) -> str | None:
    if not isinstance(node.get("text"), str) or node["text"] == "":
        return f"INVALID_INPUT at {path}: text nodes need a non-empty text"
    for mark in node.get("marks", []) or []:
        if not isinstance(mark, dict) or mark.get("type") not in _MARKS:
            return f"INVALID_INPUT at {path}: unknown mark {mark!r}"
        if mark["type"] == "link" and not (mark.get("attrs") or {}).get("href"):
            return f"INVALID_INPUT at {path}: link marks need attrs.href"
    return None

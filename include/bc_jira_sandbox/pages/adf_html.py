"""Atlassian Document Format as HTML, the way Jira shows a description or a comment (escaped, no scripts).

Node and mark names: https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/ (the
subset :mod:`bc_jira_sandbox.jira.adf` accepts). Only ``http(s)`` link targets become links.
"""

from __future__ import annotations

from typing import Any

from bc_jira_sandbox.pages.html import esc

_BLOCKS = {
    "paragraph": "p",
    "bulletList": "ul",
    "orderedList": "ol",
    "listItem": "li",
    "table": "table",
    "tableRow": "tr",
    "tableHeader": "th",
    "tableCell": "td",
    "blockquote": "blockquote",
    "panel": "div",
    "expand": "div",
}
_MARKS = {"strong": "strong", "em": "em", "code": "code", "strike": "s", "underline": "u"}


def _safe_href(value: object) -> str | None:
    href = str(value or "")
    return href if href.lower().startswith(("http://", "https://")) else None


def _text(node: dict[str, Any]) -> str:
    out = esc(node.get("text", ""))
    for mark in node.get("marks") or []:
        if not isinstance(mark, dict):
            continue
        kind = mark.get("type")
        if kind == "link":
            href = _safe_href((mark.get("attrs") or {}).get("href"))
            if href:
                out = f'<a href="{esc(href)}" rel="noreferrer">{out}</a>'
        elif kind in _MARKS:
            out = f"<{_MARKS[kind]}>{out}</{_MARKS[kind]}>"
    return out


def _inline_atom(kind: str, attrs: dict[str, Any]) -> str | None:
    """Leaf nodes other than text (None when ``kind`` is not one)."""
    if kind == "hardBreak":
        return "<br>"
    if kind == "rule":
        return "<hr>"
    if kind in ("mention", "status"):
        return f'<span class="tag">{esc(attrs.get("text", ""))}</span>'
    if kind == "emoji":
        return esc(attrs.get("text") or attrs.get("shortName") or "")
    if kind == "date":
        return esc(attrs.get("timestamp", ""))
    if kind == "inlineCard":
        href = _safe_href(attrs.get("url"))
        return f'<a href="{esc(href)}">{esc(href)}</a>' if href else ""
    return None


def render(node: Any) -> str:
    """HTML of an ADF node (a whole ``doc`` or any part); unknown nodes render their children."""
    if not isinstance(node, dict):
        return ""
    kind = str(node.get("type", ""))
    if kind == "text":
        return _text(node)
    raw_attrs = node.get("attrs")
    attrs: dict[str, Any] = raw_attrs if isinstance(raw_attrs, dict) else {}
    atom = _inline_atom(kind, attrs)
    if atom is not None:
        return atom
    inner = "".join(render(child) for child in node.get("content") or [])
    if kind == "heading":
        level = attrs.get("level")
        tag = f"h{level}" if level in (1, 2, 3, 4, 5, 6) else "h3"
        return f"<{tag}>{inner}</{tag}>"
    if kind == "codeBlock":
        return f"<pre><code>{inner}</code></pre>"
    if kind == "table":
        return f"<table><tbody>{inner}</tbody></table>"
    block = _BLOCKS.get(kind)
    return f"<{block}>{inner}</{block}>" if block else inner

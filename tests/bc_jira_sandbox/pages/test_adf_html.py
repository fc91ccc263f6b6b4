"""ADF as HTML: the nodes the connector writes (paragraph, strong text, facts table, link), hostile input."""

from __future__ import annotations

from bc_jira.adf import doc, facts_table, link, paragraph, text
from bc_jira_sandbox.pages.adf_html import render


def test_the_connectors_description_renders_as_html() -> None:
    body = doc(
        paragraph("Vendor ", text("V10010", strong=True), " needs a step"),
        facts_table([("Name", "A & B <Ltd>"), ("Blocked", "All")]),
        paragraph(link("Open in Business Central", "http://127.0.0.1:8990/bc-web?page=26&filter=x")),
    )
    html = render(body)
    assert "<p>Vendor <strong>V10010</strong> needs a step</p>" in html
    assert "A &amp; B &lt;Ltd&gt;" in html
    assert "<table><tbody><tr>" in html
    assert '<a href="http://127.0.0.1:8990/bc-web?page=26&amp;filter=x" rel="noreferrer">' in html


def test_hostile_or_odd_nodes_render_as_text_or_nothing() -> None:
    node = {
        "type": "doc",
        "content": [
            {
                "type": "heading",
                "attrs": {"level": "1><script>"},
                "content": [{"type": "text", "text": "<h>"}],
            },
            {
                "type": "text",
                "text": "x",
                "marks": [{"type": "link", "attrs": {"href": "javascript:alert(1)"}}],
            },
            {"type": "inlineCard", "attrs": {"url": "data:text/html,<script>"}},
            {"type": "mention", "attrs": {"text": "@<b>"}},
            {"type": "whatever", "content": [{"type": "hardBreak"}, "not a node", None]},
        ],
    }
    html = render(node)
    assert html == '<h3>&lt;h&gt;</h3>x<span class="tag">@&lt;b&gt;</span><br>'
    assert render(None) == ""
    assert render("<script>") == ""

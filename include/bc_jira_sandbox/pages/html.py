"""The pages' HTML helpers: escaping, the layout, tables and one-button forms."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

# No scripts, nothing from elsewhere; forms post back to this origin only.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#172b4d;background:#f4f5f7}
header{background:#0747a6;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:center;flex-wrap:wrap}
header.bc{background:#00485b}
header a{color:#fff;text-decoration:none}header a:hover{text-decoration:underline}
header b{font-size:16px;margin-right:8px}
main{padding:16px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:18px 0 8px}
table{border-collapse:collapse;background:#fff;margin-bottom:12px}
th,td{border:1px solid #dfe1e6;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#ebecf0}td.num{text-align:right;white-space:nowrap}
.cols{display:flex;gap:12px;align-items:flex-start}
.col{background:#ebecf0;border-radius:4px;padding:8px;width:24%;min-width:220px}
.col h2{margin:0 0 8px;font-size:13px;text-transform:uppercase;color:#5e6c84}
.card{background:#fff;border-radius:3px;box-shadow:0 1px 2px rgba(9,30,66,.25);padding:8px;margin-bottom:8px}
.card .meta{color:#5e6c84;font-size:12px}
.tag{display:inline-block;background:#dfe1e6;border-radius:3px;padding:0 4px;font-size:12px}
form.inline{display:inline;margin:0}
button{cursor:pointer;border:1px solid #0052cc;background:#0052cc;color:#fff;border-radius:3px;
padding:2px 8px}
button.quiet{background:#fff;color:#0052cc}
.note{color:#5e6c84}.err{color:#bf2600}
nav.tabs a{margin-right:12px}
"""


def esc(value: object) -> str:
    """``value`` as HTML text (None is empty): every page value goes through here."""
    return "" if value is None else html.escape(str(value), quote=True)


def link(href: str, text: object, css: str = "") -> str:
    """An ``<a>``; ``href`` is escaped as an attribute, ``text`` as text."""
    cls = f' class="{esc(css)}"' if css else ""
    return f'<a href="{esc(href)}"{cls}>{esc(text)}</a>'


def button(action: str, label: str, fields: dict[str, str] | None = None, *, css: str = "") -> str:
    """One form POST to ``action`` with hidden ``fields``: a button that works without JavaScript."""
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in (fields or {}).items()
    )
    cls = f' class="{esc(css)}"' if css else ""
    return (
        f'<form class="inline" method="post" action="{esc(action)}">{hidden}'
        f'<button type="submit"{cls}>{esc(label)}</button></form>'
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, numeric: Iterable[int] = ()) -> str:
    """A table of pre-rendered cells (escape values with :func:`esc` first); ``numeric`` columns right."""
    right = set(numeric)
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{c}</td>' if i in right else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def facts(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column label/value table (values escaped here)."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in pairs)
    return f'<table class="facts"><tbody>{body}</tbody></table>'


def page(
    title: str, body: str, *, nav: Sequence[tuple[str, str]], brand: str, css: str = "", status: int = 200
) -> HTMLResponse:
    """A whole page: header with ``brand`` and ``nav`` links, ``body`` (already HTML) under an ``<h1>``."""
    links = "".join(link(href, text) for text, href in nav)
    cls = f' class="{esc(css)}"' if css else ""
    doc = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header{cls}><b>{esc(brand)}</b>{links}</header><main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(doc, status_code=status, headers={"Content-Security-Policy": CSP})

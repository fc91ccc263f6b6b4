"""The audit page: one row per synced BC record, its Jira issue, last action, status, error and what to clear.

Server-rendered HTML (no JavaScript), served by the plugin app under ``/bc-jira/audit`` and shown inside the
Airflow UI as a plugin external view. It reads only the state store (``latest_per_record``) and the Jira
connection's site URL (for issue links). Plugin apps get no Airflow auth of their own, so the route requires
an Airflow user: the UI's ``_token`` cookie (sent by the browser inside the UI's iframe) or a bearer JWT.
"""

from __future__ import annotations

import html
import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)

ROUTE = "/audit"
JIRA_CONN_ID = "jira_default"
MAX_LIMIT = 2000
_SITE_CACHE: dict[str, tuple[float, str | None]] = {}
_SITE_TTL_S = 60.0

ENTITY_LABELS = {
    "purchase_invoices": "Purchase invoice",
    "vendors": "Vendor",
    "purchase_orders": "Purchase order",
}

router = APIRouter()

# Airflow 3 plugin external view: a "bc-jira audit" entry under Browse that shows the page inside the UI
# (iframe at /plugin/bc-jira-audit). The plugin: ``external_views = [audit_view.EXTERNAL_VIEW]`` and
# ``app.include_router(audit_view.router)`` on its FastAPI app mounted at ``/bc-jira``.
EXTERNAL_VIEW: dict[str, Any] = {
    "name": "bc-jira audit",
    "href": "/bc-jira/audit",
    "destination": "nav",
    "category": "browse",
    "url_route": "bc-jira-audit",
}


class AuditRecords(Protocol):
    """The one state-store query the page makes."""

    def latest_per_record(
        self, *, text_filter: str | None = None, errors_only: bool = False, limit: int = 500
    ) -> list[dict[str, Any]]: ...


def get_store() -> AuditRecords:
    """The connector's state store (``bc_jira_db`` or the SQLite default); a dependency tests override."""
    from bc_jira.store import StateStore

    return StateStore.from_airflow()


def jira_site_url() -> str | None:
    """``https://<site>.atlassian.net`` from ``jira_default`` (oauth2: extra ``site_url``; basic: host).

    Cached for a minute; None (issue keys shown without links) when the connection is missing or unreadable.
    """
    now = time.monotonic()
    hit = _SITE_CACHE.get(JIRA_CONN_ID)
    if hit and now - hit[0] < _SITE_TTL_S:
        return hit[1]
    site: str | None = None
    try:
        from bc_jira.airflow_conn import get_connection

        conn = get_connection(JIRA_CONN_ID)
        extra = (conn.extra_dejson or {}) if conn is not None else {}
        basic = (extra.get("auth") or "oauth2") == "basic"
        site = extra.get("site_url") or (conn.host if conn is not None and basic else None)
        if site and not site.startswith(("http://", "https://")):
            site = f"https://{site}"
    except Exception as exc:  # noqa: BLE001 - any failure just means "no links", never the content
        log.info("audit view: no Jira site URL from %s (%s)", JIRA_CONN_ID, type(exc).__name__)
    site = site.rstrip("/") if site else None
    _SITE_CACHE[JIRA_CONN_ID] = (now, site)
    return site


@router.get(ROUTE, response_class=HTMLResponse)
async def audit_page(
    q: str | None = Query(None, max_length=200, description="document no., issue key, record id, error"),
    errors: bool = Query(False, description="only records whose last action failed"),
    limit: int = Query(500, ge=1, le=MAX_LIMIT),
    user: Any = Depends(get_user),
    store: AuditRecords = Depends(get_store),
    site: str | None = Depends(jira_site_url),
) -> HTMLResponse:
    rows = await run_in_threadpool(
        store.latest_per_record, text_filter=q or None, errors_only=errors, limit=limit
    )
    body = render_page(rows, text_filter=q or "", errors_only=errors, limit=limit, site_url=site)
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


# -- rendering (pure) --------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,Segoe UI,Roboto,sans-serif;margin:16px;color:#1a202c;background:#fff}
h1{font-size:20px;margin:0 0 4px}
p.sub{margin:0 0 12px;color:#4a5568}
form{display:flex;gap:12px;align-items:center;margin:0 0 12px}
input[type=search]{width:340px;padding:5px 8px;border:1px solid #cbd5e0;border-radius:4px}
button{padding:5px 12px;border:1px solid #3182ce;background:#3182ce;color:#fff;border-radius:4px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#f7fafc;font-weight:600;position:sticky;top:0}
tr.err td{background:#fff5f5}
td.nw{white-space:nowrap}
td.err{color:#c53030;max-width:420px;white-space:pre-wrap;word-break:break-word}
.muted{color:#718096;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#edf2f7}
.b-linked{background:#ebf8ff;color:#2b6cb0}.b-resolved,.b-written_back,.b-done{background:#f0fff4;color:#276749}
.b-failed,.b-error{background:#fed7d7;color:#9b2c2c}.b-pending{background:#fefcbf;color:#975a16}
code{font-size:12px;background:#f7fafc;padding:1px 4px;border-radius:3px}
a{color:#2b6cb0}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value.tzinfo else value.isoformat(sep=" ")
    return _e(value)


def status_of(row: Mapping[str, Any]) -> str:
    """What the reader needs first: the last action failed, else the link's state."""
    if row.get("error"):
        return "error"
    return str(row.get("link_state") or "-")


def ti_path(row: Mapping[str, Any]) -> str | None:
    """Relative link (from ``/bc-jira/audit``) to the Airflow 3 UI task instance page (Clear is there)."""
    dag_id, run_id, task_id = row.get("dag_id"), row.get("run_id"), row.get("task_id")
    if not (dag_id and run_id and task_id):
        return None
    path = f"../dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
    map_index = row.get("map_index")
    if map_index is not None and int(map_index) >= 0:
        path += f"/mapped/{int(map_index)}"
    return path


def replay_pointer(row: Mapping[str, Any]) -> str:
    """``dag / run / task [map index]`` linked to the task instance to clear (the same batch is replayed)."""
    path = ti_path(row)
    if path is None:
        return '<span class="muted">-</span>'
    map_index = row.get("map_index")
    mapped = f" [{int(map_index)}]" if map_index is not None and int(map_index) >= 0 else ""
    label = f"{row['dag_id']} / {row['run_id']} / {row['task_id']}{mapped}"
    try_no = f' <span class="muted">try {int(row["try_number"])}</span>' if row.get("try_number") else ""
    return (
        f'<a href="{_e(path)}" target="_top" title="open the task instance, then Clear it to replay">'
        f"{_e(label)}</a>{try_no}"
    )


def _issue_cell(row: Mapping[str, Any], site_url: str | None) -> str:
    key = row.get("issue_key")
    if not key:
        return '<span class="muted">-</span>'
    if not site_url:
        return _e(key)
    return (
        f'<a href="{_e(site_url)}/browse/{quote(str(key), safe="")}" target="_blank" '
        f'rel="noopener noreferrer">{_e(key)}</a>'
    )


def _row_html(row: Mapping[str, Any], site_url: str | None) -> str:
    status = status_of(row)
    entity = ENTITY_LABELS.get(str(row.get("entity")), str(row.get("entity") or ""))
    doc = row.get("document_number") or row.get("bc_id")
    reason = f'<div class="muted">{_e(row.get("reason"))}</div>' if row.get("reason") else ""
    return (
        f'<tr class="{"err" if status == "error" else ""}">'
        f'<td>{_e(doc)}<div class="muted">{_e(entity)} · <code>{_e(row.get("bc_id"))}</code></div></td>'
        f'<td class="nw">{_issue_cell(row, site_url)}</td>'
        f"<td>{_e(row.get('action'))}{reason}</td>"
        f'<td><span class="badge b-{_e(status)}">{_e(status)}</span></td>'
        f'<td class="err">{_e(row.get("error")) if row.get("error") else ""}</td>'
        f'<td class="nw">{_when(row.get("at"))}</td>'
        f"<td>{replay_pointer(row)}</td>"
        "</tr>"
    )


def render_page(
    rows: Sequence[Mapping[str, Any]],
    *,
    text_filter: str = "",
    errors_only: bool = False,
    limit: int = 500,
    site_url: str | None = None,
) -> str:
    """The whole HTML document (pure function: the route only fetches rows and the site URL)."""
    n_err = sum(1 for r in rows if r.get("error"))
    shown = f"{len(rows)} record{'s' if len(rows) != 1 else ''}"
    if len(rows) >= limit:
        shown += f" (first {limit}; narrow the filter)"
    head = (
        "<tr><th>BC document</th><th>Jira issue</th><th>Last action</th><th>Status</th><th>Error</th>"
        "<th>When</th><th>Replay: clear this task</th></tr>"
    )
    if rows:
        body = "".join(_row_html(r, site_url) for r in rows)
    else:
        body = '<tr><td colspan="7" class="muted">No synced records match.</td></tr>'
    errors_link = urlencode({k: v for k, v in (("q", text_filter), ("errors", "true")) if v})
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>bc-jira audit</title><style>{_CSS}</style></head><body>"
        "<h1>bc-jira audit</h1>"
        f'<p class="sub">Latest action per Business Central record · {_e(shown)} · '
        f'<a href="?{_e(errors_link)}">{n_err} with errors</a> · '
        "clearing the named task replays the same batch (no duplicate issue).</p>"
        '<form method="get" action="">'
        f'<input type="search" name="q" value="{_e(text_filter)}" '
        'placeholder="document no., issue key, record id, error text" aria-label="filter">'
        f'<label><input type="checkbox" name="errors" value="true"{" checked" if errors_only else ""}> '
        "errors only</label>"
        f'<input type="hidden" name="limit" value="{int(limit)}">'
        '<button type="submit">Filter</button>'
        + ('<a href="?">clear filter</a>' if text_filter or errors_only else "")
        + f"</form><table><thead>{head}</thead><tbody>{body}</tbody></table></body></html>"
    )

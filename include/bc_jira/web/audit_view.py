"""The audit page: one row per synced BC record, its Jira issue, last action, status, error and what to clear.

Server-rendered HTML, served by the plugin app under ``/bc-jira/audit`` and shown inside the Airflow UI as a
plugin external view. It reads only the state store (``latest_per_record``; ``query_audit`` for one
record's history) and the Jira connection's site URL (for issue links). Plugin apps get no Airflow auth of
their own, so the route requires an Airflow user: the UI's ``_token`` cookie or a bearer JWT.

Inside the UI the page is an iframe that Airflow 3.3's plugin page sandboxes with
``allow-scripts allow-same-origin allow-forms allow-downloads`` (the UI bundle shipped in apache-airflow-core
3.3, ``airflow/ui/dist/assets/index-*.js``: no ``allow-top-navigation``, no ``allow-popups``), so
the browser blocks ``target=_top`` (replay) and ``target=_blank`` (Jira) links there. The one small script
(``/bc-jira/audit.js``, no stored data in it) hands such a click to the UI's own document, which is the same
origin; opened on its own, the page works without it.
"""

from __future__ import annotations

import functools
import html
import logging
import time
from dataclasses import asdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from bc_jira.web.audit_assets import _CSS, LINKS_JS

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.edges.health import CompanyInfo
    from bc_jira.store import AuditRow, BatchKey

log = logging.getLogger(__name__)

ROUTE = "/audit"
SCRIPT_ROUTE = "/audit.js"
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


ENTITY_PATTERN = "^(|" + "|".join(ENTITY_LABELS) + ")$"  # "": the form's "all entities"


class AuditRecords(Protocol):
    """The state-store queries the page makes (both keyset-paged on the audit row id)."""

    def latest_per_record(
        self,
        *,
        text_filter: str | None = None,
        errors_only: bool = False,
        entity: str | None = None,
        before_id: int | None = None,
        limit: int = 500,
        company: str | None = None,
    ) -> list[dict[str, Any]]: ...

    def query_audit(
        self,
        *,
        entity: str | None = None,
        bc_id: str | None = None,
        before_id: int | None = None,
        limit: int,
        batch: BatchKey | None = None,
        company: str | None = None,
    ) -> list[AuditRow]: ...


def get_store() -> AuditRecords:
    """The connector's state store (``bc_jira_db`` or the SQLite default); a dependency tests override."""
    from bc_jira.store import StateStore

    return StateStore.from_airflow()


def get_companies() -> list[CompanyInfo]:
    """The configured companies (``bc_jira_config``'s ``companies``); a dependency tests override. Fewer
    than two: no company filter and no company in the rows, the page as before companies."""
    from bc_jira.web.companies import configured_companies

    return configured_companies() or []


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
    entity: str | None = Query(None, pattern=ENTITY_PATTERN, description="only this BC entity"),
    record: str | None = Query(None, max_length=64, description="BC record id: its full history"),
    before: int | None = Query(None, ge=1, description="next page: rows older than this audit row id"),
    limit: int = Query(500, ge=1, le=MAX_LIMIT),
    dag: str | None = Query(None, max_length=250, description="batch: the DAG id"),
    run: str | None = Query(None, max_length=250, description="batch: the run id (the upsert's extra link)"),
    task: str | None = Query(None, max_length=250, description="batch: the task id"),
    map_index: int | None = Query(None, ge=0, description="batch: the mapped task's index"),
    company: str | None = Query(None, pattern="^(|[0-9a-f]{8})$", description="only this company (its key)"),
    user: Any = Depends(get_user),
    store: AuditRecords = Depends(get_store),
    site: str | None = Depends(jira_site_url),
    companies: list[CompanyInfo] = Depends(get_companies),
) -> HTMLResponse:
    view = View(q or "", errors, entity or "", record or "", before, limit)
    view.companies = companies if len(companies) > 1 else []
    view.company = company or ""
    scope = view.store_key()
    if run:
        if not (dag and task):
            raise HTTPException(422, "a batch needs its DAG, run and task (dag=...&run=...&task=...)")
        from bc_jira.store import BatchKey

        view.batch = BatchKey(dag, run, task, map_index)
        found = await run_in_threadpool(store.query_audit, batch=view.batch, before_id=before, limit=limit)
        rows = [_history_row(r) for r in found]
    elif view.record:
        if not view.entity:
            raise HTTPException(422, "a record's history needs its entity (entity=...&record=...)")
        found = await run_in_threadpool(
            functools.partial(store.query_audit, company=scope),
            entity=view.entity,
            bc_id=view.record,
            before_id=before,
            limit=limit,
        )
        rows = [_history_row(r) for r in found]
    else:
        rows = await run_in_threadpool(
            functools.partial(store.latest_per_record, company=scope),
            text_filter=view.text_filter or None,
            errors_only=errors,
            entity=view.entity or None,
            before_id=before,
            limit=limit,
        )
    body = render_page(rows, view=view, site_url=site)
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@router.get(SCRIPT_ROUTE, include_in_schema=False)
async def audit_script() -> Response:
    return Response(LINKS_JS, media_type="text/javascript", headers={"Cache-Control": "max-age=300"})


def _history_row(row: AuditRow) -> dict[str, Any]:
    out = asdict(row)
    for key in ("read", "sent", "response"):
        out.pop(key)
    out["link_state"] = "ok"
    return out


# -- rendering (pure) --------------------------------------------------------------------------------


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


class View:
    """What the reader asked for (filters, one record's history, the page), as the links repeat it."""

    def __init__(
        self,
        text_filter: str = "",
        errors_only: bool = False,
        entity: str = "",
        record: str = "",
        before: int | None = None,
        limit: int = 500,
    ) -> None:
        self.text_filter, self.errors_only, self.entity, self.record = (
            text_filter,
            errors_only,
            entity,
            record,
        )
        self.before, self.limit = before, limit
        self.batch: BatchKey | None = None  # one task instance's rows (the upsert's extra link)
        self.companies: Sequence[CompanyInfo] = ()  # two or more configured: the filter and a name per row
        self.company = ""  # the chosen company's key ("": every company)

    def store_key(self) -> str | None:
        """The chosen company's store key (None: every company); an unknown key is a 422."""
        if not self.company:
            return None
        found = next((c for c in self.companies if c.ident == self.company), None)
        if found is None:
            raise HTTPException(422, f"company {self.company} is not one of the configured companies")
        return found.key

    def company_name(self, store_key: Any) -> str:
        found = next((c for c in self.companies if c.key == (store_key or "")), None)
        return (found.name or found.ident) if found else str(store_key or "")

    def company_ident(self, store_key: Any) -> str:
        found = next((c for c in self.companies if c.key == (store_key or "")), None)
        return found.ident if found else ""

    def query(self, **change: Any) -> str:
        """``?...`` for this view with some parameters changed (None drops one)."""
        params: dict[str, Any] = {
            "q": self.text_filter,
            "errors": "true" if self.errors_only else "",
            "entity": self.entity,
            "record": self.record,
            "company": self.company,
            "before": self.before,
            "limit": self.limit if self.limit != 500 else None,
        }
        if self.batch is not None:
            params.update(dag=self.batch.dag_id, run=self.batch.run_id, task=self.batch.task_id)
            params["map_index"] = self.batch.map_index
        params.update(change)
        return "?" + urlencode({k: v for k, v in params.items() if v not in (None, "", False)})


def _record_link(row: Mapping[str, Any], view: View) -> str:
    """The record's history: per (company, record) when several companies are configured."""
    entity, bc_id = row.get("entity"), row.get("bc_id")
    if not (entity and bc_id):
        return ""
    params = {"entity": entity, "record": bc_id}
    if view.companies and view.company_ident(row.get("company")):
        params["company"] = view.company_ident(row.get("company"))
    href = "?" + urlencode(params)
    return f' · <a href="{_e(href)}" class="hist" title="every audit row of this record">history</a>'


def _row_html(row: Mapping[str, Any], site_url: str | None, view: View, *, history: bool = False) -> str:
    status = status_of(row)
    entity = ENTITY_LABELS.get(str(row.get("entity")), str(row.get("entity") or ""))
    if view.companies:
        entity += f" · {view.company_name(row.get('company'))}"
    doc = row.get("document_number") or row.get("bc_id")
    reason = f'<div class="muted">{_e(row.get("reason"))}</div>' if row.get("reason") else ""
    more = f' <span class="muted">#{_e(row.get("id"))}</span>' if history else _record_link(row, view)
    return (
        f'<tr class="{"err" if status == "error" else ""}">'
        f'<td>{_e(doc)}<div class="muted">{_e(entity)} · <code>{_e(row.get("bc_id"))}</code>{more}</div></td>'
        f'<td class="nw">{_issue_cell(row, site_url)}</td>'
        f"<td>{_e(row.get('action'))}{reason}</td>"
        f'<td><span class="badge b-{_e(status)}">{_e(status)}</span></td>'
        f'<td class="err">{_e(row.get("error")) if row.get("error") else ""}</td>'
        f'<td class="nw">{_when(row.get("at"))}</td>'
        f"<td>{replay_pointer(row)}</td>"
        "</tr>"
    )


def _entity_select(selected: str) -> str:
    options = [("", "all entities"), *ENTITY_LABELS.items()]
    return (
        '<select name="entity" aria-label="entity">'
        + "".join(
            f'<option value="{_e(k)}"{" selected" if k == selected else ""}>{_e(label)}</option>'
            for k, label in options
        )
        + "</select>"
    )


def _company_select(view: View) -> str:
    """The configured companies by name (two or more); "" when there is nothing to choose."""
    if not view.companies:
        return ""
    options = [("", "all companies"), *((c.ident, c.name or c.ident) for c in view.companies)]
    return (
        '<select name="company" aria-label="company">'
        + "".join(
            f'<option value="{_e(k)}"{" selected" if k == view.company else ""}>{_e(label)}</option>'
            for k, label in options
        )
        + "</select>"
    )


def _pager(rows: Sequence[Mapping[str, Any]], view: View) -> str:
    """Newest / older links (keyset: the last row's id); a full page means there may be more."""
    parts = []
    if view.before is not None:
        parts.append(f'<a href="{_e(view.query(before=None))}" class="newest">newest</a>')
    if len(rows) >= view.limit and rows[-1].get("id") is not None:
        parts.append(f'<a href="{_e(view.query(before=int(rows[-1]["id"])))}" class="older">older &rarr;</a>')
    return f'<p class="pager">{" · ".join(parts)}</p>' if parts else ""


def render_page(
    rows: Sequence[Mapping[str, Any]],
    *,
    view: View | None = None,
    site_url: str | None = None,
) -> str:
    """The whole HTML document (pure function: the route only fetches rows and the site URL)."""
    view = view or View()
    history = bool(view.record or view.batch)
    n_err = sum(1 for r in rows if r.get("error"))
    noun = "audit row" if history else "record"
    shown = f"{len(rows)} {noun}{'s' if len(rows) != 1 else ''}"
    if view.before is not None:
        shown += f" older than #{view.before}"
    if len(rows) >= view.limit:
        shown += f" (a page of {view.limit}; older ones below)"
    head = (
        "<tr><th>BC document</th><th>Jira issue</th><th>"
        + ("Action" if history else "Last action")
        + "</th><th>Status</th><th>Error</th><th>When</th><th>Replay: clear this task</th></tr>"
    )
    if rows:
        body = "".join(_row_html(r, site_url, view, history=history) for r in rows)
    else:
        what = "audit rows" if history else "synced records"
        body = f'<tr><td colspan="7" class="muted">No {what} match.</td></tr>'
    if view.batch is not None:
        b = view.batch
        mapped = f" [{b.map_index}]" if b.map_index is not None else ""
        title = f"Batch {_e(b.task_id)}{_e(mapped)} of {_e(b.dag_id)}"
        sub = (
            f"Every audit row run <code>{_e(b.run_id)}</code> wrote for this batch, newest first · "
            f'{_e(shown)} · <a href="?" class="back">back to all records</a></p>'
        )
        controls = ""
    elif history:
        label = ENTITY_LABELS.get(view.entity, view.entity)
        title = f"History of {_e(label)} <code>{_e(view.record)}</code>"
        if view.company:
            title += f" in {_e(view.company_name(view.store_key()))}"
        sub = (
            f"Every audit row of this record, newest first · {_e(shown)} · "
            '<a href="?" class="back">back to all records</a></p>'
        )
        controls = ""
    else:
        title = "bc-jira audit"
        errors_link = view.query(errors="true", before=None)
        sub = (
            f"Latest action per Business Central record · {_e(shown)} · "
            f'<a href="{_e(errors_link)}">{n_err} with errors</a> on this page · '
            "clearing the named task replays the same batch (no duplicate issue).</p>"
        )
        filtered = view.text_filter or view.errors_only or view.entity or view.company
        controls = (
            '<form method="get" action="">'
            f'<input type="search" name="q" value="{_e(view.text_filter)}" '
            'placeholder="document no., issue key, record id, error text" aria-label="filter">'
            + _entity_select(view.entity)
            + _company_select(view)
            + '<label><input type="checkbox" name="errors" value="true"'
            + (" checked" if view.errors_only else "")
            + "> errors only</label>"
            + (f'<input type="hidden" name="limit" value="{int(view.limit)}">' if view.limit != 500 else "")
            + '<button type="submit">Filter</button>'
            + ('<a href="?">clear filter</a>' if filtered else "")
            + "</form>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>bc-jira audit</title><style>{_CSS}</style>"
        f'<script src="{SCRIPT_ROUTE.lstrip("/")}" defer></script></head><body>'
        f"<h1>{title}</h1>"
        f'<p class="sub">{sub}'
        + controls
        + f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"
        + _pager(rows, view)
        + "</body></html>"
    )

"""The sandbox Jira's pages: the board (issues by status) and the issue page at ``{site}/browse/KEY``.

Paths as on a Jira Cloud site: ``/browse/KEY`` is an issue, ``/browse/PROJECT`` the project, and a business
project's board is ``/jira/core/projects/KEY/board``. A button moves an issue through
:meth:`JiraState.transition`, the function behind ``POST /rest/api/3/issue/{key}/transitions``, acting as
Alice Approver (the ``/_sandbox/jira/transition`` default): the same change, changelog and webhooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from bc_jira_sandbox.deps import SANDBOX
from bc_jira_sandbox.jira.catalog import ISSUE_TYPES, STATUSES, JiraError, jira_ts
from bc_jira_sandbox.pages import BC_WEB, SITE
from bc_jira_sandbox.pages.adf_html import render
from bc_jira_sandbox.pages.forms import FormError, read_form
from bc_jira_sandbox.pages.html import button, esc, facts, link, page

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox
    from bc_jira_sandbox.jira.state import JiraState

router = APIRouter(tags=["sandbox pages"], include_in_schema=False)

BC_FIELDS = ("BC Document No.", "BC Vendor", "BC Amount", "BC Currency", "BC Status")
CARDS_PER_COLUMN = 100
ACTOR = 1  # index into the users: Alice Approver, who moves issues by hand


def board_path(project: str, issue_type: str = "") -> str:
    path = f"{SITE}/jira/core/projects/{quote(project, safe='')}/board"
    return f"{path}?{urlencode({'type': issue_type})}" if issue_type else path


def issue_path(key: str) -> str:
    return f"{SITE}/browse/{quote(key, safe='')}"


def _nav(j: JiraState) -> list[tuple[str, str]]:
    return [
        ("Board", board_path(j.project["key"])),
        ("Business Central", BC_WEB),
        ("JSON (scripts)", "/_sandbox/jira/issues"),
    ]


def _page(j: JiraState, title: str, body: str, status: int = 200) -> HTMLResponse:
    actor = j.users[ACTOR]["displayName"]
    return page(
        title,
        body,
        nav=[*_nav(j), (f"signed in as {actor}", board_path(j.project["key"]))],
        brand="Jira (sandbox)",
        status=status,
    )


def _custom_ids(j: JiraState) -> dict[str, str]:
    return {fd["name"]: fd["id"] for fd in j.fields if fd["custom"]}


def _type_name(j: JiraState, rec: dict[str, Any]) -> str:
    t = j.issue_type(str(rec["fields"].get("issuetype", "")))
    return t[1] if t else ""


def _done_id() -> str:
    return next(s[3] for s in STATUSES if s[1] == "Done")


def _card(j: JiraState, rec: dict[str, Any], ids: dict[str, str], issue_type: str) -> str:
    f = rec["fields"]
    bc = [f"{esc(name)}: {esc(f.get(ids[name]))}" for name in BC_FIELDS if f.get(ids.get(name, ""))]
    done = ""
    if f["status"] != STATUSES[2][0]:
        done = button(
            f"{issue_path(rec['key'])}/transitions",
            "Done",
            {"transition": _done_id(), "back": "board", "type": issue_type},
        )
    return (
        f'<div class="card" data-key="{esc(rec["key"])}">{link(issue_path(rec["key"]), rec["key"])} '
        f'<span class="tag">{esc(_type_name(j, rec))}</span><div>{esc(f.get("summary"))}</div>'
        f'<div class="meta">{"<br>".join(bc)}</div>'
        f'<div class="meta">{len(rec["comments"])} comment(s) {done}</div></div>'
    )


def render_board(j: JiraState, issue_type: str = "") -> HTMLResponse:
    """Columns by status, cards in key order; ``issue_type`` keeps one issue type."""
    ids = _custom_ids(j)
    recs = sorted(j.issues.values(), key=lambda r: int(r["key"].rsplit("-", 1)[1]))
    if issue_type:
        recs = [r for r in recs if _type_name(j, r) == issue_type]
    tabs = [link(board_path(j.project["key"]), "All types")]
    tabs += [link(board_path(j.project["key"], t[1]), t[1]) for t in ISSUE_TYPES]
    cols = []
    for sid, name, _cat, _tid in STATUSES:
        here = [r for r in recs if r["fields"]["status"] == sid]
        cards = "".join(_card(j, r, ids, issue_type) for r in here[:CARDS_PER_COLUMN])
        more = len(here) - CARDS_PER_COLUMN
        if more > 0:
            cards += f'<p class="note">and {more} more: filter by type, or open /browse/KEY</p>'
        cols.append(
            f'<div class="col" data-status="{esc(name)}"><h2>{esc(name)} ({len(here)})</h2>{cards}</div>'
        )
    shown = f" - {issue_type}" if issue_type else ""
    body = (
        f'<nav class="tabs">{"".join(tabs)}</nav>'
        f'<p class="note">{len(recs)} issue(s). "Done" moves an issue as a Jira user would: the connector\'s '
        f'webhook fires and the outcome comes back as a comment.</p><div class="cols">{"".join(cols)}</div>'
    )
    return _page(j, f"{j.project['key']} board{shown}", body)


def _links_html(j: JiraState, rec: dict[str, Any]) -> str:
    items = []
    for lk in j.issuelinks_json(rec):
        side = "outwardIssue" if "outwardIssue" in lk else "inwardIssue"
        verb = lk["type"]["outward" if side == "outwardIssue" else "inward"]
        other = lk[side]["key"]
        items.append(f"<li>{esc(verb)} {link(issue_path(other), other)}</li>")
    return f"<h2>Linked issues</h2><ul>{''.join(items)}</ul>" if items else ""


def _comments_html(j: JiraState, rec: dict[str, Any]) -> str:
    out = []
    for c in rec["comments"]:
        author = (j.user(c["author"]) or {}).get("displayName", c["author"])
        out.append(
            f'<div class="card comment"><div class="meta">{esc(author)}, {esc(jira_ts(c["created"]))}</div>'
            f"{render(c['body'])}</div>"
        )
    return f"<h2>Comments ({len(out)})</h2>{''.join(out) or '<p class=note>none</p>'}"


def attachment_path(att: dict[str, Any]) -> str:
    """Where a browser downloads an attachment on a Jira site: ``/secure/attachment/{id}/{filename}``."""
    return f"{SITE}/secure/attachment/{quote(att['id'], safe='')}/{quote(att['filename'], safe='')}"


def _attachments_html(rec: dict[str, Any]) -> str:
    items = [
        f"<li>{link(attachment_path(a), a['filename'])} "
        f'<span class="meta">{esc(a["mimeType"])}, {a["size"]:,} bytes</span></li>'
        for a in rec.get("attachments") or []
    ]
    return f"<h2>Attachments ({len(items)})</h2><ul>{''.join(items)}</ul>" if items else ""


def render_issue(j: JiraState, rec: dict[str, Any]) -> HTMLResponse:
    """Fields, BC fields, transition buttons, description, links and comments of one issue."""
    f = rec["fields"]
    status = j.status(f["status"])
    people = {
        k: (j.user(f[k]) or {}).get("displayName") if f.get(k) else "" for k in ("assignee", "reporter")
    }
    pairs: list[tuple[str, object]] = [
        ("Type", _type_name(j, rec)),
        ("Status", status[1] if status else f["status"]),
        ("Assignee", people["assignee"] or "Unassigned"),
        ("Reporter", people["reporter"]),
        ("Labels", ", ".join(f.get("labels") or [])),
        ("Created", jira_ts(rec["created"])),
        ("Updated", jira_ts(rec["updated"])),
    ]
    pairs += [(name, f.get(fid)) for name, fid in _custom_ids(j).items() if f.get(fid) not in (None, "")]
    moves = " ".join(
        button(f"{issue_path(rec['key'])}/transitions", t["name"], {"transition": t["id"], "back": "issue"})
        for t in j.transitions(rec)
    )
    body = (
        f'<p>{moves}</p>{facts(pairs)}<h2>Description</h2><div class="card">'
        f"{render(f.get('description')) or '<p class=note>none</p>'}</div>"
        f"{_attachments_html(rec)}{_links_html(j, rec)}{_comments_html(j, rec)}"
    )
    return _page(j, f"{rec['key']}: {f.get('summary', '')}", body)


def _not_found(j: JiraState, what: str) -> HTMLResponse:
    body = f"<p class=err>{esc(what)}</p><p>{link(board_path(j.project['key']), 'Back to the board')}</p>"
    return _page(j, "Not found", body, status=404)


@router.get(SITE)
@router.get(f"{SITE}/")
def site_root(sb: Sandbox = SANDBOX) -> Response:
    return RedirectResponse(board_path(sb.jira.project["key"]), status_code=302)


@router.get(f"{SITE}/jira/core/projects/{{project}}/board")
def board(project: str, issue_type: str = Query("", alias="type"), sb: Sandbox = SANDBOX) -> Response:
    with sb.lock:
        j = sb.jira
        if project.upper() != j.project["key"]:
            return _not_found(j, f"No project {project}.")
        chosen = j.issue_type(issue_type) if issue_type else None
        if issue_type and chosen is None:
            return _not_found(j, f"No issue type {issue_type}.")
        return render_board(j, chosen[1] if chosen else "")


@router.get(f"{SITE}/browse/{{key}}")
def browse(key: str, sb: Sandbox = SANDBOX) -> Response:
    with sb.lock:
        j = sb.jira
        if key.upper() == j.project["key"]:
            return RedirectResponse(board_path(j.project["key"]), status_code=302)
        try:
            rec = j.issue(key)
        except JiraError:
            return _not_found(j, f"Issue {key} does not exist.")
        return render_issue(j, rec)


@router.get(f"{SITE}/secure/attachment/{{att_id}}/{{filename}}")
def download(att_id: str, filename: str, sb: Sandbox = SANDBOX) -> Response:
    """An attachment's file, as the issue page links it (the sandbox pages need no login)."""
    with sb.lock:
        try:
            _, att = sb.jira.find_attachment(att_id)
        except JiraError:
            return _not_found(sb.jira, f"Attachment {att_id} does not exist.")
        data = sb.jira.attachment_content(att_id)
    disposition = f"inline; filename*=UTF-8''{quote(att['filename'], safe='')}"
    return Response(data, media_type=att["mimeType"], headers={"Content-Disposition": disposition})


@router.post(f"{SITE}/browse/{{key}}/transitions")
async def transition(key: str, request: Request, sb: Sandbox = SANDBOX) -> Response:
    """A transition button: ``transition`` (id), ``back`` (board | issue), ``type`` (the board's filter)."""
    try:
        form = await read_form(request)
    except FormError as exc:
        return HTMLResponse(esc(exc), status_code=400)
    with sb.lock:
        j = sb.jira
        try:
            rec = j.issue(key)
        except JiraError:
            return _not_found(j, f"Issue {key} does not exist.")
        try:
            j.transition(rec, {"transition": {"id": form.get("transition", "")}}, j.users[ACTOR])
        except JiraError as exc:
            why = "; ".join(exc.body.get("errorMessages") or []) or "the transition was refused"
            return _page(j, "Transition refused", f"<p class=err>{esc(why)}</p>", status=400)
        sb.mark_dirty()
        back = (
            board_path(j.project["key"], form.get("type", "") if j.issue_type(form.get("type", "")) else "")
            if form.get("back") == "board"
            else issue_path(rec["key"])
        )
    return RedirectResponse(back, status_code=303)

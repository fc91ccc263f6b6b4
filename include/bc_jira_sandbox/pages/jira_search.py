"""The sandbox Jira's issue navigator: ``{site}/issues/?jql=...`` lists the issues a JQL search finds.

The path is Jira Cloud's issue navigator (the list view of a search, ``https://<site>.atlassian.net/issues/
?jql=...``), which the connector's "Jira: batch issues" extra link opens (``bc_jira.sync.report``). The hits
come from :meth:`JiraState.search`, the function behind ``POST /rest/api/3/search/jql`` (spec operation
``searchAndReconsileIssuesUsingJqlPost``): same JQL parser, same errors, and the same lagging index, so a
just-created issue appears here when the REST search finds it, not before. A bad JQL is a 400 page naming
the error, as Jira's navigator shows "Error in the JQL Query"; an empty JQL shows the form only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response  # noqa: TC002 - FastAPI resolves the annotations

from bc_jira_sandbox.deps import SANDBOX
from bc_jira_sandbox.jira.catalog import JiraError
from bc_jira_sandbox.pages import SITE
from bc_jira_sandbox.pages.html import esc, link, page, table
from bc_jira_sandbox.pages.jira_board import ACTOR, _nav, issue_path

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox
    from bc_jira_sandbox.jira.state import JiraState

router = APIRouter(tags=["sandbox pages"], include_in_schema=False)

NAVIGATOR = f"{SITE}/issues/"
SHOWN = 200  # one page of hits; the REST search pages the rest (Jira's navigator pages at 50)
MAX_JQL = 20_000  # characters; a key list of a 500-record batch is ~5,000


def navigator_path(jql: str) -> str:
    return f"{NAVIGATOR}?{urlencode({'jql': jql})}"


def _page(j: JiraState, title: str, jql: str, body: str, status: int = 200) -> HTMLResponse:
    form = (
        f'<form method="get" action="{esc(NAVIGATOR)}"><input name="jql" size="100" value="{esc(jql)}"> '
        '<button type="submit">Search</button></form>'
    )
    actor = j.users[ACTOR]["displayName"]
    nav = [*_nav(j), (f"signed in as {actor}", NAVIGATOR)]
    return page(title, form + body, nav=nav, brand="Jira (sandbox)", status=status)


def _row(j: JiraState, issue: dict[str, Any], doc_field: str | None) -> list[str]:
    f = issue.get("fields", {})
    return [
        link(issue_path(issue["key"]), issue["key"]),
        esc((f.get("issuetype") or {}).get("name")),
        esc(f.get("summary")),
        esc((f.get("status") or {}).get("name")),
        esc(f.get(doc_field) if doc_field else ""),
    ]


def render_search(j: JiraState, jql: str) -> HTMLResponse:
    """The hits of ``jql`` (first :data:`SHOWN`, key order unless the JQL says ORDER BY), or the error."""
    if not jql.strip():
        return _page(j, "Search", jql, "<p class=note>Type a JQL query, e.g. <code>project = FIN</code>.</p>")
    if len(jql) > MAX_JQL:
        return _page(j, "Search", "", f"<p class=err>The JQL is longer than {MAX_JQL} characters.</p>", 400)
    doc_field = next((fd["id"] for fd in j.fields if fd["custom"] and fd["name"] == "BC Document No."), None)
    fields = ["summary", "status", "issuetype", *([doc_field] if doc_field else [])]
    try:
        found = j.search({"jql": jql, "fields": fields, "maxResults": SHOWN})
    except JiraError as exc:
        why = "; ".join(exc.body.get("errorMessages") or []) or "the query was refused"
        return _page(j, "Error in the JQL Query", jql, f"<p class=err>{esc(why)}</p>", 400)
    issues = found["issues"]
    more = "" if found.get("isLast", True) else f" (the first {SHOWN}; narrow the query for the rest)"
    body = f'<p class="note" id="count">{len(issues)} issue(s){esc(more)}</p>' + table(
        ["Key", "Type", "Summary", "Status", "BC Document No."],
        [_row(j, i, doc_field) for i in issues],
    )
    return _page(j, "Search", jql, body)


@router.get(NAVIGATOR)
@router.get(NAVIGATOR.rstrip("/"))
def navigator(jql: str = Query(""), sb: Sandbox = SANDBOX) -> Response:
    with sb.lock:
        return render_search(sb.jira, jql)

"""Jira Cloud platform REST v3 emulation: fields, issues, bulk create, edit, JQL search, transitions,
comments, users and dynamic webhooks, under ``/ex/jira/{cloudId}`` (OAuth bearer) and ``/site`` (basic auth).

Fidelity notes (shared/reference/jira-api.md): search lags writes by ``options.search_lag_s`` unless
``reconcileIssues`` names the issue; ``nextPageToken`` paging with no ``total``; ``fields`` defaults to
``id``; bulk create answers 201 with per-element ``errors`` (400 only when all fail); ADF is validated; some
users hide their email; REST (dynamic) webhooks expire after 30 days. Delivery authentication follows the
kind of webhook (jira-api.md 3b): a webhook the OAuth 2.0 app registered through ``POST /rest/api/3/webhook``
is delivered with only ``Authorization: Bearer <JWT>`` (HS256, the app's client secret); an admin webhook
(``POST /_sandbox/jira/admin-webhooks``, as an admin creates one in Settings > System > WebHooks) carries
only ``X-Hub-Signature: sha256=<hex>`` when created with a secret, nothing otherwise.
Every body matches the official OpenAPI document; ``POST /_sandbox/jira/options {"validate": true}`` makes
the sandbox check it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from bc_jira_sandbox import atlassian

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

log = logging.getLogger(__name__)

API = "/rest/api/3"
WEBHOOK_TTL_S = 30 * 24 * 3600
# Webhook ``expirationDate``: the spec's schemas (Webhook, WebhooksExpirationDate) say int64 epoch ms, but its
# own examples for GET /rest/api/3/webhook and PUT /rest/api/3/webhook/refresh, and Atlassian's reference page
# (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-webhooks), show
# "2019-06-01T12:42:30.000+0000"; no capture of the real wire form was found (vendor-behaviour-review.md #4).
# So the sandbox answers either (``POST /_sandbox/jira/options {"expiration_date_format": "iso"}``).
EXPIRATION_DATE_FORMATS = ("epoch_ms", "iso")


def expiration_date_out(ms: int, form: str) -> int | str:
    """``expirationDate`` as the sandbox answers it: epoch ms, or the spec example's form."""
    if form != "iso":
        return ms
    dt = datetime.fromtimestamp(ms / 1000.0, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


BULK_LIMIT = 50
RECONCILE_LIMIT = 50
WEBHOOK_RETRY_DELAYS_S = (1.0, 3.0, 10.0)
DELIVERY_JWT_TTL_S = 180  # "a short exp": the exact lifetime is not documented
CATEGORIES = {
    "new": {"id": 2, "key": "new", "colorName": "blue-gray", "name": "To Do"},
    "indeterminate": {"id": 4, "key": "indeterminate", "colorName": "yellow", "name": "In Progress"},
    "done": {"id": 3, "key": "done", "colorName": "green", "name": "Done"},
}
STATUSES = [  # id, name, category, transition id
    ("10000", "To Do", "new", "11"),
    ("3", "In Progress", "indeterminate", "21"),
    ("10001", "Done", "done", "31"),
    ("10002", "Rejected", "done", "41"),
]
ISSUE_TYPES = [("10001", "Task"), ("10002", "Invoice"), ("10003", "Vendor"), ("10004", "Purchase Order")]
CUSTOM_FIELDS = [  # name, kind
    ("BC Record Id", "textfield"),
    ("BC Document No.", "textfield"),
    ("BC Vendor", "textfield"),
    ("BC Amount", "float"),
    ("BC Currency", "textfield"),
    ("BC Status", "textfield"),
]
SYSTEM_FIELDS = [  # id, name, schema, clause names
    ("summary", "Summary", {"type": "string", "system": "summary"}, ["summary"]),
    ("description", "Description", {"type": "string", "system": "description"}, ["description"]),
    ("issuetype", "Issue Type", {"type": "issuetype", "system": "issuetype"}, ["issuetype", "type"]),
    ("project", "Project", {"type": "project", "system": "project"}, ["project"]),
    ("status", "Status", {"type": "status", "system": "status"}, ["status"]),
    (
        "statusCategory",
        "Status Category",
        {"type": "statusCategory", "system": "statusCategory"},
        ["statusCategory"],
    ),
    ("labels", "Labels", {"type": "array", "items": "string", "system": "labels"}, ["labels"]),
    ("assignee", "Assignee", {"type": "user", "system": "assignee"}, ["assignee"]),
    ("reporter", "Reporter", {"type": "user", "system": "reporter"}, ["reporter"]),
    ("created", "Created", {"type": "datetime", "system": "created"}, ["created", "createdDate"]),
    ("updated", "Updated", {"type": "datetime", "system": "updated"}, ["updated", "updatedDate"]),
    ("issuekey", "Key", None, ["id", "issue", "issuekey", "key"]),
    # Jira Cloud system fields (GET /field lists them on every site): links to other issues, and when the
    # issue last changed status category (JQL statusCategoryChangedDate).
    (
        "issuelinks",
        "Linked Issues",
        {"type": "array", "items": "issuelinks", "system": "issuelinks"},
        ["issueLink"],
    ),
    (
        "statuscategorychangedate",
        "Status Category Changed",
        {"type": "datetime", "system": "statuscategorychangedate"},
        ["statusCategoryChangedDate"],
    ),
]
# Custom field types the sandbox knows (``schema.custom`` = CUSTOM_TYPE_PREFIX + key) with their JSON type
# and default searcher (spec ``POST /rest/api/3/field``: float -> exactnumber/numberrange, textfield and
# textarea -> textsearcher, url -> exacttextsearcher; "If no searcher is provided, the field isn't
# searchable").
CUSTOM_TYPES = {
    "textfield": ("string", "textsearcher"),
    "textarea": ("string", "textsearcher"),
    "url": ("string", "exacttextsearcher"),
    "float": ("number", "exactnumber"),
}
CUSTOM_TYPE_PREFIX = "com.atlassian.jira.plugin.system.customfieldtypes:"
# System fields a screen can hold (project and issue type are always part of a create, never of a screen).
SCREEN_SYSTEM_FIELDS = ("summary", "description", "labels", "assignee", "reporter")
CREATEMETA_MAX = 200
OFF_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
NAVIGABLE = [
    "summary",
    "description",
    "issuetype",
    "project",
    "status",
    "labels",
    "assignee",
    "reporter",
    "created",
    "updated",
    "issuelinks",
    "statuscategorychangedate",
]
# Jira Cloud default issue link types (GET /rest/api/3/issueLinkType on a new site): id, name, inward, outward
LINK_TYPES = [
    ("10000", "Blocks", "is blocked by", "blocks"),
    ("10001", "Cloners", "is cloned by", "clones"),
    ("10002", "Duplicate", "is duplicated by", "duplicates"),
    ("10003", "Relates", "relates to", "relates to"),
]
COMMENT_PAGE_MAX = 5000
USERS = [  # display name, email, email visible
    ("BC Connector", None, True),  # the connector's own account (email from creds)
    ("Alice Approver", "alice.approver@example.com", True),
    ("Bob Buyer", "bob.buyer@example.com", False),
    ("Carol Controller", "carol.controller@example.com", True),
    ("Dan Payables", "dan.payables@example.com", False),
    ("Erin Auditor", "erin.auditor@example.com", True),
]


_KEEP = object()  # set_field_type: leave the searcher as it is


class JiraError(Exception):
    """A Jira ``ErrorCollection`` answer."""

    def __init__(self, status: int, messages: list[str] | None = None, errors: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}


def _as_string(value: Any) -> str | None:
    if value is None:
        return None
    return " ".join(value) if isinstance(value, list) else str(value)


def jira_ts(dt: datetime) -> str:
    """Jira's timestamp form: 2024-01-01T10:00:00.000+0000."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}+0000"


# -- Atlassian Document Format -------------------------------------------------------------------------------

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

    def walk(node: Any, parent: str, path: str) -> str | None:
        if not isinstance(node, dict) or not isinstance(node.get("type"), str):
            return f"INVALID_INPUT at {path}: a node must be an object with a type"
        ntype = node["type"]
        allowed = _BLOCK_CHILDREN.get(parent)
        if ntype not in _BLOCK_CHILDREN:
            return f"INVALID_INPUT at {path}: unknown node type {ntype!r}"
        if allowed is None or ntype not in allowed:
            return f"INVALID_INPUT at {path}: {ntype!r} is not allowed inside {parent!r}"
        if ntype == "text":
            if not isinstance(node.get("text"), str) or node["text"] == "":
                return f"INVALID_INPUT at {path}: text nodes need a non-empty text"
            for mark in node.get("marks", []) or []:
                if not isinstance(mark, dict) or mark.get("type") not in _MARKS:
                    return f"INVALID_INPUT at {path}: unknown mark {mark!r}"
                if mark["type"] == "link" and not (mark.get("attrs") or {}).get("href"):
                    return f"INVALID_INPUT at {path}: link marks need attrs.href"
            return None
        if ntype == "heading" and (node.get("attrs") or {}).get("level") not in (1, 2, 3, 4, 5, 6):
            return f"INVALID_INPUT at {path}: heading needs attrs.level 1-6"
        content = node.get("content", [])
        if not isinstance(content, list):
            return f"INVALID_INPUT at {path}: content must be an array"
        if ntype in ("bulletList", "orderedList", "table", "tableRow", "listItem") and not content:
            return f"INVALID_INPUT at {path}: {ntype} needs content"
        for i, child in enumerate(content):
            err = walk(child, ntype, f"{path}.content[{i}]")
            if err:
                return err
        return None

    for i, child in enumerate(doc["content"]):
        err = walk(child, "doc", f"content[{i}]")
        if err:
            return err
    return None


# -- JQL (the subset the connector and its webhooks use) -----------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<op>!=|>=|<=|!~|=|~|>|<|\(|\)|,)
                    |(?P<word>[A-Za-z0-9_.\-\[\]:*/+]+))""",
    re.X,
)
_RELATIVE = re.compile(r"^([-+]?)(\d+)([wdhm])$")


_SYSTEM_CLAUSES = {
    "project",
    "issuetype",
    "type",
    "status",
    "statuscategory",
    "key",
    "issuekey",
    "id",
    "issue",
    "assignee",
    "reporter",
    "labels",
    "updated",
    "created",
    "updateddate",
    "createddate",
    "summary",
    "text",
}


class JqlError(ValueError):
    pass


def _tokenize(jql: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    jql = jql.strip()
    while pos < len(jql):
        m = _TOKEN.match(jql, pos)
        if not m or m.end() == pos:
            raise JqlError(
                f"Error in the JQL Query: The character '{jql[pos]}' is a reserved JQL character. "
                f"(line 1, character {pos + 1})"
            )
        pos = m.end()
        if m.group("str") is not None:
            raw = m.group("str")[1:-1]
            out.append(("str", re.sub(r"\\(.)", r"\1", raw)))
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        elif m.group("word") is not None:
            out.append(("word", m.group("word")))
    return out


class _Parser:
    KEYWORDS = {"and", "or", "not", "in", "order", "by", "is", "empty", "null", "asc", "desc"}

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.t = tokens
        self.i = 0

    def peek(self, k: int = 0) -> tuple[str, str] | None:
        return self.t[self.i + k] if self.i + k < len(self.t) else None

    def is_kw(self, word: str, k: int = 0) -> bool:
        tok = self.peek(k)
        return tok is not None and tok[0] == "word" and tok[1].lower() == word

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise JqlError("Error in the JQL Query: Expecting more input at the end of the query.")
        self.i += 1
        return tok

    def parse(self) -> tuple[Any, list[tuple[str, bool]]]:
        where = None
        if self.peek() is not None and not self.is_kw("order"):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.is_kw("order"):
            self.take()
            if not self.is_kw("by"):
                raise JqlError("Error in the JQL Query: Expecting 'by' after 'order'.")
            self.take()
            while True:
                fld = self.take()[1]
                desc = False
                if self.is_kw("asc") or self.is_kw("desc"):
                    desc = self.take()[1].lower() == "desc"
                order.append((fld, desc))
                if self.peek() == ("op", ","):
                    self.take()
                    continue
                break
        if self.peek() is not None:
            raise JqlError(
                f"Error in the JQL Query: Expecting either 'OR' or 'AND' but got '{self.peek()[1]}'."
            )
        return where, order

    def or_expr(self) -> Any:
        node = self.and_expr()
        while self.is_kw("or"):
            self.take()
            node = ("or", node, self.and_expr())
        return node

    def and_expr(self) -> Any:
        node = self.unary()
        while self.is_kw("and"):
            self.take()
            node = ("and", node, self.unary())
        return node

    def unary(self) -> Any:
        if self.is_kw("not"):
            self.take()
            return ("not", self.unary())
        if self.peek() == ("op", "("):
            self.take()
            node = self.or_expr()
            if self.take() != ("op", ")"):
                raise JqlError("Error in the JQL Query: Expecting ')'.")
            return node
        return self.clause()

    def clause(self) -> Any:
        kind, fld = self.take()
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a field name but got '{fld}'.")
        if self.is_kw("not") and self.is_kw("in", 1):
            self.take()
            self.take()
            return ("cmp", fld, "not in", self.value_list())
        if self.is_kw("in"):
            self.take()
            return ("cmp", fld, "in", self.value_list())
        if self.is_kw("is"):
            self.take()
            neg = False
            if self.is_kw("not"):
                self.take()
                neg = True
            word = self.take()[1].lower()
            if word not in ("empty", "null"):
                raise JqlError("Error in the JQL Query: Expecting EMPTY or NULL after IS.")
            return ("cmp", fld, "is not empty" if neg else "is empty", None)
        kind, op = self.take()
        if kind != "op" or op not in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            raise JqlError(f"Error in the JQL Query: Expecting operator but got '{op}'.")
        return ("cmp", fld, op, self.value())

    def value(self) -> str:
        kind, val = self.take()
        if kind == "op":
            raise JqlError(f"Error in the JQL Query: Expecting a value but got '{val}'.")
        if kind == "word" and self.peek() == ("op", "("):  # a function, e.g. now() or currentUser()
            self.take()
            if self.take() != ("op", ")"):
                raise JqlError("Error in the JQL Query: only functions without arguments are supported.")
            return f"{val}()"
        return val

    def value_list(self) -> list[str]:
        if self.take() != ("op", "("):
            raise JqlError("Error in the JQL Query: Expecting '(' after IN.")
        vals = [self.value()]
        while self.peek() == ("op", ","):
            self.take()
            vals.append(self.value())
        if self.take() != ("op", ")"):
            raise JqlError("Error in the JQL Query: Expecting ')' to close the IN list.")
        return vals


def parse_jql(jql: str) -> tuple[Any, list[tuple[str, bool]]]:
    return _Parser(_tokenize(jql)).parse()


def jql_fields(node: Any) -> list[tuple[str, str]]:
    """``(field, operator)`` pairs used by a parsed query (for webhook filter checks)."""
    if node is None:
        return []
    if node[0] in ("and", "or"):
        return jql_fields(node[1]) + jql_fields(node[2])
    if node[0] == "not":
        return jql_fields(node[1])
    return [(node[1], node[2])]


# -- text search: the CONTAINS (~) operator --------------------------------------------------------------
#
# Jira's ``~`` is a full-text match on an index, not a substring test. Sources:
# * https://support.atlassian.com/jira-software-cloud/docs/search-syntax-for-text-fields/ : a query is broken
#   into terms and phrases, not case-sensitive; terms without an operator are joined with AND; an exact phrase
#   needs quote-marks, escaped inside JQL (``text ~ "\"Jira Software\""``); ``*`` at the end of a word is a
#   wildcard; a single-character ``?`` becomes a trailing ``*``; leading wildcards are not supported.
# * https://confluence.atlassian.com/jiracorecloud/search-syntax-for-text-fields-765593720.html : Boolean
#   operators AND, ``+``, OR, NOT and ``-`` (ALL CAPS), also ``&&``, ``||``, ``!``; the index is Lucene's.
# * Lucene classic query parser (the syntax those pages derive from): ``-``/``+``/``!`` are operators only at
#   the start of a term; a term is then analysed like the indexed text, so ``rec-6`` becomes the tokens
#   ``rec`` and ``6``, each required under the AND default; a pure negative query matches nothing.
# Modelled: Lucene's StandardTokenizer approximated as runs of word characters (everything else separates
# words), lower-cased. Not modelled: stemming and stop words (they only widen matches), grouping parentheses
# (ignored), proximity and boosting (Atlassian: ignored). How the current Cloud engine treats a hyphenated
# GUID is not documented (shared/reference/vendor-behaviour-review.md §9): only the phrase form is certain.

_TEXT_WORD = re.compile(r"\w+")
_TEXT_LEX = re.compile(r'\s*(?:(?P<phrase>"[^"]*"?)|(?P<op>&&|\|\|)|(?P<paren>[()])|(?P<term>[^\s"()]+))')


def _text_of(value: Any) -> str:
    """The searchable text of a field value: a string as is, an ADF document's text nodes joined."""
    if isinstance(value, dict):
        parts: list[str] = []
        stack = [value]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("text"), str):
                    parts.append(node["text"])
                stack.extend(reversed(node.get("content") or []))
        return " ".join(parts)
    return str(value)


def text_tokens(text: str) -> tuple[str, ...]:
    """The words the index holds for a text value (lower-cased, split on every non-word character)."""
    return tuple(_TEXT_WORD.findall(text.lower()))


# A compiled text query: OR of groups; a group is (required clauses, prohibited clauses); a clause is
# (kind, tokens) with kind "phrase" (adjacent, in order), "all" (each token anywhere) or "prefix" (one token
# starting with tokens[0]).
TextClause = tuple[str, tuple[str, ...]]
TextQuery = tuple[tuple[tuple[TextClause, ...], tuple[TextClause, ...]], ...]


@functools.lru_cache(maxsize=8192)
def compile_text_query(query: str) -> TextQuery:
    """Parse the value of a ``~`` clause the way Jira's text search reads it (see the sources above)."""
    groups: list[tuple[list[TextClause], list[TextClause]]] = [([], [])]
    negate_next = False
    pos = 0
    while pos < len(query):
        m = _TEXT_LEX.match(query, pos)
        if m is None or m.end() == pos:
            break
        pos = m.end()
        if m.group("paren") is not None:
            continue  # grouping is not modelled: parentheses only separate words
        if m.group("op") is not None:
            if m.group("op") == "||":
                groups.append(([], []))
            negate_next = False
            continue
        if m.group("phrase") is not None:
            toks = text_tokens(m.group("phrase").strip('"'))
            clause: TextClause | None = ("phrase", toks) if toks else None
            prohibited = negate_next
        else:
            term = m.group("term")
            if term == "OR":
                groups.append(([], []))
                negate_next = False
                continue
            if term == "AND":
                continue
            if term == "NOT":
                negate_next = True
                continue
            prohibited = negate_next
            if term[0] in "-!" and len(term) > 1:
                prohibited, term = True, term[1:]
            elif term[0] == "+" and len(term) > 1:
                term = term[1:]
            term = term.lstrip("*?")  # leading wildcards are not supported
            cut = min((i for i in (term.find("*"), term.find("?")) if i >= 0), default=-1)
            if cut >= 0:
                prefix = term[:cut].lower()
                clause = ("prefix", (prefix,)) if prefix else None
            else:
                toks = text_tokens(term)
                toks = tuple(dict.fromkeys(toks))  # each word once: "all" asks only whether it is there
                clause = ("all", toks) if toks else None
        negate_next = False
        if clause is not None:
            groups[-1][1 if prohibited else 0].append(clause)
    return tuple((tuple(req), tuple(pro)) for req, pro in groups if req or pro)


def _clause_matches(clause: TextClause, toks: tuple[str, ...], tset: frozenset[str]) -> bool:
    kind, want = clause
    if kind == "prefix":
        return any(t.startswith(want[0]) for t in toks)
    if kind == "all" or len(want) == 1:
        return all(w in tset for w in want)
    n = len(want)
    first = want[0]
    for i in range(len(toks) - n + 1):
        if toks[i] == first and toks[i : i + n] == want:
            return True
    return False


def text_query_matches(query: TextQuery, toks: tuple[str, ...], tset: frozenset[str]) -> bool:
    """A document matches when some group has all its required clauses and none of its prohibited ones."""
    for required, prohibited in query:
        if (
            required
            and all(_clause_matches(c, toks, tset) for c in required)
            and not any(_clause_matches(c, toks, tset) for c in prohibited)
        ):
            return True
    return False


# -- state ---------------------------------------------------------------------------------------------------


class JiraState:
    """Everything Jira holds; guarded by ``sb.lock``; picklable apart from ``sb``."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.validate = False
        self.reset()

    # -- seed ------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        sb = self.sb
        rng = random.Random(f"jira-{sb.options.seed}")
        self.expiration_date_format = "epoch_ms"
        self.issue_linking = True  # a Jira admin can turn issue linking off: its endpoints then answer 404
        self._view_cache: dict[str, Any] = {}
        self._or_cache: dict[int, Any] = {}
        self._token_memo: dict[str, tuple[str, tuple[str, ...], frozenset[str]]] = {}
        self.oauth = atlassian.reset(sb)
        self.project = {"id": "10000", "key": sb.creds["project_key"], "name": "Finance Approvals"}
        base = rng.randrange(10030, 10700)
        self.fields: list[dict[str, Any]] = []
        for fid, name, schema, clauses in SYSTEM_FIELDS:
            fd: dict[str, Any] = {
                "id": fid,
                "key": fid,
                "name": name,
                "custom": False,
                "orderable": True,
                "navigable": True,
                "searchable": True,
                "clauseNames": clauses,
            }
            if schema is not None:
                fd["schema"] = schema
            self.fields.append(fd)
        num = base
        for name, kind in CUSTOM_FIELDS:
            num += rng.randrange(1, 9)
            fid = f"customfield_{num}"
            ftype = CUSTOM_TYPES[kind][0]
            self.fields.append(
                {
                    "id": fid,
                    "key": fid,
                    "name": name,
                    "custom": True,
                    "orderable": True,
                    "navigable": True,
                    "searchable": True,
                    "clauseNames": [f"cf[{num}]", name],
                    "schema": {
                        "type": ftype,
                        "custom": CUSTOM_TYPE_PREFIX + kind,
                        "customId": num,
                    },
                }
            )
        self.users: list[dict[str, Any]] = []
        for i, (name, email, visible) in enumerate(USERS):
            account = f"{rng.randrange(10**5, 10**6)}:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            self.users.append(
                {
                    "accountId": account,
                    "displayName": name,
                    "email": sb.creds["jira_email"] if i == 0 else email,
                    "emailVisible": visible,
                    "accountType": "atlassian",
                    "active": True,
                }
            )
        self.issues: dict[str, dict[str, Any]] = {}  # id -> record
        self.keys: dict[str, str] = {}  # key -> id
        self.next_issue_id = 10000
        self.next_issue_num = 1
        self.next_comment_id = 10000
        self.next_change_id = 10000
        self.issue_links: dict[str, dict[str, str]] = {}  # link id -> {type, inward, outward} (issue ids)
        self.next_link_id = 10000
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.webhook_url: str | None = None
        self.next_webhook_id = 1000
        self.admin_webhooks: dict[int, dict[str, Any]] = {}  # id -> {url, events, jqlFilter, secret}
        self.next_admin_webhook_id = 1
        self.deliveries: list[dict[str, Any]] = []  # last deliveries (for tests / debugging)
        self.next_delivery = 1
        # Screens per issue type (spec createIssue: "the same fields that appear on the issue's create
        # screen"; editIssue: 400 for fields "not associated with the issue's edit screen"). Every field
        # starts on every screen; /_sandbox/jira/screen takes fields off, as a Jira admin would.
        everything = set(SCREEN_SYSTEM_FIELDS) | {f["id"] for f in self.fields if f["custom"]}
        self.screens: dict[str, dict[str, set[str]]] = {
            t[0]: {"create": set(everything), "edit": set(everything)} for t in ISSUE_TYPES
        }

    def screen(self, type_id: str, which: str) -> set[str]:
        """Field ids on the create or edit screen of an issue type."""
        screens = self.__dict__.get("screens")
        if screens is None:  # state saved before screens existed: every field on every screen
            return set(SCREEN_SYSTEM_FIELDS) | {f["id"] for f in self.fields if f["custom"]}
        return screens[type_id][which]

    def off_screen(self, type_id: str, keys: Any, which: str) -> dict[str, str]:
        """Jira's error for every field of a create/edit that is not on that screen (400, in ``errors``)."""
        screen = self.screen(type_id, which)
        return {
            k: OFF_SCREEN.format(k)
            for k in keys
            if k not in ("project", "issuetype", "comment") and k not in screen
        }

    def set_field_type(self, fd: dict[str, Any], kind: str | None, searcher: Any) -> None:
        """Change a custom field's type and/or searcher (``searcher`` None: not searchable, no JQL clause)."""
        if kind is not None:
            fd["schema"]["type"] = CUSTOM_TYPES[kind][0]
            fd["schema"]["custom"] = CUSTOM_TYPE_PREFIX + kind
        if searcher is not _KEEP:
            fd["searchable"] = searcher is not None
            fd["clauseNames"] = [f"cf[{fd['schema']['customId']}]", fd["name"]] if searcher else []
        self.__dict__.pop("_field_memo", None)  # clause names changed in place

    def create_meta_fields(self, type_id: str) -> list[dict[str, Any]]:
        """``FieldCreateMetadata`` of an issue type's create screen (GET createmeta/{p}/issuetypes/{id})."""
        screen = self.screen(type_id, "create")
        out: list[dict[str, Any]] = []
        ops = {"labels": ["add", "set", "remove"], "issuetype": []}
        required = {"summary", "project", "issuetype"}
        for fd in self.fields:
            fid = fd["id"]
            if fid not in ("issuetype", "project") and fid not in screen:
                continue
            out.append(
                {
                    "fieldId": fid,
                    "key": fd["key"],
                    "name": fd["name"],
                    "required": fid in required,
                    "hasDefaultValue": fid == "reporter",
                    "operations": ops.get(fid, ["set"]),
                    "schema": dict(fd.get("schema") or {"type": "string"}),
                }
            )
        out.sort(key=lambda m: m["fieldId"] not in ("issuetype", "project"))  # stable: then field order
        return out

    def seed(self) -> None:
        """Jira starts empty of issues: the connector creates them."""
        return None

    # -- lookups ---------------------------------------------------------------------------------------------
    def url(self, path: str = "") -> str:
        return f"{self.sb.creds['site_url']}{path}"

    def field(self, ident: str) -> dict[str, Any] | None:
        """A field by id, name or clause name (``cf[10042]``), case-insensitive."""
        low = ident.lower()
        # Memo (JQL evaluates this per clause per issue): rebuilt when the field list is replaced or grows.
        memo = self.__dict__.get("_field_memo")
        stamp = (id(self.fields), len(self.fields))
        if memo is None or memo[0] != stamp:
            memo = (stamp, {})
            self.__dict__["_field_memo"] = memo
        if low in memo[1]:
            return memo[1][low]
        found = None
        for f in self.fields:
            if low in (f["id"].lower(), f["name"].lower()) or low in (c.lower() for c in f["clauseNames"]):
                found = f
                break
        memo[1][low] = found
        return found

    def status(self, ident: str) -> tuple[str, str, str, str] | None:
        for s in STATUSES:
            if ident == s[0] or ident.lower() == s[1].lower():
                return s
        return None

    def issue_type(self, ident: str) -> tuple[str, str] | None:
        for t in ISSUE_TYPES:
            if ident == t[0] or ident.lower() == t[1].lower():
                return t
        return None

    def user(self, account_id: str) -> dict[str, Any] | None:
        return next((u for u in self.users if u["accountId"] == account_id), None)

    def issue(self, id_or_key: str) -> dict[str, Any]:
        iid = self.keys.get(id_or_key.upper(), id_or_key)
        rec = self.issues.get(iid)
        if rec is None:
            raise JiraError(404, ["Issue does not exist or you do not have permission to see it."])
        return rec

    # -- representations -------------------------------------------------------------------------------------
    def user_json(self, u: dict[str, Any] | None, *, details: bool = False) -> dict[str, Any] | None:
        if u is None:
            return None
        out: dict[str, Any] = {
            "self": self.url(f"{API}/user?accountId={u['accountId']}"),
            "accountId": u["accountId"],
            "accountType": u["accountType"],
            "displayName": u["displayName"],
            "active": u["active"],
            "timeZone": "Etc/UTC",
            "avatarUrls": {
                s: f"https://avatar-management.services.atlassian.com/{u['accountId'][:6]}/{s}"
                for s in ("16x16", "24x24", "32x32", "48x48")
            },
        }
        if u["emailVisible"] and u["email"]:
            out["emailAddress"] = u["email"]
        if not details:
            out["locale"] = "en_US"
        return out

    def status_json(self, s: tuple[str, str, str, str]) -> dict[str, Any]:
        cat = CATEGORIES[s[2]]
        return {
            "self": self.url(f"{API}/status/{s[0]}"),
            "description": "",
            "iconUrl": self.url("/images/s.png"),
            "name": s[1],
            "id": s[0],
            "statusCategory": {"self": self.url(f"{API}/statuscategory/{cat['id']}"), **cat},
        }

    def issue_type_json(self, t: tuple[str, str]) -> dict[str, Any]:
        return {
            "self": self.url(f"{API}/issuetype/{t[0]}"),
            "id": t[0],
            "description": f"{t[1]} from BC",
            "iconUrl": self.url(f"/images/issuetype-{t[0]}.png"),
            "name": t[1],
            "subtask": False,
            "avatarId": 10300 + int(t[0]) % 100,
            "hierarchyLevel": 0,
        }

    def project_json(self, full: bool = False) -> dict[str, Any]:
        p = self.project
        out: dict[str, Any] = {
            "self": self.url(f"{API}/project/{p['id']}"),
            "id": p["id"],
            "key": p["key"],
            "name": p["name"],
            "projectTypeKey": "business",
            "simplified": False,
            "avatarUrls": {
                s: self.url(f"/images/project-{s}.png") for s in ("16x16", "24x24", "32x32", "48x48")
            },
        }
        if full:
            out.update(
                {
                    "description": "Business Central documents awaiting a human step",
                    "lead": self.user_json(self.users[1]),
                    "assigneeType": "UNASSIGNED",
                    "issueTypes": [self.issue_type_json(t) for t in ISSUE_TYPES],
                    "isPrivate": False,
                    "style": "classic",
                    "archived": False,
                    "deleted": False,
                }
            )
        return out

    def field_values(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Every field of an issue as the API shows it."""
        f = rec["fields"]
        out: dict[str, Any] = {
            "summary": f["summary"],
            "description": f.get("description"),
            "issuetype": self.issue_type_json(self.issue_type(f["issuetype"])),
            "project": self.project_json(),
            "status": self.status_json(self.status(f["status"])),
            "labels": list(f.get("labels", [])),
            "assignee": self.user_json(self.user(f["assignee"])) if f.get("assignee") else None,
            "reporter": self.user_json(self.user(f["reporter"])) if f.get("reporter") else None,
            "created": jira_ts(rec["created"]),
            "updated": jira_ts(rec["updated"]),
            "issuelinks": self.issuelinks_json(rec),
            # set when the status category changes (To Do -> Done, Done -> In Progress), not within a category
            "statuscategorychangedate": jira_ts(rec.get("category_changed") or rec["created"]),
        }
        out["statusCategory"] = out["status"]["statusCategory"]
        for fd in self.fields:
            if fd["custom"]:
                out[fd["id"]] = f.get(fd["id"])
        return out

    # -- issue links -----------------------------------------------------------------------------------------
    # How links read (https://developer.atlassian.com/cloud/jira/platform/issue-linking-model/): on issue X,
    # an entry with ``outwardIssue: Y`` reads "X <type.outward> Y", one with ``inwardIssue: Y`` reads
    # "X <type.inward> Y". POST /issueLink {inwardIssue: X, outwardIssue: Y, type: Blocks} makes "X blocks Y"
    # (observed on Jira Cloud, against the intuition of the names: mozilla/jira-bugzilla-integration#1285,
    # atlassian/atlassian-mcp-server#112).
    def _links(self) -> dict[str, dict[str, str]]:
        if "issue_links" not in self.__dict__:  # state saved by an older sandbox
            self.__dict__["issue_links"], self.__dict__["next_link_id"] = {}, 10000
        return self.issue_links

    def link_type(self, ident: Any) -> tuple[str, str, str, str] | None:
        if not isinstance(ident, dict):
            return None
        for t in LINK_TYPES:
            if (
                str(ident.get("id") or "") == t[0]
                or str(ident.get("name") or "").casefold() == t[1].casefold()
            ):
                return t
        return None

    def link_type_json(self, t: tuple[str, str, str, str]) -> dict[str, Any]:
        return {
            "id": t[0],
            "name": t[1],
            "inward": t[2],
            "outward": t[3],
            "self": self.url(f"{API}/issueLinkType/{t[0]}"),
        }

    def linked_issue_json(self, rec: dict[str, Any]) -> dict[str, Any]:
        f = rec["fields"]
        return {
            "id": rec["id"],
            "key": rec["key"],
            "self": self.url(f"{API}/issue/{rec['id']}"),
            "fields": {
                "summary": f["summary"],
                "status": self.status_json(self.status(f["status"])),
                "issuetype": self.issue_type_json(self.issue_type(f["issuetype"])),
            },
        }

    def issuelinks_json(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for lid, lk in sorted(self._links().items()):
            if rec["id"] not in (lk["inward"], lk["outward"]):
                continue
            other_id, side = (
                (lk["outward"], "outwardIssue")
                if lk["inward"] == rec["id"]
                else (lk["inward"], "inwardIssue")
            )
            other = self.issues.get(other_id)
            if other is None:
                continue
            t = next(t for t in LINK_TYPES if t[0] == lk["type"])
            out.append(
                {
                    "id": lid,
                    "self": self.url(f"{API}/issueLink/{lid}"),
                    "type": self.link_type_json(t),
                    side: self.linked_issue_json(other),
                }
            )
        return out

    def link_json(self, lid: str) -> dict[str, Any]:
        lk = self._links().get(lid)
        if lk is None or lk["inward"] not in self.issues or lk["outward"] not in self.issues:
            raise JiraError(404, ["No issue link with id '" + lid + "' exists."])
        t = next(t for t in LINK_TYPES if t[0] == lk["type"])
        return {
            "id": lid,
            "self": self.url(f"{API}/issueLink/{lid}"),
            "type": self.link_type_json(t),
            "inwardIssue": self.linked_issue_json(self.issues[lk["inward"]]),
            "outwardIssue": self.linked_issue_json(self.issues[lk["outward"]]),
        }

    def create_link(self, body: Any, actor: dict[str, Any]) -> None:
        """POST /issueLink. The spec: "If the link request duplicates a link, the response indicates that the
        issue link was created. If the request included a comment, the comment is added." (to the outward
        issue: "optionally add a comment to the from (outward) issue")."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), dict) for k in ("inwardIssue", "outwardIssue", "type")
        ):
            raise JiraError(400, ["inwardIssue, outwardIssue and type are required."])
        t = self.link_type(body["type"])
        if t is None:
            name = body["type"].get("name") or body["type"].get("id")
            raise JiraError(404, [f"No issue link type with name '{name}' found."])
        ends = []
        for side in ("inwardIssue", "outwardIssue"):
            ident = str(body[side].get("id") or body[side].get("key") or "")
            try:
                ends.append(self.issue(ident))
            except JiraError:
                raise JiraError(
                    404, [f"Issue '{ident}' does not exist or you do not have permission to see it."]
                ) from None
        inward, outward = ends
        if inward["id"] == outward["id"]:
            raise JiraError(400, ["You cannot link an issue to itself."])
        comment = body.get("comment")
        if comment is not None:
            why = validate_adf(comment.get("body") if isinstance(comment, dict) else None)
            if why:
                raise JiraError(400, [], {"comment": why})
        links = self._links()
        exists = any(
            lk["type"] == t[0] and lk["inward"] == inward["id"] and lk["outward"] == outward["id"]
            for lk in links.values()
        )
        if not exists:
            lid = str(self.next_link_id)
            self.next_link_id += 1
            links[lid] = {"type": t[0], "inward": inward["id"], "outward": outward["id"]}
            for rec in (inward, outward):
                self._touch(rec)
        if comment is not None:
            self._touch(outward)
            self._add_comment(outward, comment["body"], actor)

    def issue_json(
        self,
        rec: dict[str, Any],
        fields: list[str] | str | None,
        *,
        snapshot: dict[str, Any] | None = None,
        properties: list[str] | None = None,
    ) -> dict[str, Any]:
        values = snapshot if snapshot is not None else self.field_values(rec)
        wanted = self.select_fields(fields, values)
        out: dict[str, Any] = {
            "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations",
            "id": rec["id"],
            "self": self.url(f"{API}/issue/{rec['id']}"),
            "key": rec["key"],
        }
        if wanted:
            out["fields"] = {k: values[k] for k in wanted}
        if properties:
            props = rec.get("properties") or {}
            keys = list(props) if "*all" in properties else [p for p in properties if p in props]
            out["properties"] = {k: props[k] for k in keys}
        return out

    def select_fields(self, fields: list[str] | str | None, values: dict[str, Any]) -> list[str]:
        if fields is None:
            return list(values)
        items = [x.strip() for x in (fields.split(",") if isinstance(fields, str) else fields) if x.strip()]
        chosen: list[str] = []
        for item in items:
            if item == "*all":
                chosen.extend(values)
            elif item == "*navigable":
                chosen.extend(k for k in values if k in NAVIGABLE or k.startswith("customfield_"))
            elif item.startswith("-"):
                continue
            elif item in ("id", "key"):
                continue
            else:
                fd = self.field(item)
                if fd is not None and fd["id"] in values:
                    chosen.append(fd["id"])
        excluded = {self.field(i[1:])["id"] for i in items if i.startswith("-") and self.field(i[1:])}
        seen: list[str] = []
        for c in chosen:
            if c not in excluded and c not in seen:
                seen.append(c)
        return seen

    # -- writes ----------------------------------------------------------------------------------------------
    def _check_fields(
        self, fields: dict[str, Any], *, creating: bool, errors: dict[str, str]
    ) -> dict[str, Any]:
        """Validate and normalise ``fields`` of a create/edit; fills ``errors`` like Jira does."""
        out: dict[str, Any] = {}
        for fid, value in fields.items():
            if fid == "project":
                ident = (
                    str((value or {}).get("id") or (value or {}).get("key") or "")
                    if isinstance(value, dict)
                    else str(value)
                )
                if ident not in (self.project["id"], self.project["key"]):
                    errors["project"] = "Specify a valid project ID or key"
                else:
                    out["project"] = self.project["id"]
            elif fid == "issuetype":
                ident = (
                    str((value or {}).get("id") or (value or {}).get("name") or "")
                    if isinstance(value, dict)
                    else ""
                )
                t = self.issue_type(ident) if ident else None
                if t is None:
                    errors["issuetype"] = "Specify a valid issue type"
                else:
                    out["issuetype"] = t[0]
            elif fid == "summary":
                if not isinstance(value, str) or not value.strip():
                    errors["summary"] = "You must specify a summary of the issue."
                elif len(value) > 255:
                    errors["summary"] = "Summary must be less than 255 characters."
                elif "\n" in value:
                    errors["summary"] = "The summary is invalid because it contains newline characters."
                else:
                    out["summary"] = value
            elif fid == "description":
                if value is None:
                    out["description"] = None
                else:
                    why = validate_adf(value)
                    if why:
                        errors["description"] = why
                    else:
                        out["description"] = value
            elif fid == "labels":
                if not isinstance(value, list) or not all(
                    isinstance(x, str) and x and " " not in x for x in value
                ):
                    errors["labels"] = "Labels must be a list of strings without spaces."
                else:
                    out["labels"] = list(dict.fromkeys(value))
            elif fid in ("assignee", "reporter"):
                acct = (
                    (value or {}).get("accountId") or (value or {}).get("id")
                    if isinstance(value, dict)
                    else None
                )
                if value is None:
                    out[fid] = None
                elif acct is None or self.user(str(acct)) is None:
                    errors[fid] = f"User '{acct}' does not exist or cannot be {fid}."
                else:
                    out[fid] = str(acct)
            else:
                fd = self.field(fid) if fid.startswith("customfield_") else None
                if fd is None or not fd["custom"]:
                    errors[fid] = (
                        f"Field '{fid}' cannot be set. It is not on the appropriate screen, or unknown."
                    )
                    continue
                kind = fd["schema"]["custom"].rsplit(":", 1)[-1]
                if value is None:
                    out[fid] = None
                elif kind == "textarea":
                    # Spec createIssue: "any textarea type custom fields (multi-line text fields) take
                    # Atlassian Document Format content. Single line custom fields (textfield) accept a
                    # string".
                    why = validate_adf(value)
                    if why:
                        errors[fid] = why
                    else:
                        out[fid] = value
                elif kind == "float":
                    if isinstance(value, bool) or not isinstance(value, int | float):
                        errors[fid] = f"Operation value must be a number ({fd['name']})"
                    else:
                        out[fid] = float(value)
                elif not isinstance(value, str):
                    errors[fid] = f"Operation value must be a string ({fd['name']})"
                elif len(value) > 255:
                    errors[fid] = f"{fd['name']}: text is too long (maximum 255 characters)"
                else:
                    out[fid] = value
        if creating:
            for req, msg in (
                ("project", "Specify a valid project ID or key"),
                ("issuetype", "Specify an issue type"),
                ("summary", "You must specify a summary of the issue."),
            ):
                if req not in fields and req not in errors:
                    errors[req] = msg
        return out

    def create(self, body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        """Create one issue; raises JiraError(400) with the field errors."""
        if not isinstance(body, dict) or not isinstance(body.get("fields", {}), dict):
            raise JiraError(400, ["Request body must be an issue with fields."])
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        both = set(fields) & set(update)
        if both:
            raise JiraError(400, [], {f: "Field cannot be set in both fields and update." for f in both})
        errors: dict[str, str] = {}
        clean = self._check_fields(fields, creating=True, errors=errors)
        if "issuetype" in clean:
            errors.update(self.off_screen(clean["issuetype"], [*fields, *update], "create"))
        if errors:
            raise JiraError(400, [], errors)
        now = self.sb.now()
        iid = str(self.next_issue_id)
        self.next_issue_id += 1
        key = f"{self.project['key']}-{self.next_issue_num}"
        self.next_issue_num += 1
        clean.setdefault("labels", [])
        clean.setdefault("reporter", actor["accountId"])
        clean["status"] = STATUSES[0][0]
        rec = {
            "id": iid,
            "key": key,
            "fields": clean,
            "created": now,
            "updated": now,
            "comments": [],
            "properties": {
                p["key"]: p.get("value")
                for p in body.get("properties", []) or []
                if isinstance(p, dict) and "key" in p
            },
            "search_visible_after": now.timestamp() + self.sb.options.search_lag_s,
            "search_snapshot": None,
        }
        self.issues[iid] = rec
        self.keys[key] = iid
        self._fire(rec, "jira:issue_created", "issue_created", actor, [])
        return {"id": iid, "key": key, "self": self.url(f"{API}/issue/{iid}")}

    def _touch(self, rec: dict[str, Any]) -> None:
        """Before a write: remember what search shows now; the new state becomes searchable after the lag."""
        now = self.sb.now()
        rec["search_snapshot"] = self.search_view(rec, reconciled=False)
        rec["search_visible_after"] = now.timestamp() + self.sb.options.search_lag_s
        rec["updated"] = now

    def _change_items(self, rec: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
        items = []
        for fid, value in new.items():
            old = rec["fields"].get(fid)
            if old == value:
                continue
            fd = self.field(fid)
            item: dict[str, Any] = {
                "field": fd["name"] if fd else fid,
                "fieldId": fid,
                "fieldtype": "custom" if fid.startswith("customfield_") else "jira",
            }
            if fid == "status":
                item.update(
                    {
                        "field": "status",
                        "from": old,
                        "fromString": self.status(old)[1],
                        "to": value,
                        "toString": self.status(value)[1],
                    }
                )
            elif fid in ("assignee", "reporter"):
                item.update(
                    {
                        "from": old,
                        "to": value,
                        "fromString": (self.user(old) or {}).get("displayName") if old else None,
                        "toString": (self.user(value) or {}).get("displayName") if value else None,
                    }
                )
            elif fid == "description":
                item.update({"from": None, "fromString": None, "to": None, "toString": "(ADF)"})
            else:
                item.update({"fromString": _as_string(old), "toString": _as_string(value)})
            items.append({k: v for k, v in item.items() if v is not None})
        return items

    def edit(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> None:
        if not isinstance(body, dict):
            raise JiraError(400, ["Request body must be a JSON object."])
        fields = dict(body.get("fields") or {})
        update = body.get("update") or {}
        both = set(fields) & set(update)
        if both:
            raise JiraError(400, [], {f: "Field cannot be set in both fields and update." for f in both})
        for locked in ("project", "issuetype", "status"):
            if locked in fields:
                raise JiraError(
                    400,
                    [],
                    {
                        locked: f"Field '{locked}' cannot be set. It is not on the "
                        "appropriate screen, or unknown."
                    },
                )
        errors: dict[str, str] = {}
        new = self._check_fields(fields, creating=False, errors=errors)
        comments: list[Any] = []
        for fid, ops in update.items():
            if not isinstance(ops, list):
                errors[fid] = "Update operations must be a list."
                continue
            for op in ops:
                if not isinstance(op, dict) or len(op) != 1:
                    errors[fid] = "Each update operation needs exactly one of set/add/remove/edit."
                    continue
                verb, value = next(iter(op.items()))
                if fid == "comment" and verb == "add":
                    why = validate_adf((value or {}).get("body") if isinstance(value, dict) else None)
                    if why:
                        errors["comment"] = why
                    else:
                        comments.append(value["body"])
                elif fid == "labels" and verb in ("add", "remove", "set"):
                    labels = list(new.get("labels", rec["fields"].get("labels", [])))
                    if verb == "set":
                        labels = list(value or [])
                    elif verb == "add" and value not in labels:
                        labels.append(value)
                    elif verb == "remove" and value in labels:
                        labels.remove(value)
                    new["labels"] = labels
                elif verb == "set":
                    new.update(self._check_fields({fid: value}, creating=False, errors=errors))
                else:
                    errors[fid] = f"Operation '{verb}' is not supported for field '{fid}'."
        errors.update(self.off_screen(rec["fields"]["issuetype"], [*fields, *update], "edit"))
        if errors:
            raise JiraError(400, [], errors)
        items = self._change_items(rec, new)
        if not items and not comments:
            return
        self._touch(rec)
        rec["fields"].update(new)
        for c in comments:
            self._add_comment(rec, c, actor)
        if items:
            self._fire(rec, "jira:issue_updated", "issue_updated", actor, items)

    def _add_comment(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        now = self.sb.now()
        cid = str(self.next_comment_id)
        self.next_comment_id += 1
        c = {"id": cid, "body": body, "author": actor["accountId"], "created": now}
        rec["comments"].append(c)
        return c

    def comment_json(self, rec: dict[str, Any], c: dict[str, Any]) -> dict[str, Any]:
        author = self.user_json(self.user(c["author"]), details=True)
        return {
            "self": self.url(f"{API}/issue/{rec['id']}/comment/{c['id']}"),
            "id": c["id"],
            "author": author,
            "body": c["body"],
            "updateAuthor": author,
            "created": jira_ts(c["created"]),
            "updated": jira_ts(c["created"]),
            "jsdPublic": True,
        }

    def add_comment(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JiraError(400, ["Comment body must be a JSON object."])
        why = validate_adf(body.get("body"))
        if why:
            raise JiraError(400, [] if why.startswith("Operation") else ["INVALID_INPUT"], {"comment": why})
        self._touch(rec)
        c = self._add_comment(rec, body["body"], actor)
        return self.comment_json(rec, c)

    def transitions(self, rec: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {
                "id": tid,
                "name": name,
                "to": self.status_json((sid, name, cat, tid)),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isAvailable": True,
                "isConditional": False,
                "looped": False,
            }
            for sid, name, cat, tid in STATUSES
            if sid != rec["fields"]["status"]
        ]

    def transition(self, rec: dict[str, Any], body: Any, actor: dict[str, Any]) -> None:
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("transition"), dict)
            or not body["transition"].get("id")
        ):
            raise JiraError(400, ["Missing 'transition' identifier"])
        tid = str(body["transition"]["id"])
        target = next((s for s in STATUSES if s[3] == tid and s[0] != rec["fields"]["status"]), None)
        if target is None:
            raise JiraError(400, [f"Transition id '{tid}' is not valid for this issue."])
        fields = body.get("fields") or {}
        if fields:
            raise JiraError(
                400,
                [],
                {
                    f: f"Field '{f}' cannot be set. It is not on the appropriate screen, or unknown."
                    for f in fields
                },
            )
        comments = []
        for op in (body.get("update") or {}).get("comment", []) or []:
            value = op.get("add") if isinstance(op, dict) else None
            why = validate_adf((value or {}).get("body") if isinstance(value, dict) else None)
            if why:
                raise JiraError(400, [], {"comment": why})
            comments.append(value["body"])
        self._move(rec, target, actor, comments)

    def _move(
        self,
        rec: dict[str, Any],
        target: tuple[str, str, str, str],
        actor: dict[str, Any],
        comments: list[Any] | None = None,
    ) -> None:
        items = self._change_items(rec, {"status": target[0]})
        self._touch(rec)
        if self.status(rec["fields"]["status"])[2] != target[2]:
            rec["category_changed"] = self.sb.now()
        rec["fields"]["status"] = target[0]
        for c in comments or []:
            self._add_comment(rec, c, actor)
        self._fire(rec, "jira:issue_updated", "issue_generic", actor, items)

    # -- search ----------------------------------------------------------------------------------------------
    def search_view(self, rec: dict[str, Any], reconciled: bool) -> dict[str, Any] | None:
        """What the (lagging) search index holds for an issue: None when it is not indexed yet."""
        if reconciled or self.sb.now().timestamp() >= rec["search_visible_after"]:
            # Like Jira's index, keep the indexed document until the issue is written again (every write
            # goes through _touch, which moves ``updated``): a search does not rebuild 10,000 documents.
            key = (rec["updated"], rec["search_visible_after"])
            cache = self.__dict__.setdefault("_view_cache", {})
            hit = cache.get(rec["id"])
            if hit is not None and hit[0] == key:
                return hit[1]
            values = self.field_values(rec)
            cache[rec["id"]] = (key, values)
            return values
        return rec["search_snapshot"]

    def _or_group(
        self, node: Any
    ) -> (
        tuple[dict[str, Any], set[str], set[tuple[str, ...]], dict[str, list[TextClause]], list[Any], int]
        | None
    ):
        """An OR chain of ``=``/``in``/``~`` clauses on one custom text field, as one set lookup.

        The connector asks for a batch of record ids in one JQL; evaluating 100 OR'ed clauses per issue made
        the sandbox, not the connector, the bottleneck. Same answers as clause by clause: ``=`` values go in a
        set, simple ``~`` queries (one phrase or one group of words) are indexed by their first word, the rest
        are evaluated one by one.
        """
        cache = self.__dict__.setdefault("_or_cache", {})
        hit = cache.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        leaves: list[Any] = []
        stack = [node]
        while stack:
            n = stack.pop()
            if n[0] == "or":
                stack.extend((n[1], n[2]))
            elif n[0] in ("and", "not"):
                leaves = []
                break
            else:
                leaves.append(n)
        group = None
        fds = {id(self.field(leaf[1])): self.field(leaf[1]) for leaf in leaves}
        if leaves and len(fds) == 1:
            fd = next(iter(fds.values()))
            ok = (
                fd is not None
                and fd["custom"]
                and fd["schema"]["type"] != "number"
                and all(leaf[2] in ("=", "in", "~") and leaf[3] is not None for leaf in leaves)
            )
            if ok:
                exact: set[str] = set()
                whole: set[tuple[str, ...]] = set()
                by_first: dict[str, list[TextClause]] = {}
                slow: list[Any] = []
                for _, _, op, val in leaves:
                    for v in val if isinstance(val, list) else [val]:
                        if op != "~":
                            exact.add(str(v).lower())
                            continue
                        q = self._text_query(str(v), fd)
                        if len(q) == 1 and len(q[0][0]) == 1 and not q[0][1] and q[0][0][0][0] != "prefix":
                            clause = q[0][0][0]
                            whole.add(clause[1])
                            by_first.setdefault(clause[1][0], []).append(clause)
                        else:
                            slow.append(q)
                # A value of at most ``fewest`` words can only match a phrase equal to it (a phrase needs as
                # many words in that order; "all" needs its distinct words, in any order: one more than that).
                fewest = min((len(c[1]) - (c[0] == "all") for cs in by_first.values() for c in cs), default=0)
                group = (fd, exact, whole, by_first, slow, fewest)
        if len(cache) > 256:
            cache.clear()
        cache[id(node)] = (node, group)
        return group

    def _text_query(self, value: str, fd: dict[str, Any]) -> TextQuery:
        q = compile_text_query(value)
        if not q:
            raise JqlError(
                f"The value '{value}' of the '{fd['name']}' field has no words to search for; "
                "text search needs at least one word."
            )
        return q

    def _doc_tokens(self, raw: Any) -> tuple[str, tuple[str, ...], frozenset[str]]:
        """(lower-cased text, indexed words, their set) of a field value; memoised (values repeat)."""
        memo = self.__dict__.setdefault("_token_memo", {})
        hit = memo.get(raw) if isinstance(raw, str) else None
        if hit is None:
            low = _text_of(raw).lower()
            toks = text_tokens(low)
            hit = (low, toks, frozenset(toks))
            if isinstance(raw, str):
                if len(memo) > 200_000:
                    memo.clear()
                memo[raw] = hit
        return hit

    def _cf_value(self, values: dict[str, Any], fd: dict[str, Any]) -> Any:
        return values.get(fd["id"])

    def matches(self, node: Any, rec: dict[str, Any], values: dict[str, Any]) -> bool:
        if node is None:
            return True
        tag = node[0]
        if tag == "and":
            return self.matches(node[1], rec, values) and self.matches(node[2], rec, values)
        if tag == "or":
            group = self._or_group(node)
            if group is not None:
                fd, exact, whole, by_first, slow, fewest = group
                raw = self._cf_value(values, fd)
                if raw is None:
                    return False
                actual_s, toks, tset = self._doc_tokens(raw)
                if actual_s in exact or toks in whole:  # usually the phrase is the whole value
                    return True
                if len(toks) > fewest:  # else no indexed clause fits in the value other than the whole of it
                    for t in tset:
                        for clause in by_first.get(t, ()):
                            if _clause_matches(clause, toks, tset):
                                return True
                return any(text_query_matches(q, toks, tset) for q in slow)
            return self.matches(node[1], rec, values) or self.matches(node[2], rec, values)
        if tag == "not":
            return not self.matches(node[1], rec, values)
        _, fname, op, val = node
        low = fname.lower()
        vals = val if isinstance(val, list) else [val]
        if low in ("project",):
            actual: list[Any] = [values["project"]["key"].lower(), values["project"]["id"]]
        elif low in ("issuetype", "type"):
            actual = [values["issuetype"]["name"].lower(), values["issuetype"]["id"]]
        elif low == "status":
            actual = [values["status"]["name"].lower(), values["status"]["id"]]
        elif low == "statuscategory":
            cat = values["status"]["statusCategory"]
            actual = [cat["key"].lower(), cat["name"].lower(), str(cat["id"])]
        elif low in ("key", "issuekey", "id", "issue"):
            actual = [rec["key"].lower(), rec["id"]]
        elif low in ("assignee", "reporter"):
            u = values.get(low)
            actual = [u["accountId"].lower()] if u else []
        elif low == "labels":
            actual = [x.lower() for x in values.get("labels", [])]
        elif low in ("updated", "created", "updateddate", "createddate"):
            return self._date_cmp(values["updated" if low.startswith("updated") else "created"], op, val)
        elif low in ("summary", "text"):
            actual = [values.get("summary", "").lower()]
        else:
            fd = self.field(fname)
            if fd is None or not fd["custom"]:
                raise JqlError(f"Field '{fname}' does not exist or you do not have permission to view it.")
            raw = self._cf_value(values, fd)
            if fd["schema"]["type"] == "number":
                return self._num_cmp(raw, op, vals)
            actual = [] if raw is None else [self._doc_tokens(raw)[0]]
        want = [str(v).lower() for v in vals] if val is not None else []
        if op in ("=", "in"):
            return any(w in actual for w in want)
        if op in ("!=", "not in"):
            return bool(actual) and not any(w in actual for w in want)
        if op in ("~", "!~"):
            fd = self.field(fname) or {"name": fname}
            found = any(
                text_query_matches(self._text_query(str(v), fd), *self._doc_tokens(a)[1:])
                for v in vals  # not lower-cased: the Boolean operators are ALL CAPS
                for a in actual
            )
            return found if op == "~" else not found
        if op == "is empty":
            return not actual
        if op == "is not empty":
            return bool(actual)
        raise JqlError(f"The operator '{op}' is not supported by the '{fname}' field.")

    @staticmethod
    def _num_cmp(raw: Any, op: str, vals: list[str]) -> bool:
        if op == "is empty":
            return raw is None
        if op == "is not empty":
            return raw is not None
        if raw is None:
            return False
        try:
            nums = [float(v) for v in vals]
        except ValueError as exc:
            raise JqlError(f"'{vals[0]}' is not a valid number.") from exc
        checks: dict[str, Callable[[], bool]] = {
            "=": lambda: raw in nums,
            "in": lambda: raw in nums,
            "!=": lambda: raw not in nums,
            "not in": lambda: raw not in nums,
            ">": lambda: raw > nums[0],
            ">=": lambda: raw >= nums[0],
            "<": lambda: raw < nums[0],
            "<=": lambda: raw <= nums[0],
        }
        if op not in checks:
            raise JqlError(f"The operator '{op}' is not supported by number fields.")
        return checks[op]()

    def _date_cmp(self, actual_s: str, op: str, val: Any) -> bool:
        actual = datetime.strptime(actual_s, "%Y-%m-%dT%H:%M:%S.%f%z")
        target = self._jql_date(str(val))
        ops: dict[str, Callable[[], bool]] = {
            ">": lambda: actual > target,
            ">=": lambda: actual >= target,
            "<": lambda: actual < target,
            "<=": lambda: actual <= target,
            "=": lambda: actual == target,
            "!=": lambda: actual != target,
        }
        if op not in ops:
            raise JqlError(f"The operator '{op}' is not supported by date fields.")
        return ops[op]()

    def _jql_date(self, text: str) -> datetime:
        now = self.sb.now()
        if text.lower() in ("now()", "now"):
            return now
        m = _RELATIVE.match(text.strip())
        if m:
            sign = -1 if m.group(1) == "-" else 1
            unit = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60}[m.group(3)]
            return now + timedelta(seconds=sign * int(m.group(2)) * unit)
        for fmt in ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d"):
            try:
                return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
            except ValueError:
                continue
        raise JqlError(
            f"Date value '{text}' for field 'updated' is invalid. Valid formats include: "
            "'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period "
            "format e.g. '-5d', '4w 2d'."
        )

    def search(self, body: dict[str, Any]) -> dict[str, Any]:
        jql = body.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            raise JiraError(
                400,
                [
                    "Unbounded JQL queries are not allowed here. Please add a search "
                    "restriction to your query."
                ],
            )
        try:
            where, order = parse_jql(jql)
        except JqlError as exc:
            raise JiraError(400, [str(exc)]) from None
        if where is None:
            raise JiraError(
                400,
                [
                    "Unbounded JQL queries are not allowed here. Please add a search "
                    "restriction to your query."
                ],
            )
        for fname, _ in jql_fields(where):
            fd = self.field(fname)
            # A custom field without a searcher has no JQL clause (spec POST /field: "If no searcher is
            # provided, the field isn't searchable"): Jira cannot resolve its name or cf[N].
            if fname.lower() not in _SYSTEM_CLAUSES and (
                fd is None or not fd["custom"] or not fd.get("searchable", True)
            ):
                raise JiraError(
                    400, [f"Field '{fname}' does not exist or you do not have permission to view it."]
                )
        reconcile = body.get("reconcileIssues") or []
        if (
            not isinstance(reconcile, list)
            or len(reconcile) > RECONCILE_LIMIT
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in reconcile)
        ):
            raise JiraError(400, [f"reconcileIssues accepts at most {RECONCILE_LIMIT} numeric issue ids."])
        max_results = body.get("maxResults", 50)
        if not isinstance(max_results, int) or max_results < 1:
            raise JiraError(400, ["maxResults must be a positive integer."])
        max_results = min(max_results, 5000)
        reconciled = {str(x) for x in reconcile}
        hits: list[tuple[dict[str, Any], dict[str, Any]]] = []
        try:
            for rec in self.issues.values():
                view = self.search_view(rec, rec["id"] in reconciled)
                if view is not None and self.matches(where, rec, view):
                    hits.append((rec, view))
        except JqlError as exc:
            raise JiraError(400, [str(exc)]) from None
        for fname, desc in reversed(order or [("key", False)]):
            low = fname.lower()

            def sort_key(hit: tuple[dict[str, Any], dict[str, Any]], low: str = low) -> Any:
                rec, view = hit
                if low in ("key", "issuekey", "id"):
                    return int(rec["id"])
                if low in ("created", "updated"):
                    return view[low]
                fd = self.field(low)
                v = view.get(fd["id"]) if fd else None
                return (v is None, v if v is not None else 0)

            hits.sort(key=sort_key, reverse=desc)
        token = body.get("nextPageToken")
        start = 0
        digest = hashlib.sha256(jql.encode()).hexdigest()[:12]
        if token:
            try:
                start_s, tok_digest = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
                start = int(start_s)
                if tok_digest != digest:
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                raise JiraError(400, ["The provided next page token is invalid or expired."]) from None
        page = hits[start : start + max_results]
        fields = body.get("fields") or ["id"]
        props = body.get("properties") or None
        if props is not None and (not isinstance(props, list) or len(props) > 5):
            raise JiraError(400, ["properties accepts a list of at most 5 issue property keys."])
        out: dict[str, Any] = {
            "issues": [self.issue_json(rec, fields, snapshot=view, properties=props) for rec, view in page]
        }
        end = start + len(page)
        if end < len(hits):
            out["nextPageToken"] = base64.urlsafe_b64encode(f"{end}:{digest}".encode()).decode()
            out["isLast"] = False
        else:
            out["isLast"] = True
        return out

    # -- users -----------------------------------------------------------------------------------------------
    def find_users(self, query: str | None, account_id: str | None) -> list[dict[str, Any]]:
        if account_id:
            u = self.user(account_id)
            return [u] if u else []
        q = (query or "").lower()
        out = []
        for u in self.users:
            words = u["displayName"].lower().split()
            email = (u["email"] or "").lower()
            if (
                any(w.startswith(q) for w in words)
                or u["displayName"].lower().startswith(q)
                or (u["emailVisible"] and email.startswith(q))
                or (email and email == q)
            ):
                out.append(u)
        return out

    # -- webhooks --------------------------------------------------------------------------------------------
    WEBHOOK_FIELDS = {"issuekey", "key", "project", "issuetype", "type", "status", "assignee", "reporter"}

    def webhook_jql_error(self, jql: str) -> str | None:
        try:
            where, order = parse_jql(jql)
        except JqlError as exc:
            return str(exc)
        if order:
            return "The clause ORDER BY is unsupported"
        for fname, op in jql_fields(where):
            low = fname.lower()
            if (
                low not in self.WEBHOOK_FIELDS
                and not low.startswith("issue.property")
                and not low.startswith("cf[")
            ):
                return f"The clause {fname} is unsupported"
            if op not in ("=", "!=", "in", "not in"):
                return f"The operator '{op}' is unsupported"
        return None

    def _fire(
        self,
        rec: dict[str, Any],
        event: str,
        type_name: str,
        actor: dict[str, Any],
        items: list[dict[str, Any]],
    ) -> None:
        """Queue deliveries for the webhooks whose event, JQL and field filter match this change."""
        now_ms = int(self.sb.now().timestamp() * 1000)
        values = self.field_values(rec)
        matched = []
        for wid, wh in sorted(self.webhooks.items()):
            if wh["expirationDate"] <= now_ms or event not in wh["events"]:
                continue
            if event == "jira:issue_updated" and wh.get("fieldIdsFilter"):
                if not {i.get("fieldId") for i in items} & set(wh["fieldIdsFilter"]):
                    continue
            try:
                if not self.matches(parse_jql(wh["jqlFilter"])[0], rec, values):
                    continue
            except JqlError:
                continue
            matched.append(wid)
        admins = [
            wh
            for _, wh in sorted(self.admin_webhooks.items())
            if event in wh["events"] and self._admin_match(wh, rec, values)
        ]
        if (not matched or not self.webhook_url) and not admins:
            return
        payload: dict[str, Any] = {
            "timestamp": now_ms,
            "webhookEvent": event,
            "issue_event_type_name": type_name,
            "user": self.user_json(actor, details=True),
            "issue": self.issue_json(rec, "*all"),
        }
        if items:
            self.next_change_id += 1
            payload["changelog"] = {"id": str(self.next_change_id), "items": items}
        if matched and self.webhook_url:
            # matchedWebhookIds: only on REST-registered webhooks (jira-api.md 3c)
            body = json.dumps({**payload, "matchedWebhookIds": matched}).encode()
            self._schedule_delivery(self.webhook_url, body, self._next_ident(), 0, auth=("jwt", None))
        for wh in admins:
            body = json.dumps(payload).encode()
            self._schedule_delivery(wh["url"], body, self._next_ident(), 0, auth=("hmac", wh.get("secret")))

    def _next_ident(self) -> str:
        ident = str(self.next_delivery)
        self.next_delivery += 1
        return ident

    def _admin_match(self, wh: dict[str, Any], rec: dict[str, Any], values: dict[str, Any]) -> bool:
        if not wh.get("jqlFilter"):
            return True
        try:
            return bool(self.matches(parse_jql(wh["jqlFilter"])[0], rec, values))
        except JqlError:
            return False

    def delivery_jwt(self) -> str:
        """The bearer token Jira sends with a dynamic (OAuth 2.0 app) webhook: HS256 with the app's client
        secret, ``iat`` and a short ``exp``. Atlassian documents no claim set beyond that (jira-api.md 3b;
        https://nango.dev/docs/api-integrations/jira/webhooks: "Jira signs dynamic webhook requests
        (/rest/api/3/webhook) with a bearer JWT in the Authorization header, using your app's client
        secret"), so no other claim is invented here. Wall-clock time: the token is about the HTTP exchange,
        not the sandbox's simulated clock.
        """
        now = int(time.time())

        def seg(obj: dict[str, Any]) -> str:
            return (
                base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode())
                .rstrip(b"=")
                .decode()
            )

        signing = (
            f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg({'iat': now, 'exp': now + DELIVERY_JWT_TTL_S})}"
        )
        sig = hmac.new(self.sb.creds["atlassian_client_secret"].encode(), signing.encode(), hashlib.sha256)
        return f"{signing}.{base64.urlsafe_b64encode(sig.digest()).rstrip(b'=').decode()}"

    def _schedule_delivery(
        self,
        url: str,
        body: bytes,
        ident: str,
        attempt: int,
        delay: float = 0.0,
        *,
        auth: tuple[str, str | None],
    ) -> None:
        sb = self.sb

        def send() -> None:
            headers = {
                "X-Atlassian-Webhook-Identifier": ident,
                "X-Atlassian-Webhook-Flow": "Primary",
                "User-Agent": "Atlassian Webhook HTTP Client",
                "Content-Type": "application/json",
            }
            kind, secret = auth
            if kind == "jwt":  # a fresh token per attempt (its exp is short)
                headers["Authorization"] = f"Bearer {self.delivery_jwt()}"
            elif secret:  # admin webhook created with a secret; without one Jira sends no signature
                sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Hub-Signature"] = f"sha256={sig}"
            if attempt:
                headers["X-Atlassian-Webhook-Retry"] = str(attempt)
            resp = sb.post_json(url, body, headers)
            sb.stats.bump("jira.webhooks.sent")
            status = resp.status_code if resp is not None else None
            with sb.lock:
                self.deliveries.append(
                    {"id": ident, "url": url, "attempt": attempt, "status": status, "auth": auth[0]}
                )
                del self.deliveries[:-200]
            retry = status is None or status in (408, 409, 425, 429) or status >= 500
            if retry and attempt < len(WEBHOOK_RETRY_DELAYS_S):
                sb.stats.bump("jira.webhooks.retried")
                self._schedule_delivery(
                    url, body, ident, attempt + 1, WEBHOOK_RETRY_DELAYS_S[attempt], auth=auth
                )

        sb.schedule(delay, send)


# -- HTTP layer ----------------------------------------------------------------------------------------------

_SCOPES = {
    "read": "read:jira-work",
    "write": "write:jira-work",
    "user": "read:jira-user",
    "webhook": "manage:jira-webhook",
}


def query_list(rq: Request, name: str) -> list[str] | None:
    """An array query parameter as Jira reads it: repeated (``fields=summary&fields=status``, OpenAPI's form
    style) or comma-separated (the spec: "This parameter accepts a comma-separated list"), or both mixed."""
    raw = rq.query_params.getlist(name)
    if not raw:
        return None
    return [x.strip() for v in raw for x in v.split(",") if x.strip()]


def query_int(rq: Request, name: str, default: int) -> int:
    """An integer query parameter; a 400 (never a 500) when it is not a number."""
    raw = rq.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a number, got '{raw[:50]}'."]) from None


def query_ints(rq: Request, name: str) -> list[int] | None:
    vals = query_list(rq, name)
    if vals is None:
        return None
    try:
        return [int(v) for v in vals]
    except ValueError:
        raise JiraError(400, [f"The '{name}' parameter must be a list of numbers."]) from None


def router(sb: Sandbox) -> APIRouter:
    r = APIRouter(tags=["jira"])
    st = lambda: sb.jira  # noqa: E731 - state is replaced on load; always look it up

    def respond(request: Request, status: int, body: Any = None) -> Response:
        if st().validate:
            _validate_response(sb, request, status, body)
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status_code=status)

    def auth(request: Request, basic: bool, cloud_id: str | None, scope: str) -> dict[str, Any] | Response:
        """The acting user, or the error answer (401 gateway style for OAuth, Jira style for basic)."""
        header = request.headers.get("authorization")
        jira = st()
        if basic:
            want = (
                "Basic "
                + base64.b64encode(f"{sb.creds['jira_email']}:{sb.creds['jira_api_token']}".encode()).decode()
            )
            if not header or not hmac.compare_digest(header, want):
                return JSONResponse(
                    {
                        "errorMessages": ["Client must be authenticated to access this resource."],
                        "errors": {},
                    },
                    status_code=401,
                )
            return jira.users[0]
        rec = atlassian.check_access_token(sb, header)
        if rec is None:
            return JSONResponse({"code": 401, "message": "Unauthorized"}, status_code=401)
        if cloud_id != sb.creds["cloud_id"]:
            return JSONResponse(
                {"code": 404, "message": "Site not found or not accessible with this token"}, status_code=404
            )
        if _SCOPES[scope] not in rec["scopes"]:
            return JSONResponse(
                {"code": 401, "message": "Unauthorized; scope does not match"}, status_code=401
            )
        return jira.users[0]

    async def body_of(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            raise JiraError(400, ["Unexpected character: the request body is not valid JSON."]) from None
        if st().validate:
            _validate_request(sb, request, body)
        return body

    def endpoint(method: str, path: str, scope: str, handler: Callable[..., Any]) -> None:
        """Register ``handler(request, actor, body, **path_params)`` under the OAuth and basic-auth roots."""
        for prefix, basic in (("/ex/jira/{cloudId}", False), ("/site", True)):
            r.add_api_route(
                prefix + path,
                make_route(method, path, scope, handler, basic),
                methods=[method],
                name=f"{method} {path} ({prefix})",
            )

    def make_route(
        method: str, path: str, scope: str, handler: Callable[..., Any], basic: bool
    ) -> Callable[[Request], Any]:
        async def route(request: Request) -> Response:
            params = dict(request.path_params)
            cloud_id = params.pop("cloudId", None)
            actor = auth(request, basic, cloud_id, scope)
            if isinstance(actor, Response):
                return actor
            if path.startswith(f"{API}/webhook") and basic:
                return respond(
                    request,
                    403,
                    {
                        "errorMessages": ["Only Connect and OAuth 2.0 apps can use this operation."],
                        "errors": {},
                    },
                )
            try:
                body = await body_of(request) if method in ("POST", "PUT", "DELETE") else None
                with sb.lock:
                    status, out = handler(request, actor, body, **params)
                    sb.mark_dirty()
            except JiraError as exc:
                return respond(request, exc.status, exc.body)
            return respond(request, status, out)

        return route

    # -- metadata --------------------------------------------------------------------------------------------
    endpoint("GET", f"{API}/field", "read", lambda rq, a, b: (200, st().fields))
    endpoint("GET", f"{API}/myself", "read", lambda rq, a, b: (200, st().user_json(a)))
    endpoint("GET", f"{API}/status", "read", lambda rq, a, b: (200, [st().status_json(s) for s in STATUSES]))

    def get_project(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        p = st().project
        if projectIdOrKey not in (p["id"], p["key"]):
            raise JiraError(404, [f"No project could be found with key '{projectIdOrKey}'."])
        return 200, st().project_json(full=True)

    endpoint("GET", f"{API}/project/{{projectIdOrKey}}", "read", get_project)

    def project_statuses(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        get_project(rq, a, b, projectIdOrKey)
        j = st()
        return 200, [
            {
                "self": j.url(f"{API}/issuetype/{t[0]}"),
                "id": t[0],
                "name": t[1],
                "subtask": False,
                "statuses": [j.status_json(s) for s in STATUSES],
            }
            for t in ISSUE_TYPES
        ]

    endpoint("GET", f"{API}/project/{{projectIdOrKey}}/statuses", "read", project_statuses)

    def issuetypes_for_project(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        pid = rq.query_params.get("projectId")
        if pid != st().project["id"]:
            raise JiraError(404, ["The project is not found or you don't have permission to view it."])
        return 200, [st().issue_type_json(t) for t in ISSUE_TYPES]

    endpoint("GET", f"{API}/issuetype/project", "read", issuetypes_for_project)

    def meta_page(rq: Request, items: list[Any], key: str) -> tuple[int, Any]:
        """A createmeta page (spec: startAt, maxResults default 50, at most 200, total)."""
        start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 50)
        if limit > CREATEMETA_MAX:
            raise JiraError(400, [f"Parameter 'maxResults' must not exceed the limit '{CREATEMETA_MAX}'"])
        if start < 0 or limit < 0:
            raise JiraError(400, ["Parameters 'startAt' and 'maxResults' must not be negative"])
        return 200, {
            key: items[start : start + limit],
            "maxResults": limit,
            "startAt": start,
            "total": len(items),
        }

    def createmeta_project(projectIdOrKey: str) -> None:  # noqa: N803
        p = st().project
        if projectIdOrKey not in (p["id"], p["key"]):
            # the spec documents only 200/400/401 for createmeta
            raise JiraError(400, [f"No project could be found with key '{projectIdOrKey}'."])

    def createmeta_types(rq: Request, a: Any, b: Any, projectIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        createmeta_project(projectIdOrKey)
        return meta_page(rq, [st().issue_type_json(t) for t in ISSUE_TYPES], "issueTypes")

    endpoint("GET", f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes", "read", createmeta_types)

    def createmeta_fields(
        rq: Request,
        a: Any,
        b: Any,
        projectIdOrKey: str,  # noqa: N803
        issueTypeId: str,  # noqa: N803
    ) -> tuple[int, Any]:
        createmeta_project(projectIdOrKey)
        t = next((t for t in ISSUE_TYPES if t[0] == issueTypeId), None)
        if t is None:
            raise JiraError(400, [f"The issue type with id '{issueTypeId}' does not exist in this project."])
        return meta_page(rq, st().create_meta_fields(t[0]), "fields")

    endpoint(
        "GET",
        f"{API}/issue/createmeta/{{projectIdOrKey}}/issuetypes/{{issueTypeId}}",
        "read",
        createmeta_fields,
    )

    # -- issues ----------------------------------------------------------------------------------------------
    def create_issue(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        return 201, st().create(b, a)

    endpoint("POST", f"{API}/issue", "write", create_issue)

    def bulk_create(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        updates = (b or {}).get("issueUpdates") if isinstance(b, dict) else None
        if not isinstance(updates, list) or not updates:
            raise JiraError(400, ["issueUpdates must be a non-empty list."])
        if len(updates) > BULK_LIMIT:
            return 400, {
                "issues": [],
                "errors": [
                    {
                        "status": 400,
                        "failedElementNumber": BULK_LIMIT,
                        "elementErrors": {
                            "errorMessages": [
                                f"Bulk create supports at most {BULK_LIMIT} issues per request."
                            ],
                            "errors": {},
                        },
                    }
                ],
            }
        created, errors = [], []
        for i, upd in enumerate(updates):
            try:
                created.append(st().create(upd, a))
            except JiraError as exc:
                errors.append({"status": exc.status, "elementErrors": exc.body, "failedElementNumber": i})
        return (201 if created else 400), {"issues": created, "errors": errors}

    endpoint("POST", f"{API}/issue/bulk", "write", bulk_create)

    def get_issue(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        fields = query_list(rq, "fields")
        return 200, st().issue_json(rec, fields or "*all", properties=query_list(rq, "properties"))

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}", "read", get_issue)

    def get_editmeta(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        """Spec getEditIssueMeta: the fields an edit of this issue may set (those on its edit screen)."""
        j = st()
        rec = j.issue(issueIdOrKey)
        screen = j.screen(rec["fields"]["issuetype"], "edit")
        ops = {"labels": ["add", "set", "remove"]}
        return 200, {
            "fields": {
                fd["id"]: {
                    "key": fd["key"],
                    "name": fd["name"],
                    "required": fd["id"] == "summary",
                    "operations": ops.get(fd["id"], ["set"]),
                    "schema": dict(fd.get("schema") or {"type": "string"}),
                }
                for fd in j.fields
                if fd["id"] in screen
            }
        }

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/editmeta", "read", get_editmeta)

    def edit_issue(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        st().edit(rec, b, a)
        if rq.query_params.get("returnIssue", "false").lower() == "true":
            return 200, st().issue_json(rec, "*all")
        return 204, None

    endpoint("PUT", f"{API}/issue/{{issueIdOrKey}}", "write", edit_issue)

    def get_transitions(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        rec = st().issue(issueIdOrKey)
        return 200, {"expand": "transitions", "transitions": st().transitions(rec)}

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/transitions", "read", get_transitions)

    def do_transition(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        st().transition(st().issue(issueIdOrKey), b, a)
        return 204, None

    endpoint("POST", f"{API}/issue/{{issueIdOrKey}}/transitions", "write", do_transition)

    def add_comment(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        return 201, st().add_comment(st().issue(issueIdOrKey), b, a)

    endpoint("POST", f"{API}/issue/{{issueIdOrKey}}/comment", "write", add_comment)

    def get_comments(rq: Request, a: Any, b: Any, issueIdOrKey: str) -> tuple[int, Any]:  # noqa: N803
        """Paged like Jira: ``startAt``, ``maxResults`` (default 100), ``orderBy`` created / -created (400
        otherwise), per the spec of GET /rest/api/3/issue/{issueIdOrKey}/comment."""
        rec = st().issue(issueIdOrKey)
        q = rq.query_params
        order = q.get("orderBy")
        if order is not None and order not in ("created", "+created", "-created"):
            raise JiraError(400, [f"The orderBy value '{order}' is not supported; use created or -created."])
        try:
            start = max(0, int(q.get("startAt", 0)))
            limit = min(COMMENT_PAGE_MAX, max(1, int(q.get("maxResults", 100))))
        except ValueError:
            raise JiraError(400, ["startAt and maxResults must be integers."]) from None
        ordered = list(reversed(rec["comments"])) if order == "-created" else list(rec["comments"])
        page = [st().comment_json(rec, c) for c in ordered[start : start + limit]]
        return 200, {"startAt": start, "maxResults": limit, "total": len(ordered), "comments": page}

    endpoint("GET", f"{API}/issue/{{issueIdOrKey}}/comment", "read", get_comments)

    # -- issue links -----------------------------------------------------------------------------------------
    def linking_on() -> None:
        """The spec answers 404 on every issue-link operation "if issue linking is disabled"."""
        if not st().__dict__.get("issue_linking", True):
            raise JiraError(404, ["Issue linking is currently disabled."])

    def link_types(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        linking_on()
        return 200, {"issueLinkTypes": [st().link_type_json(t) for t in LINK_TYPES]}

    endpoint("GET", f"{API}/issueLinkType", "read", link_types)

    def create_link(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        linking_on()
        st().create_link(b, a)
        return 201, None  # "This resource returns nothing on the creation of an issue link."

    endpoint("POST", f"{API}/issueLink", "write", create_link)

    def get_link(rq: Request, a: Any, b: Any, linkId: str) -> tuple[int, Any]:  # noqa: N803
        linking_on()
        return 200, st().link_json(linkId)

    endpoint("GET", f"{API}/issueLink/{{linkId}}", "read", get_link)

    # -- search ----------------------------------------------------------------------------------------------
    endpoint("POST", f"{API}/search/jql", "read", lambda rq, a, b: (200, st().search(b or {})))

    def search_get(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        q = rq.query_params
        body: dict[str, Any] = {"jql": q.get("jql"), "nextPageToken": q.get("nextPageToken")}
        if q.get("maxResults"):
            body["maxResults"] = query_int(rq, "maxResults", 50)
        for name, parse in (
            ("fields", query_list),
            ("properties", query_list),
            ("reconcileIssues", query_ints),
        ):
            vals = parse(rq, name)
            if vals:
                body[name] = vals
        return 200, st().search(body)

    endpoint("GET", f"{API}/search/jql", "read", search_get)

    # -- users -----------------------------------------------------------------------------------------------
    def user_search(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        q = rq.query_params
        if q.get("query") and q.get("accountId"):
            raise JiraError(400, ["Only one of 'query' or 'accountId' can be provided."])
        if not q.get("query") and not q.get("accountId") and not q.get("property"):
            raise JiraError(
                400, ["One of 'query', 'accountId' or 'property' query parameters must be provided."]
            )
        start, limit = int(q.get("startAt", 0)), int(q.get("maxResults", 50))
        users = st().find_users(q.get("query"), q.get("accountId"))
        return 200, [st().user_json(u) for u in users[start : start + limit]]

    endpoint("GET", f"{API}/user/search", "user", user_search)

    def user_bulk(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        ids = query_list(rq, "accountId")
        if not ids:
            raise JiraError(400, ["You must specify at least one accountId."])
        start, limit = query_int(rq, "startAt", 0), query_int(rq, "maxResults", 10)
        users = [u for u in (st().user(i) for i in dict.fromkeys(ids)) if u is not None]
        page = users[start : start + limit]
        out: dict[str, Any] = {
            "self": str(rq.url),
            "maxResults": limit,
            "startAt": start,
            "total": len(users),
            "isLast": start + limit >= len(users),
            "values": [st().user_json(u) for u in page],
        }
        if not out["isLast"]:
            nxt = rq.url.include_query_params(startAt=start + limit)
            out["nextPage"] = str(nxt)
        return 200, out

    endpoint("GET", f"{API}/user/bulk", "user", user_bulk)

    # -- webhooks --------------------------------------------------------------------------------------------
    def register_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        j = st()
        if (
            not isinstance(b, dict)
            or not isinstance(b.get("url"), str)
            or not isinstance(b.get("webhooks"), list)
        ):
            raise JiraError(400, ["url and webhooks are required."])
        if (
            j.webhook_url
            and j.webhook_url != b["url"]
            and any(w["expirationDate"] > int(sb.now().timestamp() * 1000) for w in j.webhooks.values())
        ):
            raise JiraError(400, ["Only a single URL per app is allowed to be registered."])
        j.webhook_url = b["url"]
        results = []
        expires = int((sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
        for wh in b["webhooks"]:
            if not isinstance(wh, dict) or not wh.get("events") or not isinstance(wh.get("jqlFilter"), str):
                results.append({"errors": ["events and jqlFilter are required."]})
                continue
            why = j.webhook_jql_error(wh["jqlFilter"])
            if why:
                results.append({"errors": [why]})
                continue
            wid = j.next_webhook_id
            j.next_webhook_id += 1
            j.webhooks[wid] = {
                "id": wid,
                "events": list(wh["events"]),
                "jqlFilter": wh["jqlFilter"],
                "expirationDate": expires,
                "url": b["url"],
                **({"fieldIdsFilter": list(wh["fieldIdsFilter"])} if wh.get("fieldIdsFilter") else {}),
            }
            results.append({"createdWebhookId": wid})
        return 200, {"webhookRegistrationResult": results}

    endpoint("POST", f"{API}/webhook", "webhook", register_webhooks)

    def list_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        start = int(rq.query_params.get("startAt", 0))
        limit = int(rq.query_params.get("maxResults", 100))
        form = getattr(st(), "expiration_date_format", "epoch_ms")
        values = [
            {**w, "expirationDate": expiration_date_out(w["expirationDate"], form)}
            for _, w in sorted(st().webhooks.items())
        ]
        page = values[start : start + limit]
        return 200, {
            "startAt": start,
            "maxResults": limit,
            "total": len(values),
            "isLast": start + limit >= len(values),
            "values": page,
        }

    endpoint("GET", f"{API}/webhook", "webhook", list_webhooks)

    def delete_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        if not isinstance(b, dict) or not isinstance(b.get("webhookIds"), list):
            raise JiraError(400, ["webhookIds is required."])
        for wid in b["webhookIds"]:
            st().webhooks.pop(int(wid), None)
        return 202, None

    endpoint("DELETE", f"{API}/webhook", "webhook", delete_webhooks)

    def refresh_webhooks(rq: Request, a: Any, b: Any) -> tuple[int, Any]:
        if not isinstance(b, dict) or not isinstance(b.get("webhookIds"), list):
            raise JiraError(400, ["webhookIds is required."])
        expires = int((sb.now().timestamp() + WEBHOOK_TTL_S) * 1000)
        for wid in b["webhookIds"]:
            if int(wid) in st().webhooks:
                st().webhooks[int(wid)]["expirationDate"] = expires
        return 200, {
            "expirationDate": expiration_date_out(expires, getattr(st(), "expiration_date_format", ""))
        }

    endpoint("PUT", f"{API}/webhook/refresh", "webhook", refresh_webhooks)

    # -- sandbox control -------------------------------------------------------------------------------------
    @r.post("/_sandbox/jira/transition")
    def control_transition(body: dict[str, Any]) -> JSONResponse:
        """Move an issue as a user would (Alice Approver by default) and fire the webhooks."""
        with sb.lock:
            j = st()
            try:
                rec = j.issue(str(body.get("issue", "")))
            except JiraError as exc:
                return JSONResponse(exc.body, status_code=404)
            target = j.status(str(body.get("to", "")))
            if target is None:
                return JSONResponse(
                    {"error": f"unknown status {body.get('to')!r}; one of {[s[1] for s in STATUSES]}"},
                    status_code=400,
                )
            actor = j.user(body["user"]) if body.get("user") else j.users[1]
            if actor is None:
                return JSONResponse({"error": "unknown user accountId"}, status_code=400)
            if target[0] != rec["fields"]["status"]:
                j._move(rec, target, actor)
                sb.mark_dirty()
            return JSONResponse({"key": rec["key"], "id": rec["id"], "status": target[1]})

    @r.get("/_sandbox/jira/issues")
    def control_issues() -> list[dict[str, Any]]:
        """Every issue, current state, no search lag (tests and the demo)."""
        with sb.lock:
            j = st()
            return [
                j.issue_json(rec, "*all") | {"comments": len(rec["comments"])} for rec in j.issues.values()
            ]

    @r.post("/_sandbox/jira/admin-webhooks")
    def control_admin_webhook(body: dict[str, Any]) -> JSONResponse:
        """Create an admin webhook as a Jira admin would (Settings > System > WebHooks, or
        ``POST /rest/webhooks/1.0/webhook``): ``{"url", "events"?, "jqlFilter"?, "secret"?}``. With a
        secret its deliveries carry ``X-Hub-Signature: sha256=<hex HMAC of the body>``
        (https://developer.atlassian.com/cloud/jira/platform/webhooks, "Secure admin webhooks"); admin
        webhooks do not expire. The secret is never shown again (like Jira)."""
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return JSONResponse({"error": "url (http or https) is required"}, status_code=400)
        events = body.get("events") or ["jira:issue_updated"]
        jql = body.get("jqlFilter") or ""
        with sb.lock:
            j = st()
            if jql:
                why = j.webhook_jql_error(jql)
                if why:
                    return JSONResponse({"error": why}, status_code=400)
            wid = j.next_admin_webhook_id
            j.next_admin_webhook_id += 1
            j.admin_webhooks[wid] = {
                "id": wid,
                "url": url,
                "events": list(events),
                "jqlFilter": jql,
                "secret": body.get("secret") or None,
            }
            sb.mark_dirty()
        return JSONResponse(
            {"id": wid, "url": url, "events": list(events), "jqlFilter": jql}, status_code=201
        )

    @r.delete("/_sandbox/jira/admin-webhooks/{wid}")
    def control_admin_webhook_delete(wid: int) -> Response:
        with sb.lock:
            st().admin_webhooks.pop(int(wid), None)
            sb.mark_dirty()
        return Response(status_code=204)

    @r.get("/_sandbox/jira/deliveries")
    def control_deliveries() -> list[dict[str, Any]]:
        with sb.lock:
            return list(st().deliveries)

    @r.post("/_sandbox/jira/screen")
    def control_screen(body: dict[str, Any]) -> JSONResponse:
        """Take fields off (``remove``) or put them on (``add``) the ``create``/``edit`` screen (default both)
        of an issue type (``issue_type``, name or id; default every type), as a Jira admin would."""
        with sb.lock:
            j = st()
            types = [j.issue_type(str(body["issue_type"]))] if body.get("issue_type") else list(ISSUE_TYPES)
            if None in types:
                return JSONResponse(
                    {"error": f"unknown issue type {body.get('issue_type')!r}"}, status_code=400
                )
            which = body.get("screen", "both")
            if which not in ("create", "edit", "both"):
                return JSONResponse({"error": "screen must be create, edit or both"}, status_code=400)
            ids: dict[str, list[str]] = {}
            for verb in ("remove", "add"):
                ids[verb] = []
                for ident in body.get(verb) or []:
                    fd = j.field(str(ident))
                    if fd is None or not (fd["custom"] or fd["id"] in SCREEN_SYSTEM_FIELDS):
                        return JSONResponse({"error": f"no screen field {ident!r}"}, status_code=400)
                    ids[verb].append(fd["id"])
            if "summary" in ids["remove"]:
                return JSONResponse({"error": "Summary is required on every screen"}, status_code=400)
            j.__dict__.setdefault(
                "screens",
                {
                    t[0]: {"create": j.screen(t[0], "create"), "edit": j.screen(t[0], "edit")}
                    for t in ISSUE_TYPES
                },
            )
            for t in types:
                for w in ("create", "edit") if which == "both" else (which,):
                    j.screens[t[0]][w] -= set(ids["remove"])
                    j.screens[t[0]][w] |= set(ids["add"])
            sb.mark_dirty()
            return JSONResponse(
                {t[1]: {w: sorted(j.screens[t[0]][w]) for w in ("create", "edit")} for t in ISSUE_TYPES}
            )

    @r.post("/_sandbox/jira/field")
    def control_field(body: dict[str, Any]) -> JSONResponse:
        """Change a custom field's ``type`` (textfield, textarea, url, float) and/or ``searcher`` (a searcher
        key, or null for none: the field is then not searchable), as a Jira admin would."""
        with sb.lock:
            j = st()
            fd = j.field(str(body.get("field", "")))
            if fd is None or not fd["custom"]:
                return JSONResponse({"error": f"no custom field {body.get('field')!r}"}, status_code=400)
            kind = body.get("type")
            if kind is not None and kind not in CUSTOM_TYPES:
                return JSONResponse({"error": f"type must be one of {sorted(CUSTOM_TYPES)}"}, status_code=400)
            j.set_field_type(fd, kind, body["searcher"] if "searcher" in body else _KEEP)
            sb.mark_dirty()
            return JSONResponse(fd)

    @r.post("/_sandbox/jira/options")
    def control_options(body: dict[str, Any]) -> dict[str, Any]:
        """``{"validate": true}``: check every Jira request/response body against the OpenAPI spec;
        ``{"expiration_date_format": "epoch_ms" | "iso"}``: how webhook ``expirationDate`` is answered;
        ``{"issue_linking": false}``: issue linking turned off by an admin (its endpoints answer 404)."""
        with sb.lock:
            if "validate" in body:
                st().validate = bool(body["validate"])
            if "expiration_date_format" in body:
                form = body["expiration_date_format"]
                if form not in EXPIRATION_DATE_FORMATS:
                    raise HTTPException(
                        400, f"expiration_date_format must be one of {EXPIRATION_DATE_FORMATS}"
                    )
                st().expiration_date_format = form
            if "issue_linking" in body:
                st().issue_linking = bool(body["issue_linking"])
            return {
                "validate": st().validate,
                "expiration_date_format": getattr(st(), "expiration_date_format", "epoch_ms"),
            }

    return r


def _validate_response(sb: Sandbox, request: Request, status: int, body: Any) -> None:
    from bc_jira_sandbox.openapi import SpecViolation, get_validator

    # The ISO expirationDate is the spec's own example form, not its schema: validate it as exactly that.
    example_forms = getattr(sb.jira, "expiration_date_format", "epoch_ms") == "iso"
    try:
        get_validator(example_forms=example_forms).validate_response(
            request.method, request.url.path, status, body
        )
    except (SpecViolation, KeyError) as exc:
        sb.stats.bump("jira.spec_violations")
        log.error("sandbox Jira response violates the spec: %s", exc)


def _validate_request(sb: Sandbox, request: Request, body: Any) -> None:
    from bc_jira_sandbox.openapi import SpecViolation, get_validator

    try:
        get_validator().validate_request(request.method, request.url.path, body)
    except SpecViolation as exc:
        raise JiraError(400, [str(exc)[:1000]]) from None

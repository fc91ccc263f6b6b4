"""JQL (the subset the connector and its webhooks use): tokenizer, parser and text-search queries (pure)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

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
# GUID is not documented [inference]: only the phrase form is certain.

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
            if term in ("OR", "AND", "NOT"):
                if term == "OR":
                    groups.append(([], []))
                    negate_next = False
                elif term == "NOT":
                    negate_next = True
                continue
            clause, prohibited = _term_clause(term, negate_next)
        negate_next = False
        if clause is not None:
            groups[-1][1 if prohibited else 0].append(clause)
    return tuple((tuple(req), tuple(pro)) for req, pro in groups if req or pro)


def _term_clause(term: str, negate: bool) -> tuple[TextClause | None, bool]:
    """(the clause of one search term, whether it is prohibited): ``-``/``!`` prohibit, ``+`` requires,
    a trailing ``*``/``?`` makes a prefix, leading wildcards are dropped."""
    prohibited = negate
    if term[0] in "-!" and len(term) > 1:
        prohibited, term = True, term[1:]
    elif term[0] == "+" and len(term) > 1:
        term = term[1:]
    term = term.lstrip("*?")  # leading wildcards are not supported
    cut = min((i for i in (term.find("*"), term.find("?")) if i >= 0), default=-1)
    if cut >= 0:
        prefix = term[:cut].lower()
        return (("prefix", (prefix,)) if prefix else None), prohibited
    toks = tuple(dict.fromkeys(text_tokens(term)))  # each word once: "all" asks only whether it is there
    return (("all", toks) if toks else None), prohibited


def _clause_matches(clause: TextClause, toks: tuple[str, ...], tset: frozenset[str]) -> bool:
    kind, want = clause
    if kind == "prefix":
        return any(t.startswith(want[0]) for t in toks)
    if kind == "all" or len(want) == 1:
        return all(w in tset for w in want)
    n = len(want)
    first = want[0]
    return any(toks[i : i + n] == want for i in range(len(toks) - n + 1) if toks[i] == first)


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


# -- the OR-chain fast path (pure): many record-id clauses on one field as one set lookup --------------------
def or_leaves(node: Any) -> list[Any]:
    """The clauses of a pure OR chain, or ``[]`` when the tree has an AND or NOT anywhere."""
    leaves: list[Any] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n[0] == "or":
            stack.extend((n[1], n[2]))
        elif n[0] in ("and", "not"):
            return []
        else:
            leaves.append(n)
    return leaves


@dataclass(frozen=True)
class OrIndex:
    """An OR chain of ``=``/``in``/``~`` clauses on one text field, indexed: ``=`` values in a set
    (``exact``), simple ``~`` queries (one phrase or one group of words) by their first word, the rest
    (``slow``) evaluated one by one. Same answers as clause by clause."""

    exact: set[str]
    whole: set[tuple[str, ...]]
    by_first: dict[str, list[TextClause]]
    slow: list[TextQuery]
    fewest: int

    def matches(self, actual_s: str, toks: tuple[str, ...], tset: frozenset[str]) -> bool:
        """Whether a field value (lower-cased text, its words, their set) matches some clause."""
        if actual_s in self.exact or toks in self.whole:  # usually the phrase is the whole value
            return True
        if len(toks) > self.fewest:  # else no indexed clause fits in the value other than the whole of it
            for t in tset:
                for clause in self.by_first.get(t, ()):
                    if _clause_matches(clause, toks, tset):
                        return True
        return any(text_query_matches(q, toks, tset) for q in self.slow)


def index_or_leaves(leaves: list[Any], text_query: Callable[[str], TextQuery]) -> OrIndex:
    """The :class:`OrIndex` of OR'ed ``=``/``in``/``~`` clauses (``text_query`` compiles a ``~`` value)."""
    exact: set[str] = set()
    whole: set[tuple[str, ...]] = set()
    by_first: dict[str, list[TextClause]] = {}
    slow: list[TextQuery] = []
    for _, _, op, val in leaves:
        for v in val if isinstance(val, list) else [val]:
            if op != "~":
                exact.add(str(v).lower())
                continue
            q = text_query(str(v))
            if len(q) == 1 and len(q[0][0]) == 1 and not q[0][1] and q[0][0][0][0] != "prefix":
                clause = q[0][0][0]
                whole.add(clause[1])
                by_first.setdefault(clause[1][0], []).append(clause)
            else:
                slow.append(q)
    # A value of at most ``fewest`` words can only match a phrase equal to it (a phrase needs as many words
    # in that order; "all" needs its distinct words, in any order: one more than that).
    fewest = min((len(c[1]) - (c[0] == "all") for cs in by_first.values() for c in cs), default=0)
    return OrIndex(exact, whole, by_first, slow, fewest)

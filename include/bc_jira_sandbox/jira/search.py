"""Jira search: JQL evaluation over the search view (with its lag), the OR-chain fast path, paging."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.jira.base import JiraBase
from bc_jira_sandbox.jira.catalog import RECONCILE_LIMIT, JiraError
from bc_jira_sandbox.jira.jql import (
    _RELATIVE,
    _SYSTEM_CLAUSES,
    JqlError,
    OrIndex,
    TextQuery,
    _text_of,
    compile_text_query,
    index_or_leaves,
    jql_fields,
    or_leaves,
    parse_jql,
    text_query_matches,
    text_tokens,
)

if TYPE_CHECKING:
    from collections.abc import Callable


class SearchMixin(JiraBase):
    """JQL search of :class:`JiraState`."""

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

    def _or_group(self, node: Any) -> tuple[dict[str, Any], OrIndex] | None:
        """An OR chain of ``=``/``in``/``~`` clauses on one custom text field, as one set lookup.

        The connector asks for a batch of record ids in one JQL; evaluating 100 OR'ed clauses per issue made
        the sandbox, not the connector, the bottleneck (see :class:`OrIndex`). Memoised per parsed tree.
        """
        cache = self.__dict__.setdefault("_or_cache", {})
        hit = cache.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        leaves = or_leaves(node)
        fds = {id(self.field(leaf[1])): self.field(leaf[1]) for leaf in leaves}
        fd = next(iter(fds.values())) if len(fds) == 1 else None
        group = None
        if fd is not None and _indexable(fd, leaves):
            group = (fd, index_or_leaves(leaves, lambda v: self._text_query(v, fd)))
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
        """Whether the parsed JQL ``node`` matches an issue (``values``: its search view)."""
        if node is None:
            return True
        tag = node[0]
        if tag == "and":
            return self.matches(node[1], rec, values) and self.matches(node[2], rec, values)
        if tag == "or":
            group = self._or_group(node)
            if group is not None:
                raw = self._cf_value(values, group[0])
                return raw is not None and group[1].matches(*self._doc_tokens(raw))
            return self.matches(node[1], rec, values) or self.matches(node[2], rec, values)
        if tag == "not":
            return not self.matches(node[1], rec, values)
        return self._leaf_matches(node, rec, values)

    def _leaf_matches(self, node: Any, rec: dict[str, Any], values: dict[str, Any]) -> bool:
        _, fname, op, val = node
        low = fname.lower()
        vals = val if isinstance(val, list) else [val]
        if low in _DATE_CLAUSES:
            return self._date_cmp(values["updated" if low.startswith("updated") else "created"], op, val)
        system = _SYSTEM_VALUES.get(low)
        if system is not None:
            actual = system(rec, values)
        else:
            fd = self.field(fname)
            if fd is None or not fd["custom"]:
                raise JqlError(f"Field '{fname}' does not exist or you do not have permission to view it.")
            raw = self._cf_value(values, fd)
            if fd["schema"]["type"] == "number":
                return self._num_cmp(raw, op, vals)
            actual = [] if raw is None else [self._doc_tokens(raw)[0]]
        if op in ("~", "!~"):
            fd = self.field(fname) or {"name": fname}
            found = any(
                text_query_matches(self._text_query(str(v), fd), *self._doc_tokens(a)[1:])
                for v in vals  # not lower-cased: the Boolean operators are ALL CAPS
                for a in actual
            )
            return found if op == "~" else not found
        return _compare(fname, op, [str(v).lower() for v in vals] if val is not None else [], actual)

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
        """``POST /search/jql``: checks in Jira's order, the hits in the (lagging) index, sorted, one page."""
        jql, where, order = self._search_query(body)
        reconciled, max_results = _search_limits(body)
        hits: list[tuple[dict[str, Any], dict[str, Any]]] = []
        try:
            for rec in self.issues.values():
                view = self.search_view(rec, rec["id"] in reconciled)
                if view is not None and self.matches(where, rec, view):
                    hits.append((rec, view))
        except JqlError as exc:
            raise JiraError(400, [str(exc)]) from None
        for fname, desc in reversed(order or [("key", False)]):
            hits.sort(key=self._sort_key(fname.lower()), reverse=desc)
        start, digest = _page_start(jql, body.get("nextPageToken"))
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

    def _search_query(self, body: dict[str, Any]) -> tuple[str, Any, list[tuple[str, bool]]]:
        """(the JQL, its condition, its ORDER BY); 400 when unbounded, malformed or on unknown fields."""
        jql = body.get("jql")
        if not isinstance(jql, str) or not jql.strip():
            raise JiraError(400, [_UNBOUNDED])
        try:
            where, order = parse_jql(jql)
        except JqlError as exc:
            raise JiraError(400, [str(exc)]) from None
        if where is None:
            raise JiraError(400, [_UNBOUNDED])
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
        for fname, _ in order:  # ORDER BY on an unknown field is refused like a clause on one
            if fname.lower() not in ("key", "issuekey", "id") and self.field(fname) is None:
                raise JiraError(
                    400, [f"Field '{fname}' does not exist or you do not have permission to view it."]
                )
        return jql, where, order

    def _sort_key(self, low: str) -> Callable[[tuple[dict[str, Any], dict[str, Any]]], Any]:
        def sort_key(hit: tuple[dict[str, Any], dict[str, Any]]) -> Any:
            rec, view = hit
            if low in ("key", "issuekey", "id"):
                return int(rec["id"])
            if low in ("created", "updated"):
                return view[low]
            fd = self.field(low)
            v = view.get(fd["id"]) if fd else None
            return (v is None, v if v is not None else 0)

        return sort_key


_UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
_DATE_CLAUSES = frozenset({"updated", "created", "updateddate", "createddate"})


def _status_category(rec: dict[str, Any], values: dict[str, Any]) -> list[Any]:
    cat = values["status"]["statusCategory"]
    return [cat["key"].lower(), cat["name"].lower(), str(cat["id"])]


def _user(low: str) -> Callable[[dict[str, Any], dict[str, Any]], list[Any]]:
    def of(rec: dict[str, Any], values: dict[str, Any]) -> list[Any]:
        u = values.get(low)
        return [u["accountId"].lower()] if u else []

    return of


# What a system clause compares with: (issue, its search view) -> the lower-cased values it holds.
_SYSTEM_VALUES: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[Any]]] = {
    "project": lambda rec, v: [v["project"]["key"].lower(), v["project"]["id"]],
    "issuetype": lambda rec, v: [v["issuetype"]["name"].lower(), v["issuetype"]["id"]],
    "type": lambda rec, v: [v["issuetype"]["name"].lower(), v["issuetype"]["id"]],
    "status": lambda rec, v: [v["status"]["name"].lower(), v["status"]["id"]],
    "statuscategory": _status_category,
    **dict.fromkeys(("key", "issuekey", "id", "issue"), lambda rec, v: [rec["key"].lower(), rec["id"]]),
    "assignee": _user("assignee"),
    "reporter": _user("reporter"),
    "labels": lambda rec, v: [x.lower() for x in v.get("labels", [])],
    "summary": lambda rec, v: [v.get("summary", "").lower()],
    "text": lambda rec, v: [v.get("summary", "").lower()],
}


def _compare(fname: str, op: str, want: list[str], actual: list[Any]) -> bool:
    """A non-text clause: ``=``/``in``, ``!=``/``not in``, ``is empty``, ``is not empty``."""
    if op in ("=", "in"):
        return any(w in actual for w in want)
    if op in ("!=", "not in"):
        return bool(actual) and not any(w in actual for w in want)
    if op == "is empty":
        return not actual
    if op == "is not empty":
        return bool(actual)
    raise JqlError(f"The operator '{op}' is not supported by the '{fname}' field.")


def _indexable(fd: dict[str, Any], leaves: list[Any]) -> bool:
    """Whether OR'ed clauses can use the :class:`OrIndex`: a custom text field, ``=``/``in``/``~`` only."""
    return (
        bool(leaves)
        and fd["custom"]
        and fd["schema"]["type"] != "number"
        and all(leaf[2] in ("=", "in", "~") and leaf[3] is not None for leaf in leaves)
    )


def _search_limits(body: dict[str, Any]) -> tuple[set[str], int]:
    """(the ids of ``reconcileIssues``, ``maxResults`` capped at 5,000); 400 when out of range."""
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
    return {str(x) for x in reconcile}, min(max_results, 5000)


def _page_start(jql: str, token: str | None) -> tuple[int, str]:
    """(where the page starts, the JQL's digest): a ``nextPageToken`` is only good for the same JQL."""
    digest = hashlib.sha256(jql.encode()).hexdigest()[:12]
    if not token:
        return 0, digest
    try:
        start_s, tok_digest = base64.urlsafe_b64decode(token.encode()).decode().split(":", 1)
        start = int(start_s)
        if tok_digest != digest:
            raise ValueError
    except (ValueError, UnicodeDecodeError):
        raise JiraError(400, ["The provided next page token is invalid or expired."]) from None
    return start, digest

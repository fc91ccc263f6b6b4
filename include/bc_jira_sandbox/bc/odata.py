"""OData v4 query options as BC answers them: ``$filter``, ``$orderby``, ``$select``, ``$expand``, paging."""

from __future__ import annotations

import base64
import bisect
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira_sandbox.bc.entities import (
    _GUID,
    ENTITY_TYPE,
    ENUMS,
    FIELDS,
    MAX_PAGE,
    BcError,
    _bad,
    parse_ts,
)
from bc_jira_sandbox.bc.expand import Expand, parse_expand

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import Request

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<guid>" + _GUID + r")(?![\w-])"
    r"|(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2}))"
    r"|(?P<date>\d{4}-\d{2}-\d{2})(?![\w:])|(?P<num>-?\d+(?:\.\d+)?)(?![\w-])"
    r"|(?P<ident>[A-Za-z_][\w]*)|(?P<lp>\()|(?P<rp>\))|(?P<comma>,))"
)
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
# OData's default MaxNodeCount: BC answers "The node count limit of '100' has been exceeded" (a BC community
# thread, https://community.dynamics.com/forums/thread/details/?threadid=f4bc1a3e-3956-ef11-a316-6045bdec6b18).
# Every literal counts here, so one `in` list holds fewer than 100 values.
MAX_NODES = 100
# [inference] BC's exact URL limit is not documented; IIS/HTTP.sys refuse query strings over 2,048 bytes by
# default (maxQueryString), so the sandbox does too (414): clients must batch `id in (...)` lists.
MAX_QUERY_STRING = 2048


class _Filter:
    """Recursive-descent parser for the $filter subset; compiles to a predicate on stored records."""

    def __init__(self, entity: str, text: str) -> None:
        self.entity = entity
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise _bad(f"Syntax error at position {pos} in '{text}'.")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        literals = sum(1 for kind, _ in self.tokens if kind in ("str", "guid", "dt", "date", "num"))
        if literals > MAX_NODES:
            raise _bad(
                f"The node count limit of '{MAX_NODES}' has been exceeded. To increase the limit, set the "
                "'MaxNodeCount' property on EnableQueryAttribute or ODataValidationSettings."
            )
        self.i = 0
        self.pred = self._or()
        if self.i != len(self.tokens):
            raise _bad(f"Syntax error: unexpected '{self.tokens[self.i][1]}' in '{text}'.")

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise _bad("Syntax error: unexpected end of $filter.")
        self.i += 1
        return tok

    def _kw(self, word: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "ident" and tok[1].lower() == word:
            self.i += 1
            return True
        return False

    def _or(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._and()]
        while self._kw("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda r: any(p(r) for p in parts))

    def _and(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._unary()]
        while self._kw("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda r: all(p(r) for p in parts))

    def _unary(self) -> Callable[[dict[str, Any]], bool]:
        if self._kw("not"):
            inner = self._unary()
            return lambda r: not inner(r)
        tok = self._peek()
        if tok and tok[0] == "lp":
            self.i += 1
            inner = self._or()
            if self._take()[0] != "rp":
                raise _bad("Syntax error: ')' expected.")
            return inner
        return self._comparison()

    def _comparison(self) -> Callable[[dict[str, Any]], bool]:
        kind, name = self._take()
        if kind != "ident":
            raise _bad(f"Syntax error: property name expected, found '{name}'.")
        prop = FIELDS[self.entity].get(name)
        if prop is None:
            raise _bad(
                f"Could not find a property named '{name}' on type "
                f"'Microsoft.NAV.{ENTITY_TYPE[self.entity]}'."
            )
        op_kind, op = self._take()
        if op_kind == "ident" and op.lower() == "in":
            return self._in_list(name, prop)
        if op_kind != "ident" or op.lower() not in _OPS:
            raise _bad(f"Syntax error: comparison operator expected after '{name}', found '{op}'.")
        op = op.lower()
        lit_kind, lit = self._take()
        value = self._literal(prop, lit_kind, lit, op)
        convert = _converter(prop)

        def pred(rec: dict[str, Any]) -> bool:
            left = convert(rec.get(name))
            if op == "eq":
                return left == value
            if op == "ne":
                return left != value
            try:
                return {"gt": left > value, "ge": left >= value, "lt": left < value, "le": left <= value}[op]
            except TypeError:
                return False

        return pred

    def _in_list(self, name: str, prop: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
        """``name in (v1, v2, ...)``: BC supports the OData v4 IN operator since 2024 wave 1
        (https://learn.microsoft.com/en-us/dynamics365/release-plan/2024wave1/smb/
        dynamics365-business-central/use-odata-v4-operator-web-service-queries; "In a list of values" in
        use-filter-expressions-in-odata-uris).
        Each value must have the property's type (an Edm.Guid unquoted), like ``eq``."""
        if self._take()[0] != "lp":
            raise _bad(f"Syntax error: '(' expected after '{name} in'.")
        values = set()
        while True:
            kind, lit = self._take()
            values.add(self._literal(prop, kind, lit, "eq"))
            sep = self._take()[0]
            if sep == "rp":
                break
            if sep != "comma":
                raise _bad("Syntax error: ',' or ')' expected in the 'in' list.")
        convert = _converter(prop)
        return lambda rec: convert(rec.get(name)) in values

    def _literal(self, prop: dict[str, Any], kind: str, lit: str, op: str) -> Any:
        edm = prop["edm_type"]
        names = {
            "gt": "GreaterThan",
            "ge": "GreaterThanOrEqual",
            "lt": "LessThan",
            "le": "LessThanOrEqual",
            "eq": "Equal",
            "ne": "NotEqual",
        }
        found = {
            "str": "Edm.String",
            "guid": "Edm.Guid",
            "dt": "Edm.DateTimeOffset",
            "date": "Edm.Date",
            "num": "Edm.Decimal",
            "ident": "Edm.Boolean",
        }.get(kind, kind)

        def incompatible() -> BcError:
            return _bad(
                f"A binary operator with incompatible types was detected. Found operand types "
                f"'{edm}' and '{found}' for operator kind '{names[op]}'."
            )

        if kind == "ident" and lit == "null":
            return None
        if prop.get("enum"):
            if kind != "str":
                raise incompatible()
            value = lit[1:-1].replace("''", "'")
            if value not in ENUMS[prop["enum"]]:
                raise _bad(
                    f"The string '{value}' is not a valid enumerated type constant for "
                    f"'Microsoft.NAV.{prop['enum']}'."
                )
            return value
        value = _typed_literal(prop, kind, lit)
        if value is _INCOMPATIBLE:
            raise incompatible()
        return value


_INCOMPATIBLE = object()  # _typed_literal: the literal's kind does not fit the property's type


def _typed_literal(prop: dict[str, Any], kind: str, lit: str) -> Any:
    """A non-enum ``$filter`` literal as the property's Python value, or ``_INCOMPATIBLE``."""
    fmt = prop.get("format")
    if fmt == "date-time":
        if kind == "dt":
            return parse_ts(lit)
        return parse_ts(lit + "T00:00:00Z") if kind == "date" else _INCOMPATIBLE
    if fmt == "date":
        return lit if kind == "date" else _INCOMPATIBLE
    if fmt == "uuid":
        return lit.lower() if kind == "guid" else _INCOMPATIBLE
    if prop["json_type"] in ("number", "integer"):
        return float(lit) if kind == "num" else _INCOMPATIBLE
    if prop["json_type"] == "boolean":
        return lit == "true" if kind == "ident" and lit in ("true", "false") else _INCOMPATIBLE
    return lit[1:-1].replace("''", "'") if kind == "str" else _INCOMPATIBLE


def _converter(prop: dict[str, Any]) -> Callable[[Any], Any]:
    fmt = prop.get("format")
    if fmt == "date-time":
        return lambda v: parse_ts(v) if isinstance(v, str) else v
    if fmt == "uuid":
        return lambda v: v.lower() if isinstance(v, str) else v
    if prop["json_type"] in ("number", "integer") and not prop.get("enum"):
        return lambda v: float(v) if isinstance(v, int | float) else v
    return lambda v: v


def _orderby(entity: str, text: str | None) -> list[tuple[str, bool]]:
    if not text:
        return [("number", False)] if "number" in FIELDS[entity] else [("id", False)]
    out = []
    for part in text.split(","):
        bits = part.split()
        if not bits or len(bits) > 2 or (len(bits) == 2 and bits[1].lower() not in ("asc", "desc")):
            raise _bad(f"Syntax error in $orderby '{text}'.")
        if bits[0] not in FIELDS[entity]:
            raise _bad(
                f"Could not find a property named '{bits[0]}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'."
            )
        out.append((bits[0], len(bits) == 2 and bits[1].lower() == "desc"))
    return out


def _select(entity: str, text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    for n in names:
        if n not in FIELDS[entity]:
            raise _bad(
                f"Could not find a property named '{n}' on type 'Microsoft.NAV.{ENTITY_TYPE[entity]}'."
            )
    return names


class _Key:
    """Sort key honouring per-field direction; the record id breaks ties (key-based $skiptoken)."""

    __slots__ = ("values", "desc")

    def __init__(self, values: tuple[Any, ...], desc: tuple[bool, ...]) -> None:
        self.values, self.desc = values, desc

    def _cmp(self, other: _Key) -> int:
        for a, b, d in zip(self.values, other.values, self.desc, strict=True):
            if a == b:
                continue
            lt = a is None if a is None or b is None else a < b
            return (1 if lt else -1) if d else (-1 if lt else 1)
        return 0

    def __lt__(self, other: _Key) -> bool:
        return self._cmp(other) < 0


def _key_for(entity: str, order: list[tuple[str, bool]], rec: dict[str, Any]) -> _Key:
    vals = tuple(_converter(FIELDS[entity][f])(rec.get(f)) for f, _ in order) + (rec["id"],)
    return _Key(vals, tuple(d for _, d in order) + (False,))


def _token_encode(entity: str, order: list[tuple[str, bool]], rec: dict[str, Any], served: int) -> str:
    raw = json.dumps({"k": [rec.get(f) for f, _ in order] + [rec["id"]], "n": served}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _token_decode(entity: str, order: list[tuple[str, bool]], token: str) -> tuple[_Key, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        *vals, rid = data["k"]
        rec = dict(zip([f for f, _ in order], vals, strict=True))
        rec["id"] = rid
        return _key_for(entity, order, rec), int(data["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad("The $skiptoken is not valid.") from exc


def _page_size(request: Request) -> tuple[int, bool]:
    prefer = request.headers.get("prefer", "")
    m = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", prefer)
    if not m:
        return MAX_PAGE, False
    return max(1, min(int(m.group(1)), MAX_PAGE)), True


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise _bad(f"Invalid value '{raw}' for {name}: a non-negative integer is expected.")
    return int(raw)


# -- routes ------------------------------------------------------------------------------------------------


def _expand(entity: str, text: str | None) -> list[Expand]:
    """``$expand`` with its nested options (:mod:`bc_jira_sandbox.bc.expand`)."""
    return parse_expand(entity, text)


@dataclass(frozen=True)
class ListQuery:
    """A collection GET's query options, parsed and checked (the decision: :func:`page_of` applies it)."""

    pred: Callable[[dict[str, Any]], bool] | None
    select: list[str] | None
    order: list[tuple[str, bool]]
    expand: list[Expand]
    top: int | None
    skip: int | None
    size: int
    honoured: bool
    token: str | None


def list_query(request: Request, entity: str) -> ListQuery:
    """Parse ``$filter``, ``$select``, ``$orderby``, ``$expand``, ``$top``, ``$skip``, paging; 400 like BC."""
    if len(request.url.query.encode()) > MAX_QUERY_STRING:
        raise BcError(414, "RequestUriTooLong", f"The query string is longer than {MAX_QUERY_STRING} bytes.")
    q = request.query_params
    pred = _Filter(entity, q["$filter"]).pred if q.get("$filter") else None
    sel = _select(entity, q.get("$select"))
    order = _orderby(entity, q.get("$orderby"))
    expand = _expand(entity, q.get("$expand"))
    top, skip = _int_param(request, "$top"), _int_param(request, "$skip")
    size, honoured = _page_size(request)
    return ListQuery(pred, sel, order, expand, top, skip, size, honoured, q.get("$skiptoken"))


def page_of(
    entity: str, query: ListQuery, rows: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int, bool]:
    """(the page of ``rows``, how many earlier pages served, whether more follow): key order, then the
    ``$skiptoken`` (the key after which to continue) or ``$skip``, then ``$top`` and the page size."""
    keyed = sorted(((_key_for(entity, query.order, rec), rec) for rec in rows), key=lambda kr: kr[0])
    served = 0
    if query.token:
        after, served = _token_decode(entity, query.order, query.token)
        start = bisect.bisect_right([k for k, _ in keyed], after)
        keyed = keyed[start:]
    elif query.skip:
        keyed = keyed[query.skip :]
    top = query.top
    limit = query.size if top is None else min(query.size, max(0, top - served))
    page = keyed[:limit]
    more = len(keyed) > limit and (top is None or served + limit < top)
    return [rec for _, rec in page], served, more

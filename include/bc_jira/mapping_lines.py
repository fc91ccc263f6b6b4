"""A document's lines as a table in the issue description, and the due date / priority fields. Pure.

The lines come with their document (``$expand`` in the extract, see ``sync.extract.lines_expand``), so they
are part of the record the content hash is computed from: a changed line changes the description, hence
the hash, hence one edit; an unchanged record is never edited again.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from bc_jira import adf
from bc_jira.config import decode_enum, priority_for
from bc_jira.entities import DIMENSION_SET_LINES, spec

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.config import Config

MAX_LINES = 50  # rows of the table; the rest is a count and the link to BC
_HEADER = ("Type", "No.", "Description", "Quantity", "Unit cost", "Line amount")
_COST = {"purchaseInvoiceLines": "unitCost", "purchaseOrderLines": "directUnitCost"}


def _number(value: Any, places: int | None = 2) -> str:
    """``1,234.50`` (amounts) or ``3`` / ``2.5`` (quantities: ``places=None``); blank when not a number."""
    if value is None or isinstance(value, bool):
        return ""
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if places is None:
        text = f"{d:,f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return f"{d:,.{places}f}"


def _dimensions(line: Mapping[str, Any]) -> str:
    dims = line.get(DIMENSION_SET_LINES) or []
    return ", ".join(
        f"{d.get('code')}: {d.get('valueCode')}" for d in dims if isinstance(d, dict) and d.get("valueCode")
    )


def lines_of(entity: str, record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The record's expanded lines in BC's order (``sequence``, BC's "Line No.")."""
    nav = spec(entity).lines
    rows = record.get(nav) if nav else None
    if not isinstance(rows, list):
        return []
    return sorted((r for r in rows if isinstance(r, dict)), key=lambda r: r.get("sequence") or 0)


def line_rows(entity: str, lines: list[Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    """(the header, one row per line); a Dimensions column only when a line has dimension values."""
    nav = spec(entity).lines or ""
    with_dims = any(_dimensions(ln) for ln in lines)
    header = [*_HEADER, "Dimensions"] if with_dims else list(_HEADER)
    rows = []
    for ln in lines:
        row = [
            decode_enum(ln.get("lineType")),
            str(ln.get("lineObjectNumber") or ""),
            str(ln.get("description") or ""),
            _number(ln.get("quantity"), None),
            _number(ln.get(_COST.get(nav, "unitCost"))),
            _number(ln.get("amountExcludingTax")),
        ]
        if with_dims:
            row.append(_dimensions(ln))
        rows.append(row)
    return header, rows


def lines_blocks(entity: str, record: Mapping[str, Any], url: str | None) -> list[adf.Node]:
    """The description's "Lines" heading and table (at most MAX_LINES rows, then how many more and where)."""
    lines = lines_of(entity, record)
    if not lines:
        return []
    header, rows = line_rows(entity, lines[:MAX_LINES])
    blocks = [adf.heading(f"Lines ({len(lines)})", level=3), adf.table(rows, header=header)]
    more = len(lines) - MAX_LINES
    if more > 0:
        link = adf.link("Business Central", url) if url else None
        blocks.append(
            adf.paragraph(f"… and {more} more line{'s' if more != 1 else ''} in ", link or "Business Central")
        )
    return blocks


def due_date(entity: str, record: Mapping[str, Any]) -> str | None:
    """Jira's ``duedate`` ("YYYY-MM-DD") from the document's due date; None for BC's blank 0001-01-01."""
    name = spec(entity).due_date_field
    value = record.get(name) if name else None
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def schedule_fields(cfg: Config, entity: str, record: Mapping[str, Any], today: date) -> dict[str, Any]:
    """``duedate`` (entities with a due date: always owned, None clears it) and ``priority`` (only when a
    ``priority_rules`` rule matches: otherwise Jira's default or a person's choice stays)."""
    out: dict[str, Any] = {}
    if spec(entity).due_date_field:
        out["duedate"] = due_date(entity, record)
    name = priority_for(cfg.priority_rules, entity, record, today)
    if name:
        out["priority"] = {"name": name}
    return out

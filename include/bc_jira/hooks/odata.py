"""OData v4 helpers for Business Central API v2.0: literals, ``$filter`` building, keys, paging, enums.

Pure functions (no I/O): the hook describes calls, this module says how BC spells values. BC serialises enum
members with the EDM member-name encoding (a space is ``_x0020_``, a blank member is ``_x0020_``); records
leave the hook decoded and changes are encoded again on write, so callers never see that encoding.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

# Enum-typed fields of the entities this package reads (specs/bc-api-v2-entities.json).
ENUM_FIELDS: dict[str, frozenset[str]] = {
    "vendors": frozenset({"blocked"}),
    "purchaseInvoices": frozenset({"status"}),
    "purchaseOrders": frozenset({"status"}),
    "purchaseInvoiceLines": frozenset({"lineType"}),
    "purchaseOrderLines": frozenset({"lineType"}),
}
_ALL_ENUM_FIELDS = frozenset().union(*ENUM_FIELDS.values())
_SPACE = "_x0020_"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def decode_enum(value: Any) -> Any:
    """BC EDM enum member name -> display value: ``_x0020_``/" " -> "", ``In_x0020_Review`` -> "In Review"."""
    if not isinstance(value, str):
        return value
    if value in (_SPACE, " "):
        return ""
    return value.replace(_SPACE, " ")


def encode_enum(value: str) -> str:
    """Display value -> BC EDM member name: "" -> ``_x0020_``, "In Review" -> ``In_x0020_Review``."""
    if value in ("", " "):
        return _SPACE
    return value.replace(" ", _SPACE)


def decode_record(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """Enums decoded, also in expanded lines (``record["purchaseInvoiceLines"]``)."""
    fields = ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS)
    for name in fields:
        if name in record:
            record[name] = decode_enum(record[name])
    for nav in ("purchaseInvoiceLines", "purchaseOrderLines"):
        rows = record.get(nav)
        if isinstance(rows, list):
            record[nav] = [decode_record(nav, r) if isinstance(r, dict) else r for r in rows]
    return record


def expand_clause(nav: str, select: Iterable[str], nested: Mapping[str, Iterable[str]] | None = None) -> str:
    """``nav($select=a,b;$expand=sub($select=c))``: OData v4 nested options, as BC reads them."""
    opts = [f"$select={','.join(select)}"] if select else []
    subs = [f"{sub}($select={','.join(fields)})" for sub, fields in (nested or {}).items()]
    if subs:
        opts.append(f"$expand={','.join(subs)}")
    return f"{nav}({';'.join(opts)})" if opts else nav


def encode_changes(entity: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    fields = ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS)
    return {k: encode_enum(v) if k in fields and isinstance(v, str) else v for k, v in changes.items()}


def odata_datetime(value: datetime | str) -> str:
    """An OData v4 DateTimeOffset literal (unquoted, UTC, ``Z``): ``2026-11-24T10:00:00Z`` / ``...00.123Z``.

    Naive datetimes are taken as UTC; strings are parsed (ISO 8601) and normalised.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def odata_literal(entity: str, field: str, value: Any) -> str:
    """Format a value for ``field eq <literal>`` (strings quoted with '' escaping, enums encoded)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return odata_datetime(value)
    text = str(value)
    if field in ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS):
        text = encode_enum(text)
    elif _GUID.match(text) and (field == "id" or field.endswith("Id")):
        return text  # Edm.Guid literals are unquoted
    return "'" + text.replace("'", "''") + "'"


def build_filter(
    entity: str,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    extra: str | Mapping[str, Any] | None = None,
) -> str | None:
    """``lastModifiedDateTime gt <since> and lastModifiedDateTime le <until> and <extra>``."""
    parts: list[str] = []
    if since is not None:
        parts.append(f"lastModifiedDateTime gt {odata_datetime(since)}")
    if until is not None:
        parts.append(f"lastModifiedDateTime le {odata_datetime(until)}")
    if isinstance(extra, str) and extra.strip():
        parts.append(f"({extra})" if " or " in extra.lower() else extra)
    elif isinstance(extra, Mapping):
        parts += [f"{k} eq {odata_literal(entity, k, v)}" for k, v in extra.items()]
    return " and ".join(parts) or None


def id_in_filter(ids: list[str]) -> str:
    """``id in (<guid>, ...)``: the OData v4 IN operator BC supports since 2024 wave 1; Edm.Guid unquoted."""
    bad = [i for i in ids if not _GUID.match(i)]
    if bad or not ids:
        raise ValueError(f"id in (...) needs BC record GUIDs; got {bad[:3] or 'none'}")
    return f"id in ({','.join(ids)})"


def entity_key(record_id: str) -> str:
    """Entity key segment: GUIDs unquoted (``vendors(<guid>)``), anything else as a quoted string."""
    return record_id if _GUID.match(record_id) else "'" + record_id.replace("'", "''") + "'"


def string_key(key: str) -> str:
    """Subscription keys are strings: ``subscriptions('<id>')``."""
    return "'" + key.replace("'", "''") + "'"

"""The one timestamp codec: BC's ``…Z`` ISO 8601, Jira's ``…+0000``, epoch milliseconds, naive SQLite values.

Every module reads and writes times through here, so a value means the same thing everywhere and a malformed
one fails the same way: :func:`parse_ts` raises ``ValueError`` naming the value (a broken watermark must be
loud), :func:`try_parse_ts` is for fields a remote may leave malformed or empty (it answers ``None``).
Everything returned is timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

Timestamp = datetime | str | int | float | None


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    """Naive datetimes are UTC (SQLite hands them back naive); the result is in UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def parse_ts(value: Timestamp) -> datetime | None:
    """``None``/empty -> ``None``; a datetime, epoch milliseconds or ISO 8601 text -> aware UTC.

    Python 3.11's ``fromisoformat`` reads ``Z``, ``+0000`` and 7-digit fractions (BC sends 7 digits).
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        return aware(value)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value) / 1000.0, UTC)
    text = str(value).strip()
    if not text:
        return None
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000.0, UTC)
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        raise ValueError(f"not an ISO 8601 timestamp: {text[:60]!r}") from None


def try_parse_ts(value: Timestamp) -> datetime | None:
    """:func:`parse_ts`, with ``None`` for a malformed value (remote fields we only use as hints)."""
    try:
        return parse_ts(value)
    except ValueError:
        return None


def iso(dt: datetime) -> str:
    """``2026-12-01T10:00:00Z`` (microseconds kept when present): the form watermarks and audits store."""
    return aware(dt).isoformat().replace("+00:00", "Z")


def epoch_ms(value: Timestamp) -> int | None:
    """Epoch milliseconds (Jira webhook ``expirationDate`` comes either way), ``None`` when unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())  # exact: a round trip through float seconds can lose the last millisecond
    dt = try_parse_ts(value)
    return int(dt.timestamp() * 1000) if dt else None

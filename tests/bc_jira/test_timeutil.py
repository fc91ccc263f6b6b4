"""The one timestamp codec: every form BC, Jira and SQLite hand us, one failure behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bc_jira.timeutil import aware, epoch_ms, iso, parse_ts, try_parse_ts

NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T12:00:00Z",  # BC
        "2026-12-01T12:00:00.000+0000",  # Jira
        "2026-12-01T14:00:00+02:00",
        " 2026-12-01T12:00:00Z ",
        datetime(2026, 12, 1, 12, 0),  # SQLite: naive means UTC
        datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))),
        1796126400000,  # epoch ms
        "1796126400000",
    ],
)
def test_every_form_reads_as_the_same_aware_utc_instant(value: object) -> None:
    got = parse_ts(value)  # type: ignore[arg-type]
    assert got == NOON
    assert got.tzinfo is UTC


def test_bc_seven_digit_fractions_are_read() -> None:
    assert parse_ts("2026-12-01T12:00:00.1234567Z") == NOON.replace(microsecond=123456)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_absent_is_none(value: str | None) -> None:
    assert parse_ts(value) is None
    assert try_parse_ts(value) is None


def test_malformed_is_loud_in_parse_and_none_in_try_parse() -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp: 'yesterday'"):
        parse_ts("yesterday")
    assert try_parse_ts("yesterday") is None


def test_iso_round_trips_and_writes_z() -> None:
    assert iso(NOON) == "2026-12-01T12:00:00Z"
    assert iso(datetime(2026, 12, 1, 13, 0, tzinfo=timezone(timedelta(hours=1)))) == "2026-12-01T12:00:00Z"
    assert parse_ts(iso(NOON.replace(microsecond=5))) == NOON.replace(microsecond=5)
    assert aware(datetime(2026, 12, 1, 12, 0)) == NOON


def test_epoch_ms_reads_both_jira_forms() -> None:
    assert epoch_ms(1559392950000) == 1559392950000
    assert epoch_ms("2019-06-01T12:42:30.000+0000") == 1559392950000
    assert epoch_ms("soon") is None
    assert epoch_ms(None) is None


def test_epoch_ms_text_is_exact_to_the_millisecond() -> None:
    # Through float seconds these come back one millisecond short (e.g. 1078625331859).
    values = [1078625331860, 1092748005452, 1074829487820, 1559392950000]
    assert [epoch_ms(str(v)) for v in values] == values

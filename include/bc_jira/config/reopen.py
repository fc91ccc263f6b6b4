"""``reopen_transition``: how the issue of a record that needs a human step again is moved back."""

from __future__ import annotations

from typing import Any

from bc_jira.config.model import DEFAULT_REOPEN_TRANSITION

_ABSENT = object()


def parse_reopen_transition(value: Any = _ABSENT, problems: list[str] | None = None) -> str | None:
    """Absent: the default ("To Do"); null: leave the issue in its status (still commented); else a name."""
    if value is _ABSENT:
        return DEFAULT_REOPEN_TRANSITION
    if value is not None and (not isinstance(value, str) or not value.strip()):
        if problems is not None:
            problems.append(
                "reopen_transition: must be a Jira transition or status name (default "
                f"{DEFAULT_REOPEN_TRANSITION!r}) or null (an issue whose record needs a human step again "
                "is then commented but left in its done status)"
            )
        return DEFAULT_REOPEN_TRANSITION
    return value.strip() if value else None

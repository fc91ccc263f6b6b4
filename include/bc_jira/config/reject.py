"""``reject_statuses``: the done-category statuses that mean "no" (Jira has one done category for both).

An issue that reaches one of them leaves its BC record as it is and gets a comment saying so; any other done
status runs the entity's ``done_action``. Names are compared case-insensitively, like Jira's JQL status
names. ``bc_jira_connect`` shows the list and checks it against each workflow (``bc_jira.setup.reject``).
"""

from __future__ import annotations

from typing import Any

# Today's list, spelled as Jira shows them (compared case-insensitively).
DEFAULT_REJECT_STATUSES = (
    "Rejected",
    "Declined",
    "Won't Do",
    "Wont Do",
    "Cancelled",
    "Canceled",
    "Not Approved",
)


def parse_reject_statuses(value: Any, problems: list[str]) -> tuple[str, ...] | None:
    """The configured names (None: not configured, the default applies); problems appended with the fix."""
    if value is None:
        return None
    example = '["Rejected", "Declined"]'
    if not isinstance(value, list):
        problems.append(f"reject_statuses: must be a list of Jira status names, e.g. {example}")
        return None
    names: list[str] = []
    for i, name in enumerate(value):
        if not isinstance(name, str) or not name.strip():
            problems.append(
                f"reject_statuses[{i}]: {name!r} is not a status name; use a name Jira shows, e.g. 'Rejected'"
            )
        elif len(name.strip()) > 255:
            problems.append(f"reject_statuses[{i}]: longer than a Jira status name can be (255 characters)")
        elif name.strip().casefold() not in {n.casefold() for n in names}:
            names.append(name.strip())
    return tuple(names)

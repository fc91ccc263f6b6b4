"""Names the state store's rows use; more of the schema moves here in the store restructure."""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    """Where a BC record's Jira issue stands (``bc_jira_links.state``); stored as the plain string value."""

    PENDING = "pending"  # a create was attempted; whether Jira committed it is unknown
    LINKED = "linked"  # the issue exists and the record needs a human step
    RESOLVING = "resolving"  # the resolve comment exists; the resolved_transition is still to be made
    RESOLVED = "resolved"  # the record no longer needs a human step; comment (+ transition) done
    FAILED = "failed"  # Jira refused the create (known not to exist)
    WRITTEN_BACK = "written_back"  # the write-back acted on the record (no "no longer needed" comment)
    DONE = "done"  # never written by this version; read as closed, as every earlier version did


# The write-back or the outbound already closed the record's episode: no "no longer needed" comment.
DONE_STATES = frozenset({LinkState.RESOLVED, LinkState.WRITTEN_BACK, LinkState.DONE})

"""What the parts of :class:`~bc_jira_sandbox.bc.state.BcState` share (typed once for all of them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import random
    from datetime import datetime

    from bc_jira_sandbox.core import Sandbox


class BcBase:
    """The attributes every part of the state shares, and (for type checkers only) the methods one part
    calls on another; the parts are mixins of one class, so at run time each method has one definition."""

    sb: Sandbox
    company: dict[str, Any]
    records: dict[str, dict[str, dict[str, Any]]]
    lines: dict[str, list[dict[str, Any]]]
    by_number: dict[str, dict[str, str]]
    counters: dict[str, int]
    subscriptions: dict[str, dict[str, Any]]
    pending: dict[str, dict[str, Any]]

    if TYPE_CHECKING:

        @property
        def rng(self) -> random.Random: ...

        def _insert(
            self, entity: str, rec: dict[str, Any], lines: list[dict[str, Any]] | None = None
        ) -> None: ...

        def touch(self, entity: str, rec: dict[str, Any], change: str = "updated") -> None: ...
        def seed_attachments(self, inv: dict[str, Any], when: datetime) -> None: ...

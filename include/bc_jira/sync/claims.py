"""Claims: what one upsert decides about a record, no other run decides at the same time."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from bc_jira.sync.base import CLAIMED, UpsertBase, _Outcome, iso

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

# A claim older than this belongs to an owner that is gone (owners refresh theirs every third of it).
CLAIM_TTL_SECONDS = int(os.environ.get("BC_JIRA_CLAIM_TTL_SECONDS", "900"))


class ClaimsMixin(UpsertBase):
    # claims and versions ----------------------------------------------------------------------------
    def _owner(self) -> str:
        """The task instance that holds a claim (a later try of it may take the claim back)."""
        r = self.run
        index = "" if r.map_index is None else f"[{r.map_index}]"
        return f"{r.dag_id or '-'}/{r.run_id}/{r.task_id or '-'}{index}"

    def _claim(self, recs: Mapping[str, Mapping[str, Any]], outcomes: dict[str, _Outcome]) -> set[str]:
        """Claim every record of the batch; audit the ones another live run holds (and remember them in
        ``held`` with their lastModifiedDateTime, so this run's watermark does not pass them)."""
        self.held: dict[str, str | None] = {}
        now = self.clock()
        self._claimed_at = now
        taken, others = self.store.claim_records(
            self.entity, list(recs), self._owner(), self.run.try_number or 0, now, CLAIM_TTL_SECONDS
        )
        for bc_id, (owner, try_number, since) in others.items():
            when = f", since {iso(since)}" if since else ""
            outcomes[bc_id] = _Outcome(CLAIMED, reason=f"claimed by {owner} (try {try_number}{when})")
            self.held[bc_id] = recs[bc_id].get("lastModifiedDateTime")
        if others:
            log.info(
                "%s: %d of %d record(s) are claimed by another run and left to it (e.g. %s)",
                self.entity,
                len(others),
                len(recs),
                next(iter(others.values()))[0],
            )
        self._mine = taken
        return taken

    def _heartbeat(self) -> None:
        """Refresh this task's claims every third of the TTL, so a slow but live owner is never taken over."""
        now = self.clock()
        if (now - self._claimed_at).total_seconds() < CLAIM_TTL_SECONDS / 3:
            return
        self._claimed_at = now
        taken, lost = self.store.claim_records(
            self.entity, list(self._mine), self._owner(), self.run.try_number or 0, now, CLAIM_TTL_SECONDS
        )
        if lost:
            log.warning("%s: %d claim(s) were taken over by another run meanwhile", self.entity, len(lost))

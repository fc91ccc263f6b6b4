"""BC -> Jira: extract changed records into batches, upsert one batch per mapped task, advance the watermark.

Where duplicates could come from, and what stops them:

* a task retried or cleared: the link table (record id -> issue) is consulted first and written right after
  every create; edits happen only when the content hash of the fields we own changed;
* a link table that does not know the record (lost state, another deployment): one batched JQL search on the
  record-id custom field before creating;
* a bulk create whose answer was lost after Jira committed (timeout, dropped connection, worker killed):
  before each bulk call a ``pending`` link (the intent) is written per record. The next attempt finds those
  intents and looks them up by JQL once ``search_settle_seconds`` have passed since the intent (Jira search
  lags writes; ``reconcileIssues`` only helps for ids one knows, and a lost answer is exactly the case where
  one does not). Found -> linked, not found -> created. Task retries wait longer than the settle time;
* two runs at the same time (a backfill beside the schedule, a manual trigger, ``dags test``): before it
  reads a record's link, searches or creates, an upsert *claims* the record in the state store
  (``bc_jira_claims``, one row per entity and record id, taken in one ``INSERT … ON CONFLICT … RETURNING``
  statement). A record claimed by another live task instance is skipped and audited ``claimed`` ("claimed
  by <dag/run/task>"): that run owns it. Claims are released once the links are written; a claim left by a
  crashed owner is taken over when it is older than ``CLAIM_TTL_SECONDS`` (owners refresh theirs while they
  work), or at once by a later try of the same task instance, and the pending-intent lookup above then
  finds whatever the crashed owner created. The skipping run must not advance its watermark past a record
  it skipped unless that record is synced: each upsert returns the skipped records with their
  lastModifiedDateTime, and ``advance_watermark`` holds the watermark just below the oldest one whose link
  does not show that version synced (the owner may still be working, or may have crashed). The next run
  reads it again; nothing is skipped forever;
* a bulk-create answer paired with the input by position: Atlassian does not document that ``issues[]``
  keeps the input order. After each bulk create (two per call, 100 ids) the created issues are read back
  with ``POST /issue/bulkfetch`` and linked by the *BC Record Id* they carry, never by position. Bulk fetch
  rather than a JQL search with ``reconcileIssues``: it reads the issues themselves (no search lag, no
  50-id reconcile limit), so one call confirms two bulk creates: 0.01 Jira calls per new record instead
  of 0.02. A first sync costs 0.034 Jira calls per record: bulk create 0.02, read-back 0.01, record-id
  lookup 0.004 (250 ids per JQL); target 0.035 (``make bench``).

Replay never moves data backwards:

* an upsert never writes an older version of a record over a newer one. The link row keeps the
  lastModifiedDateTime it last synced (``bc_last_modified``); a stored batch whose record is older than that
  (a cleared task of an older run, a backfill over an old window) is audited ``stale`` and sends nothing.
  Chosen over re-reading the batch from BC: it costs no call, and the newer version is already in Jira (it
  was synced by the run that wrote the newer ``bc_last_modified``), or, if that run failed, it is still
  ahead of the watermark and the next scan brings it;
* the watermark never decreases, whichever run advances it: ``advance_watermark`` compares with the
  Variable's value at that moment (read under a state-store lock, so two runs cannot interleave their
  read-compare-write), not with the value its run started from; a replayed or backfill run leaves a newer
  watermark alone and says so.

Duplicates that exist anyway (an earlier version, a restored state store, a second deployment, a person) are
healed when the record-id lookup finds several issues for one record: the oldest stays the record's issue;
each other one is linked to it with Jira's *Duplicate* link type ("FIN-9 duplicates FIN-2"), commented, and
moved with ``duplicate_transition`` when configured. Healing is an effect with an intent (``bc_jira_effects``,
kind ``duplicate``): planned once per duplicate issue, retried by the next attempt over the same records until
done; the link is looked up on the issue before it is made (and Jira never stores a repeated link twice),
the comment is made exactly once (``bc_jira.sync.effects``), the transition only when the issue is not
done yet.

The "no longer needs a human step" comment is made exactly once per episode (a record can need a human step
again, e.g. a vendor blocked again): an effect keyed by record, issue and the number of resolve comments
made before. The link becomes ``resolved`` only once the comment exists; a lost answer fails the batch, and
the retry finds the comment by its marker instead of posting a second one. The episode that starts when the
record needs a human again (the issue moved back with ``reopen_transition``, one comment) is
``bc_jira.sync.reopen``'s.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bc_jira.mapping import FieldIds, IssueDraft, map_record
from bc_jira.sync.base import (
    CLAIMED,
    STALE,
    Counts,
    RunInfo,
    SyncError,
    _Outcome,
)
from bc_jira.sync.claims import ClaimsMixin
from bc_jira.sync.create import CreateMixin
from bc_jira.sync.heal import HealMixin
from bc_jira.sync.kept import KEPT_EDIT
from bc_jira.sync.lookup import LookupMixin
from bc_jira.sync.plan import plan_batch, plan_reads
from bc_jira.sync.reopen import REOPENED
from bc_jira.sync.resolve import ResolveMixin

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from bc_jira.config import Config
    from bc_jira.sync.base import UpsertStore
    from bc_jira.sync.jira_ops import JiraOps

log = logging.getLogger(__name__)


@dataclass
class Upserter(ClaimsMixin, LookupMixin, HealMixin, CreateMixin, ResolveMixin):
    """Upsert one batch of records of one entity; all decisions per record are audited."""

    cfg: Config
    entity: str
    ids: FieldIds
    jira: JiraOps
    store: UpsertStore
    run: RunInfo = field(default_factory=RunInfo)
    users: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    link_cls: Any = None  # bc_jira.store.Link unless given (tests)
    audit_cls: Any = None  # bc_jira.store.AuditRow unless given
    outcomes: dict[str, _Outcome] = field(default_factory=dict, init=False)  # the last batch's, per record

    # public ------------------------------------------------------------------------------------------------
    def upsert(self, records: Iterable[Mapping[str, Any]]) -> Counts:
        if self.link_cls is None or self.audit_cls is None:
            from bc_jira.store import AuditRow, Link

            self.link_cls, self.audit_cls = self.link_cls or Link, self.audit_cls or AuditRow
        self._links_out: list[Any] = []
        recs = {str(r["id"]): dict(r) for r in records}
        counts = Counts(read=len(recs))
        outcomes: dict[str, _Outcome] = {}
        self.outcomes = outcomes  # read by bc_jira.sync.report (issue keys per action), even when it fails
        all_drafts = {
            bc_id: map_record(self.cfg, self.entity, rec, self.ids, self.users) for bc_id, rec in recs.items()
        }
        failures = 0
        # Claimed before the link is read: what this task decides below nobody else decides at the same time.
        mine = self._claim(recs, outcomes)
        try:
            failures = self._run(recs, all_drafts, mine, outcomes)
        finally:
            self._flush_links()
            self._audit(recs, all_drafts, outcomes)
            # only once the links are durable: a run that claims these next finds them linked
            self.store.release_claims(self.entity, mine, self._owner())
        for o in outcomes.values():
            name = {
                "create": "created",
                "update": "updated",
                KEPT_EDIT: "updated",
                "unchanged": "unchanged",
                "resolve": "resolved",
                REOPENED: "reopened",
                "skipped": "skipped",
                "error": "failed",
                "link": "linked",
                STALE: "stale",
                CLAIMED: "claimed",
            }.get(o.action)
            if name:
                setattr(counts, name, getattr(counts, name) + 1)
        log.info("%s batch: %s", self.entity, counts.line())
        if failures:
            raise SyncError(
                f"{self.entity}: {failures} of {len(recs)} record(s) failed ({counts.line()}); "
                "done records are kept, a retry handles only the rest"
            )
        return counts

    def _run(
        self,
        recs: Mapping[str, Mapping[str, Any]],
        drafts: Mapping[str, IssueDraft],
        mine: set[str],
        outcomes: dict[str, _Outcome],
    ) -> int:
        """Plan (:mod:`bc_jira.sync.plan`), then act; returns the number of records that failed."""
        links = self.store.get_links(self.entity, list(mine))
        read = plan_reads(recs, drafts, links, mine, self.clock(), self.cfg.search_settle_seconds)
        for bc_id, reason in read.stale.items():
            outcomes[bc_id] = _Outcome(
                STALE, issue_key=getattr(links[bc_id], "issue_key", None), reason=reason
            )
        if read.stale:
            log.info(
                "%s: %d record(s) older than the version already synced: nothing sent",
                self.entity,
                len(read.stale),
            )
        plan = plan_batch(read, links, *self._lookups(read))
        self._apply_lookups(plan, read, links, outcomes)
        self._flush_links()
        links = self.store.get_links(self.entity, list(read.current))
        failures = self._create([read.current[b] for b in plan.create], outcomes)
        for bc_id in plan.skip:
            outcomes[bc_id] = _Outcome("skipped", reason="does not need a human step and has no issue")
        current, unread = self._current_for(plan.update, read.current, links, plan.assumed_hash)
        for bc_id in plan.update:
            self._heartbeat()
            issue_id = str(links[bc_id].issue_id)
            if unread and issue_id not in current:
                outcomes[bc_id] = _Outcome("error", issue_key=links[bc_id].issue_key, error=unread)
                failures += 1
                continue
            outcome = self._update(
                read.current[bc_id],
                recs[bc_id],
                links[bc_id],
                plan.assumed_hash(bc_id),
                current.get(issue_id),
            )
            if bc_id in plan.relink and outcome.action == "unchanged":
                outcome = _Outcome(
                    "link", issue_key=outcome.issue_key, reason="issue found by JQL on the record id; linked"
                )
            outcomes[bc_id] = outcome
            failures += outcome.action == "error"
        return failures + self._heal(read.current, plan.duplicates)

    @staticmethod
    def _audit_sent(sent: Any) -> Any:
        """What was sent, with the ADF description (a pure function of the read record) summarised."""
        if not isinstance(sent, dict):
            return sent
        out = dict(sent)
        for key in ("fields", "edit"):
            inner = out.get(key)
            if key == "edit":
                out[key] = Upserter._audit_sent(inner)
            elif isinstance(inner, dict) and isinstance(inner.get("description"), dict):
                out[key] = {**inner, "description": "<ADF from mapping.description(read)>"}
        return out

    def _audit(
        self,
        recs: Mapping[str, Mapping[str, Any]],
        drafts: Mapping[str, IssueDraft],
        outcomes: Mapping[str, _Outcome],
    ) -> None:
        rows = []
        for bc_id, rec in recs.items():
            o = outcomes.get(bc_id) or _Outcome("error", error="not processed (batch aborted)")
            rows.append(
                self.audit_cls(
                    entity=self.entity,
                    bc_id=bc_id,
                    action=o.action,
                    document_number=drafts[bc_id].document_number,
                    issue_key=o.issue_key,
                    reason=o.reason,
                    read=dict(rec),
                    sent=self._audit_sent(o.sent),
                    response=o.response,
                    error=o.error,
                    dag_id=self.run.dag_id,
                    run_id=self.run.run_id,
                    task_id=self.run.task_id,
                    map_index=self.run.map_index,
                    try_number=self.run.try_number,
                )
            )
        if rows:
            self.store.audit(rows)

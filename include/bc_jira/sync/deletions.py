"""Records deleted in BC: their issue gets one comment, the ``deleted_transition``, and is never written back.

Two ways a deletion is learnt: a BC ``deleted`` notification (staged by the intake like any other item), or
the daily reconcile (``bc_jira.sync.reconcile``) for records BC no longer returns. Both only *plan*: the link
becomes ``deleted`` at once (so the write-back refuses to act from that moment) and a ``deletion`` effect
(``bc_jira_effects``) records what is still owed in Jira. Running the pending effects makes the comment
exactly once (an effect with an intent and an ADF marker, ``bc_jira.sync.effects``) and then the transition;
a failure leaves the effect pending for the next run, a clear replays it without a second comment.

A staged ``deleted`` event is deleted only once the deletion of its record is done (or the record never had
an issue), never by the watermark (``bc_jira.edges.settle``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira import adf
from bc_jira.entities import noun, spec
from bc_jira.http import ApiError, NotFoundError
from bc_jira.store.schema import DONE_STATES, LinkState
from bc_jira.sync import effects
from bc_jira.sync.reconcile import BcReads, find_deleted

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from datetime import date

    from bc_jira.config import Config
    from bc_jira.store import AuditRow, Effect, Event, Link
    from bc_jira.sync.base import RunInfo
    from bc_jira.sync.jira_ops import JiraOps

log = logging.getLogger(__name__)

DELETION_KIND = "deletion"  # bc_jira_effects.kind: what is still owed for a deleted record's issue
COMMENT_KIND = "deleted_comment"
RECONCILE_KIND = "deletion_reconcile"  # one done row per entity and UTC day: the reconcile ran that day
DELETED_CHANGE = "deleted"


class DeletionStore(Protocol):
    """The state-store calls of this module (``bc_jira.store.StateStore``)."""

    def get_links(self, entity: str, bc_ids: Iterable[str]) -> Mapping[str, Link]: ...
    def upsert_link(self, link: Link) -> None: ...
    def linked_ids(self, entity: str, exclude_states: Iterable[str] = ()) -> list[str]: ...
    def put_effect(self, effect: Effect) -> Effect: ...
    def get_effect(self, effect_key: str) -> Effect | None: ...
    def effect_attempt(self, effect_key: str) -> None: ...
    def finish_effect(
        self, effect_key: str, state: str, *, result: Any = None, error: str | None = None
    ) -> None: ...
    def pending_effects(self, kind: str, *, entity: str | None = None, limit: int = 500) -> list[Effect]: ...
    def pending_events(self, kind: str | None = None, limit: int = 500) -> list[Event]: ...
    def delete_event(self, event_id: int) -> None: ...
    def mark_event_failed(self, event_id: int, error: str) -> None: ...
    def audit(self, rows: Sequence[AuditRow]) -> None: ...


def deletion_key(entity: str, bc_id: str, issue_id: str) -> str:
    return effects.effect_key(DELETION_KIND, entity, bc_id.lower(), issue_id)


def reconcile_key(entity: str, day: date) -> str:
    return effects.effect_key(RECONCILE_KIND, entity, day.isoformat())


def deleted_events(events: Iterable[Event]) -> dict[str, list[int]]:
    """Staged ``deleted`` notifications by record id (several deliveries of one deletion: one record)."""
    out: dict[str, list[int]] = {}
    for ev in events:
        p = ev.payload or {}
        if p.get("changeType") == DELETED_CHANGE and p.get("record_id"):
            out.setdefault(str(p["record_id"]).lower(), []).append(ev.id)
    return out


def to_follow(links: Mapping[str, Link]) -> dict[str, Link]:
    """The links a deletion acts on: with an issue, their episode still open (not done, not deleted)."""
    return {b: lk for b, lk in links.items() if lk.issue_id and lk.state not in DONE_STATES}


def comment_doc(entity: str, number: str) -> tuple[str, dict[str, Any]]:
    text = (
        f"{noun(entity)} {number} was deleted in Business Central. bc-jira no longer updates this issue, and "
        "moving it to done changes nothing in BC."
    )
    return text, adf.doc(adf.paragraph(adf.text("Business Central: ", strong=True), text, " (bc-jira)"))


@dataclass
class Deletions:
    """Plan and carry out the deletions of one entity's records (see the module docstring)."""

    cfg: Config
    entity: str
    store: DeletionStore
    jira: JiraOps
    run: RunInfo
    counts: dict[str, int] = field(default_factory=dict)

    # -- planning ----------------------------------------------------------------------------------------
    def plan(self, bc_ids: Iterable[str], source: str) -> int:
        """Mark each linked record deleted and record what its issue is owed; returns how many were new."""
        from bc_jira.store import Effect

        new = 0
        for bc_id, link in to_follow(self.store.get_links(self.entity, list(bc_ids))).items():
            key = deletion_key(self.entity, bc_id, str(link.issue_id))
            payload = {"source": source, "document_number": link.document_number, "state_before": link.state}
            eff = Effect(key, DELETION_KIND, self.entity, bc_id, link.issue_id, link.issue_key, payload)
            self.store.put_effect(eff)
            self.store.upsert_link(dataclasses.replace(link, state=LinkState.DELETED, updated_at=None))
            new += 1
            log.info(
                "%s %s: deleted in BC (%s); issue %s marked deleted",
                self.entity,
                bc_id,
                source,
                link.issue_key,
            )
        return new

    def from_events(self, events: Iterable[Event]) -> dict[str, list[int]]:
        """Plan the deletions staged ``deleted`` notifications name; returns their event ids by record."""
        staged = deleted_events(events)
        if staged:
            self._bump("notified", self.plan(staged, "BC deleted notification"))
        return staged

    def reconcile(self, bc: BcReads, today: date) -> dict[str, Any]:
        """At most once per UTC day: linked ids BC no longer has are planned as deletions (fail closed)."""
        from bc_jira.store import Effect

        key = reconcile_key(self.entity, today)
        done = self.store.get_effect(key)
        if done is not None and done.state == effects.DONE:
            return {"skipped": True, "day": today.isoformat(), **(done.result or {})}
        self.store.put_effect(
            Effect(key, RECONCILE_KIND, self.entity, "*", payload={"day": today.isoformat()})
        )
        ids = self.store.linked_ids(self.entity, exclude_states=[str(s) for s in DONE_STATES])
        self.store.effect_attempt(key)
        try:
            found = find_deleted(bc, spec(self.entity).entity_set, ids)
        except Exception as exc:
            self.store.finish_effect(key, effects.PENDING, error=f"{type(exc).__name__}: {exc}")
            self._audit("*", "deletion_reconcile_failed", "nothing taken as deleted", error=str(exc))
            raise
        planned = self.plan(found.deleted or [], "daily reconcile")
        result = {**found.as_dict(), "planned": planned, "day": today.isoformat()}
        self.store.finish_effect(key, effects.DONE, result=result)
        self._audit(
            "*",
            "deletion_reconcile",
            f"{found.checked} linked record(s) checked in {found.calls} BC call(s); "
            f"{len(found.deleted or [])} no longer in BC",
            response=result,
        )
        self._bump("reconciled", planned)
        return result

    # -- acting ------------------------------------------------------------------------------------------
    def run_pending(self, limit: int = 500) -> int:
        """Make what pending deletions still owe in Jira; returns how many are still not done."""
        left = 0
        for eff in self.store.pending_effects(DELETION_KIND, entity=self.entity, limit=limit):
            if not self._finish_one(eff):
                left += 1
        return left

    def settle_events(self, staged: Mapping[str, Sequence[int]]) -> None:
        """Delete each staged ``deleted`` event whose deletion is done (or owed nothing); fail the others."""
        links = self.store.get_links(self.entity, list(staged))
        for bc_id, event_ids in staged.items():
            link = links.get(bc_id)
            eff = (
                self.store.get_effect(deletion_key(self.entity, bc_id, str(link.issue_id))) if link else None
            )
            if eff is not None and eff.state == effects.PENDING:
                for ev in event_ids:
                    self.store.mark_event_failed(ev, eff.error or "deletion not done yet")
                continue
            why = "deletion done" if eff is not None else "record has no open issue; nothing owed"
            self._audit(
                bc_id, "event_settled", f"deleted notification: {why}", read={"event_ids": list(event_ids)}
            )
            for ev in event_ids:
                self.store.delete_event(ev)

    def _finish_one(self, eff: Effect) -> bool:
        issue = str(eff.issue_id)
        number = str(eff.payload.get("document_number") or eff.bc_id)
        steps: list[str] = []
        try:
            made = self._comment(eff, number)
            if not made.settled:
                raise ApiError("jira", "POST", f"issue/{issue}/comment", message=made.error or made.state)
            steps.append("commented" if made.exists else f"Jira refused the comment ({made.error})")
            steps.append(self._transition(issue))
        except NotFoundError as exc:  # the issue itself was deleted in Jira: nothing left to tell
            self.store.finish_effect(eff.effect_key, effects.FAILED, error=str(exc))
            self._audit(
                eff.bc_id, "deleted_failed", "the issue no longer exists in Jira", eff=eff, error=str(exc)
            )
            return True
        except ApiError as exc:
            self.store.finish_effect(eff.effect_key, effects.PENDING, error=str(exc))
            self._audit(
                eff.bc_id, "deleted_failed", "; ".join(steps) or "not done yet", eff=eff, error=str(exc)
            )
            log.warning(
                "%s %s: deletion not carried to %s yet: %s", self.entity, eff.bc_id, eff.issue_key, exc
            )
            return False
        self.store.finish_effect(eff.effect_key, effects.DONE, result={"steps": steps})
        self._audit(
            eff.bc_id,
            "deleted",
            f"{noun(self.entity)} {number} deleted in BC ({eff.payload.get('source')}): " + "; ".join(steps),
            eff=eff,
        )
        self._bump("done", 1)
        return True

    def _comment(self, eff: Effect, number: str) -> effects.CommentResult:
        text, body = comment_doc(self.entity, number)
        comments = effects.CommentEffects(
            store=self.store,
            post=self.jira.comment,
            comments=self.jira.list_comments,
            audit=lambda suffix, e, reason, sent, response, error: self._audit(
                e.bc_id, f"deleted_{suffix}", reason, eff=e, sent=sent, response=response, error=error
            ),
        )
        key = effects.effect_key(COMMENT_KIND, self.entity, eff.bc_id, eff.issue_id)
        planned = comments.plan(
            key,
            kind=COMMENT_KIND,
            entity=self.entity,
            bc_id=eff.bc_id,
            issue=str(eff.issue_id),
            issue_key=eff.issue_key,
            body=body,
            context={"text": "deleted in Business Central", "document_number": number},
        )
        return comments.make(planned)

    def _transition(self, issue: str) -> str:
        """``deleted_transition`` unless the issue is already in the done category (a person closed it)."""
        name = self.cfg.deleted_transition
        if not name:
            return "left in its status (deleted_transition is null)"
        current = (self.jira.get_issue(issue, ["status"]).get("fields") or {}).get("status") or {}
        if (current.get("statusCategory") or {}).get("key") == "done":
            return f"already done ({current.get('name')!r}); not moved"
        moved = self.jira.transition(issue, name)
        return f"moved with {moved!r}" if moved else f"transition {name!r} not available"

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def _bump(self, what: str, n: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def _audit(self, bc_id: str, action: str, reason: str, *, eff: Any = None, **kw: Any) -> None:
        from bc_jira.store import AuditRow

        payload = (eff.payload if eff is not None else None) or {}
        self.store.audit(
            [
                AuditRow(
                    entity=self.entity,
                    bc_id=bc_id,
                    action=action,
                    document_number=payload.get("document_number"),
                    issue_key=eff.issue_key if eff is not None else None,
                    reason=reason,
                    dag_id=self.run.dag_id,
                    run_id=self.run.run_id,
                    task_id=self.run.task_id,
                    map_index=self.run.map_index,
                    try_number=self.run.try_number,
                    **kw,
                )
            ]
        )


def follow_deletions(
    d: Deletions, bc: BcReads, today: date, kind: str, *, reconcile: bool = True
) -> dict[str, Any]:
    """The sync DAG's ``follow_deletions`` task: staged notifications, the daily reconcile, then the owed
    Jira effects; staged events go only once their deletion is done."""
    staged = d.from_events(d.store.pending_events(kind, limit=5000))
    d.run_pending()
    d.settle_events(staged)  # before the reconcile: a BC outage there must not hold notified deletions
    rec = d.reconcile(bc, today) if reconcile else {"skipped": True}
    left = d.run_pending()
    return {"counts": dict(d.counts), "reconcile": rec, "pending": left}

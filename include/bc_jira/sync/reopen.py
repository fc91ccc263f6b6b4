"""A record that needs a human step again after its episode closed: reopen its issue, comment once.

An episode closes when the write-back acted (``written_back``), the record stopped needing a human
(``resolved``), or an earlier version closed it (``done``). When the selection then says the record needs a
human step again (a vendor blocked again, a purchase order back to a status needing approval), a new episode
starts: the issue is moved with ``reopen_transition`` (when it is in the done category and the key is set),
gets ONE comment saying why, and the link goes back to ``linked``, so the write-back acts again on the next
Done. A link still ``linked`` whose issue a person moved to a done status (a reject status, a done action
``none``, a stale write-back) is reopened the same way when its record changes in BC after that Done, but only
when ``reopen_transition`` is set (otherwise the write-back's stale comment already asks to move it).

Replay never moves data backwards: a version of the record that is not newer than what closed the episode
(a cleared upsert of the version the write-back acted on, a backfill) starts nothing. For ``written_back``
and ``done`` the reference is the issue's ``statuscategorychangedate`` when it is in the done category (the
write-back's own replay rule, mirrored: a Done is about the record as it was then; a record changed after it
is a new state), else the version last synced; for ``resolved`` it is the version last synced (the one that
no longer needed a human). A ``deleted`` record is never reopened.

Exactly once: the comment is an effect with an intent (``bc_jira.sync.effects``), keyed by record, issue and
the version that needs a human again; the link goes back to ``linked`` only once the comment is settled. A
retry or clear plans the same key, and an episode already planned (its effect exists) is carried on without
the ordering check, which the first attempt's transition (a new ``statuscategorychangedate``) would fail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira import adf
from bc_jira.entities import spec
from bc_jira.mapping import status_text
from bc_jira.store.schema import LinkState
from bc_jira.sync import effects
from bc_jira.sync.base import UpsertBase, _NotConfirmed, _Outcome
from bc_jira.timeutil import Timestamp, iso, try_parse_ts

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from bc_jira.mapping import IssueDraft

log = logging.getLogger(__name__)

REOPENED = "reopened"  # audit action: a new episode started (issue moved back, commented, link linked)
REOPEN_COMMENT_KIND = "reopen_comment"  # bc_jira_effects.kind (audited reopen_comment[_failed|…])
DONE_AT_FIELD = "statuscategorychangedate"  # when the issue last changed status category (Jira Cloud)
STATUS_FIELDS = ("status", DONE_AT_FIELD)  # what the planner reads of the issue
CLOSED_STATES = frozenset({LinkState.WRITTEN_BACK, LinkState.RESOLVED, LinkState.DONE})


@dataclass(frozen=True)
class ReopenPlan:
    """A new episode (``start``) or why not; ``transition``: move the issue with it (None: leave it)."""

    start: bool
    transition: str | None = None
    why: str = ""


def may_reopen(draft: IssueDraft, link: Any) -> bool:
    """Whether the issue's status must be read to decide (the link is closed and the record needs a human)."""
    return draft.needs_human and link.state in CLOSED_STATES


def plan_reopen(
    *,
    state: str,
    needs_human: bool,
    modified: Timestamp,
    last_synced: Timestamp,
    issue: Mapping[str, Any] | None,
    reopen_transition: str | None,
    planned: bool = False,
) -> ReopenPlan | None:
    """What to do with one record's issue; None: no episode question (it does not need a human, its link is
    still open and its issue too, or the record was deleted). ``issue``: its fields as read (status and
    ``statuscategorychangedate``; None: not read). ``planned``: this episode's comment is already planned."""
    if not needs_human or state not in (*CLOSED_STATES, LinkState.LINKED):
        return None
    status = (issue or {}).get("status") or {}
    in_done = ((status.get("statusCategory") or {}).get("key")) == "done"
    if state == LinkState.LINKED and not (in_done and reopen_transition):
        return None  # open episode, open issue (or nothing to move it with): nothing new
    transition = reopen_transition if in_done else None
    if planned:
        return ReopenPlan(True, transition, "carrying on the episode planned by an earlier attempt")
    done_at = try_parse_ts((issue or {}).get(DONE_AT_FIELD))
    mine = try_parse_ts(modified)
    ref: datetime | None
    if state == LinkState.LINKED and done_at is None:
        return None  # cannot tell the record changed after the Done: the write-back's stale rule speaks
    if state != LinkState.RESOLVED and in_done and done_at is not None:
        ref, what = done_at, f"the issue reached its done status ({iso(done_at)})"
    else:
        ref = try_parse_ts(last_synced)
        what = f"the version that closed the episode (modified {iso(ref)})" if ref else ""
    if mine is not None and ref is not None and mine <= ref:
        return ReopenPlan(
            False,
            why=f"this version (modified {iso(mine)}) is not newer than {what}: the closed episode was about "
            "it; left as it is",
        )
    where = f"the issue was in {status.get('name')!r}" if status.get("name") else "the issue's status"
    return ReopenPlan(
        True, transition, f"needs a human step again in BC after {what or 'it closed'}; {where}"
    )


def reopen_comment(entity: str, record: Mapping[str, Any], transition: str | None) -> dict[str, Any]:
    """The one comment of a new episode: what changed in BC, when, and what the connector did."""
    s = spec(entity)
    number = record.get("number") or record.get("id")
    when = try_parse_ts(record.get("lastModifiedDateTime"))
    on = f" on {iso(when)}" if when else ""
    if not s.document:
        msg = f"{s.kind} {number} was blocked again in Business Central{on} ({status_text(entity, record)})."
    else:
        msg = (
            f"{s.kind} {number} needs review again: it changed in Business Central{on} "
            f"(status {status_text(entity, record) or 'blank'})."
        )
    if transition:
        msg += f" Reopening the issue ({transition!r}): moving it to done again acts on the current record."
    return adf.doc(adf.paragraph(msg, " (bc-jira)"))


class ReopenMixin(UpsertBase):
    def _reopen(
        self, draft: IssueDraft, record: Mapping[str, Any], link: Any, current: Mapping[str, Any] | None
    ) -> tuple[_Outcome | None, str]:
        """Start a new episode when :func:`plan_reopen` says so; returns its outcome (None: no new episode)
        and the link state to keep. Raises when Jira fails or the comment is not confirmed (the retry carries
        the same episode on, without a second comment)."""
        facts: dict[str, Any] = {
            "state": link.state,
            "needs_human": draft.needs_human,
            "modified": draft.last_modified,
            "last_synced": link.bc_last_modified,
            "issue": current,
            "reopen_transition": self.cfg.reopen_transition,
        }
        plan = plan_reopen(**facts)
        if plan is None:
            return None, link.state
        key = effects.effect_key(
            REOPEN_COMMENT_KIND, self.entity, draft.bc_id, link.issue_id, draft.last_modified
        )
        if not plan.start and self.store.get_effect(key) is not None:
            plan = plan_reopen(**facts, planned=True)  # an earlier attempt started it: carry it on
        if plan is None or not plan.start:
            log.info("%s: %s", link.issue_key, plan.why if plan else "no new episode")
            return None, link.state
        comment = reopen_comment(self.entity, record, plan.transition)
        comments = self._comment_effects()
        eff = comments.plan(
            key,
            kind=REOPEN_COMMENT_KIND,
            entity=self.entity,
            bc_id=draft.bc_id,
            issue=str(link.issue_id),
            issue_key=link.issue_key,
            body=comment,
            context={"text": "needs a human step again", "document_number": draft.document_number},
        )
        made = comments.make(eff)
        if not made.settled:
            raise _NotConfirmed(f"reopen comment not confirmed ({made.state}: {made.error})")
        # after the comment: a failing transition is retried by the next attempt without a second comment
        moved = self.jira.transition(link.issue_id, plan.transition) if plan.transition else None
        reason = (
            plan.why + "; " + ("commented" if made.exists else f"Jira refused the comment ({made.error})")
        )
        if plan.transition:
            reason += (
                f", moved with {moved!r}" if moved else f", transition {plan.transition!r} not available"
            )
        out = _Outcome(
            REOPENED, issue_key=link.issue_key or link.issue_id, sent={"comment": comment}, reason=reason
        )
        return out, LinkState.LINKED

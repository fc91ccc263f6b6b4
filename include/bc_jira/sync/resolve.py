"""Update an issue whose owned fields changed; resolve one whose record needs no human step."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from bc_jira.mapping import IssueDraft, resolved_comment
from bc_jira.store.schema import DONE_STATES, LinkState
from bc_jira.sync import effects
from bc_jira.sync.base import _NotConfirmed, _Outcome
from bc_jira.sync.kept import KeptEditsMixin
from bc_jira.sync.reopen import ReopenMixin

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

RESOLVE_COMMENT_KIND = "resolve_comment"


class ResolveMixin(ReopenMixin, KeptEditsMixin):
    # update / resolve -----------------------------------------------------------------------------
    def _update(
        self,
        draft: IssueDraft,
        record: Mapping[str, Any],
        link: Any,
        assumed_hash: str | None,
        current: Mapping[str, Any] | None = None,
    ) -> _Outcome:
        """Edit the issue when its owned fields changed (``current``: its fields as just read, see
        :mod:`bc_jira.sync.kept`), resolve it when the record needs no human step any more."""
        current_hash = link.content_hash if assumed_hash is None else assumed_hash
        texts = (link.summary_hash, link.description_hash)
        key = link.issue_key or link.issue_id
        outcome = _Outcome("unchanged", issue_key=key)
        state = link.state
        reopened = None
        try:
            if draft.needs_human:
                # needs a human again (e.g. a vendor blocked again): a new episode (bc_jira.sync.reopen),
                # decided before the edit so that a failing edit cannot hide it from the retry
                reopened, state = self._reopen(draft, record, link, current)
                if reopened is None and state == LinkState.RESOLVING:
                    state = LinkState.LINKED
            if draft.content_hash != current_hash:
                outcome, texts = self._edit(draft, link, current, key)
                current_hash = draft.content_hash
            if reopened is not None:
                outcome = dataclasses.replace(reopened, sent={"edit": outcome.sent, **reopened.sent})
            elif not draft.needs_human and state not in DONE_STATES:
                comment = resolved_comment(self.entity, record)
                refused = None
                if state != LinkState.RESOLVING:
                    made = self._resolve_comment(draft, link, comment)
                    if not made.settled:
                        raise _NotConfirmed(f"resolve comment not confirmed ({made.state}: {made.error})")
                    refused = None if made.exists else made.error
                    state = (
                        LinkState.RESOLVING
                    )  # a failing transition below is retried without a second comment
                moved = None
                if self.ecfg.resolved_transition:
                    moved = self.jira.transition(link.issue_id, self.ecfg.resolved_transition)
                reason = "no longer needs a human step in BC; " + (
                    f"Jira refused the comment ({refused})" if refused else "commented"
                )
                if self.ecfg.resolved_transition:
                    reason += (
                        f", moved with {moved!r}"
                        if moved
                        else f", transition {self.ecfg.resolved_transition!r} not available"
                    )
                outcome = _Outcome(
                    "resolve", issue_key=key, sent={"edit": outcome.sent, "comment": comment}, reason=reason
                )
                state = LinkState.RESOLVED
        except Exception as exc:  # noqa: BLE001 - audited; the batch fails at the end and retries
            self._save_link(draft, link.issue_id, link.issue_key, state, current_hash, texts)
            return _Outcome(
                "error", issue_key=key, sent=outcome.sent, error=str(exc), reason="Jira call failed"
            )
        changed = current_hash != link.content_hash or state != link.state
        if changed or assumed_hash is not None or texts != (link.summary_hash, link.description_hash):
            self._save_link(draft, link.issue_id, link.issue_key, state, current_hash, texts)
        return outcome

    def _resolve_comment(
        self, draft: IssueDraft, link: Any, comment: dict[str, Any]
    ) -> effects.CommentResult:
        """The "no longer needs a human step" comment, once per episode (see the module docstring)."""
        episode = sum(
            self.store.count_effects(RESOLVE_COMMENT_KIND, self.entity, draft.bc_id, state)
            for state in (effects.DONE, effects.FAILED)
        )
        key = effects.effect_key(RESOLVE_COMMENT_KIND, self.entity, draft.bc_id, link.issue_id, episode)
        comments = self._comment_effects()
        eff = comments.plan(
            key,
            kind=RESOLVE_COMMENT_KIND,
            entity=self.entity,
            bc_id=draft.bc_id,
            issue=str(link.issue_id),
            issue_key=link.issue_key,
            body=comment,
            context={"text": "no longer needs a human step", "document_number": draft.document_number},
        )
        return comments.make(eff)

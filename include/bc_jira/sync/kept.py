"""Edit an issue without overwriting a person's summary or description (decided by ``bc_jira.sync.edits``).

The issues to edit are read first, one ``POST /issue/bulkfetch`` per 100 (their summary, description and
owned fields); an issue whose text a person changed gets only its owned fields and one comment saying what
changed in BC. The comment is an effect with an intent (``bc_jira.sync.effects``), keyed by the record, the
issue and the content hash of the version it reports: a retry, a cleared task or a later run of the same
version plans the same key and never posts it twice. Until the comment is known to exist the link keeps its
old content hash, so the retry comes back to this record, edits again (the same values: a no-op in Jira)
and settles the comment, looking for it first when an earlier answer was lost.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bc_jira.hooks.jira import BULK_FETCH_MAX
from bc_jira.sync import effects
from bc_jira.sync.base import Texts, UpsertBase, _chunks, _NotConfirmed, _Outcome
from bc_jira.sync.edits import TEXTS, bc_changes, kept_comment, plan_edit
from bc_jira.sync.reopen import STATUS_FIELDS, may_reopen

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.mapping import IssueDraft

log = logging.getLogger(__name__)

KEPT_EDIT = "kept_edit"  # audit action: a person's summary/description kept, owned fields updated
KEPT_COMMENT_KIND = "kept_edit_comment"  # bc_jira_effects.kind (audited kept_edit_comment[_failed|…])

# Current fields of the issues about to be edited: issue id -> fields; an issue left out was not read.
Current = dict[str, dict[str, Any]]


class KeptEditsMixin(UpsertBase):
    def _read_current(self, issue_ids: Sequence[str]) -> tuple[Current, str | None]:
        """The issues' summary, description and owned fields (one call per 100), and why not when the read
        failed (those issues are then not edited this time: overwriting unread text could lose an edit)."""
        fields = [*TEXTS, *self.ids.as_dict().values(), *STATUS_FIELDS]
        out: Current = {}
        for chunk in _chunks(list(dict.fromkeys(issue_ids)), BULK_FETCH_MAX):
            try:
                issues = self.jira.fetch(list(chunk), fields)
            except Exception as exc:  # noqa: BLE001 - the records fail and are retried; nothing is edited
                return out, f"could not read the issues before editing them ({exc})"
            for issue in issues:
                out[str(issue["id"])] = dict(issue.get("fields") or {})
        return out, None

    def _edit(
        self, draft: IssueDraft, link: Any, current: Mapping[str, Any] | None, key: str | None
    ) -> tuple[_Outcome, Texts]:
        """Edit the issue (owned fields; summary and description unless a person changed them); returns the
        outcome and the text hashes now written. Raises when Jira fails or the comment is not confirmed."""
        recorded = (link.summary_hash, link.description_hash)
        plan = plan_edit(draft, recorded, current)
        if not plan.kept:
            reason = "owned fields changed"
            if plan.adopted:
                reason += (
                    f"; {' and '.join(plan.adopted)} left as they are (not known what the connector wrote "
                    "there before this version; their current text is the baseline from now on)"
                )
            self.jira.edit(link.issue_id, plan.body)
            return _Outcome("update", issue_key=key, sent=plan.body, reason=reason), plan.written
        comment = kept_comment(
            draft, plan, bc_changes(draft, current or {}, self.ids, self.cfg.fields.as_dict())
        )
        comments = self._comment_effects()
        eff = comments.plan(
            _kept_key(self.entity, draft, link),
            kind=KEPT_COMMENT_KIND,
            entity=self.entity,
            bc_id=draft.bc_id,
            issue=str(link.issue_id),
            issue_key=link.issue_key,
            body=comment,
            context={"text": "changed in Business Central", "document_number": draft.document_number},
        )
        self.jira.edit(link.issue_id, plan.body)
        made = comments.make(eff)
        if not made.settled:
            raise _NotConfirmed(f"kept-edit comment not confirmed ({made.state}: {made.error})")
        kept = " and ".join(plan.kept)
        reason = f"a person changed the {kept} in Jira: kept; only the owned fields updated, " + (
            "commented" if made.exists else f"Jira refused the comment ({made.error})"
        )
        return (
            _Outcome(KEPT_EDIT, issue_key=key, sent={"edit": plan.body, "comment": comment}, reason=reason),
            plan.written,
        )

    def _current_for(
        self, update: Sequence[str], drafts: Mapping[str, IssueDraft], links: Mapping[str, Any], assumed: Any
    ) -> tuple[Current, str | None]:
        """Read the issues of the records whose owned fields changed (the ones :meth:`_edit` will edit);
        ``assumed``: the batch plan's ``assumed_hash``. Returns what was read and why the read failed."""
        ids = []
        for b in update:
            link = links[b]
            was = assumed(b)
            changed = drafts[b].content_hash != (link.content_hash if was is None else was)
            if changed or may_reopen(drafts[b], link):  # a closed episode: its status decides a reopen
                ids.append(str(link.issue_id))
        return self._read_current(ids) if ids else ({}, None)


def _kept_key(entity: str, draft: IssueDraft, link: Any) -> str:
    return effects.effect_key(KEPT_COMMENT_KIND, entity, draft.bc_id, link.issue_id, draft.content_hash)

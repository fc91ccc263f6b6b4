"""Duplicate issues of one record: the oldest stays, the others are linked, commented and moved."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bc_jira import adf
from bc_jira.entities import spec
from bc_jira.sync import effects
from bc_jira.sync.base import SyncError, UpsertBase, _NotConfirmed

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from bc_jira.mapping import IssueDraft
    from bc_jira.sync.plan import Issue

log = logging.getLogger(__name__)

DUPLICATE_KIND = "duplicate"
DUPLICATE_COMMENT_KIND = "duplicate_comment"
_LINK_TYPE: dict[str, str] = {}  # the site's Duplicate link type name, once per process


def duplicate_link_type(types: Iterable[Mapping[str, Any]]) -> str | None:
    """The Duplicate link type's name among GET /issueLinkType's (by name, else by outward "duplicates")."""
    types = list(types)
    for t in types:
        if str(t.get("name") or "").casefold() == "duplicate":
            return str(t["name"])
    for t in types:
        if str(t.get("outward") or "").casefold() == "duplicates":
            return str(t["name"])
    return None


def _has_duplicate_link(issuelinks: Iterable[Mapping[str, Any]], type_name: str, original_id: str) -> bool:
    """True when the issue already reads "duplicates <original>" (its entry carries ``outwardIssue``)."""
    return any(
        str((lk.get("type") or {}).get("name") or "").casefold() == type_name.casefold()
        and str((lk.get("outwardIssue") or {}).get("id") or "") == str(original_id)
        for lk in issuelinks
    )


class HealMixin(UpsertBase):
    # duplicates ---------------------------------------------------------------------------------------------
    def _heal(
        self, drafts: Mapping[str, IssueDraft], duplicates: Mapping[str, tuple[Issue, list[Issue]]]
    ) -> int:
        """Plan a healing effect per duplicate found, then run every pending one of these records.

        Returns the number that failed (the batch then fails and its retry heals them).
        """
        from bc_jira.store import Effect

        for bc_id, (original, others) in duplicates.items():
            for dup in others:
                key = effects.effect_key(DUPLICATE_KIND, self.entity, bc_id, dup["id"])
                self.store.put_effect(
                    Effect(
                        key,
                        DUPLICATE_KIND,
                        self.entity,
                        bc_id,
                        issue_id=dup["id"],
                        issue_key=dup["key"],
                        payload={
                            "original_id": original["id"],
                            "original_key": original["key"],
                            "document_number": drafts[bc_id].document_number if bc_id in drafts else None,
                        },
                    )
                )
        pending = self.store.pending_effects(DUPLICATE_KIND, entity=self.entity, bc_ids=list(drafts))
        return sum(0 if self._heal_one(eff) else 1 for eff in pending)

    def _duplicate_link_type(self) -> str:
        """The site's Duplicate link type name (GET /issueLinkType; bc_jira_connect checks it exists)."""
        cached = _LINK_TYPE.get("name")
        if cached:
            return cached
        name = duplicate_link_type(self.jira.link_types())
        if name is None:
            raise SyncError(
                "Jira has no issue link type named 'Duplicate' (or with outward 'duplicates'); "
                "add it in Jira settings > Issues > Issue linking, then run bc_jira_connect"
            )
        _LINK_TYPE["name"] = name
        return name

    def _heal_one(self, eff: Any) -> bool:
        """Link, comment and (optionally) move one duplicate; each step skipped when already there."""
        from bc_jira.http import ApiError, NotFoundError

        p = eff.payload
        original_id, original_key, dup = p["original_id"], p["original_key"], eff.issue_id
        steps: list[str] = []
        try:
            link_type = self._duplicate_link_type()
            issue = self.jira.get_issue(dup, ["issuelinks", "status"])
            f = issue.get("fields") or {}
            if not _has_duplicate_link(f.get("issuelinks") or [], link_type, original_id):
                self.jira.link(link_type, dup, original_id)
                steps.append(f"linked as {link_type} of {original_key}")
            else:
                steps.append(f"{link_type} link to {original_key} already there")
            text = (
                f"This issue duplicates {original_key}, the issue of {spec(self.entity).noun} "
                f"{p.get('document_number') or eff.bc_id} (BC record id {eff.bc_id}). bc-jira keeps "
                f"{original_key} up to date and no longer updates this one."
            )
            comments = self._comment_effects()
            ckey = effects.effect_key(DUPLICATE_COMMENT_KIND, self.entity, eff.bc_id, dup)
            ceff = comments.plan(
                ckey,
                kind=DUPLICATE_COMMENT_KIND,
                entity=self.entity,
                bc_id=eff.bc_id,
                issue=dup,
                issue_key=eff.issue_key,
                body=adf.doc(adf.paragraph(text, " (bc-jira)")),
                context={"text": text, "document_number": p.get("document_number")},
            )
            made = comments.make(ceff, look_first=True)
            if not made.settled:
                raise _NotConfirmed(f"duplicate comment not confirmed ({made.state}: {made.error})")
            steps.append("commented" if made.exists else f"Jira refused the comment ({made.error})")
            category = ((f.get("status") or {}).get("statusCategory") or {}).get("key")
            name = self.cfg.duplicate_transition
            if name and category != "done":
                moved = self.jira.transition(dup, name)
                steps.append(f"moved with {moved!r}" if moved else f"transition {name!r} not available")
        except NotFoundError as exc:
            # the duplicate (or the kept issue) was deleted meanwhile: nothing left to heal
            self.store.finish_effect(eff.effect_key, effects.FAILED, error=str(exc))
            self._audit_effect("duplicate_failed", eff, "issue no longer exists; not healed", error=str(exc))
            log.warning("%s: duplicate %s of %s no longer exists", self.entity, eff.issue_key, original_key)
            return True
        except (ApiError, SyncError, _NotConfirmed) as exc:
            self.store.finish_effect(eff.effect_key, effects.PENDING, error=str(exc))
            self._audit_effect("duplicate_failed", eff, "; ".join(steps) or "not healed yet", error=str(exc))
            log.warning(
                "%s: duplicate %s of %s not healed yet: %s", self.entity, eff.issue_key, original_key, exc
            )
            return False
        self.store.finish_effect(eff.effect_key, effects.DONE, result={"steps": steps})
        self._audit_effect(
            "duplicate", eff, f"{eff.issue_key} duplicates {original_key}: " + "; ".join(steps)
        )
        log.info(
            "%s: duplicate %s of %s healed: %s", self.entity, eff.issue_key, original_key, "; ".join(steps)
        )
        return True

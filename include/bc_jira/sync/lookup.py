"""Find the issue of a record the link table does not know: pending intents and the record-id JQL."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from bc_jira.config import ENTITIES
from bc_jira.hooks.jira import RECONCILE_MAX
from bc_jira.mapping import IssueDraft
from bc_jira.sync.base import FAILED, LINKED, PENDING, UpsertBase, _chunks, _Outcome, parse_ts

log = logging.getLogger(__name__)

JQL_IDS_PER_SEARCH = 100

# Issue ids this process created recently, passed as reconcileIssues so a search right after our own
# creates sees them (Jira: consistency only for the ids listed, at most 50).
_RECENT_CREATED: dict[str, deque[int]] = {e: deque(maxlen=RECONCILE_MAX) for e in ENTITIES}


def _jql_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text_phrase(value: str) -> str:
    """``value`` as a Jira text-search phrase: ``~`` matches words, so without the inner quotes a GUID would
    be any issue holding its five hyphen-separated words in any order (Atlassian, "Search syntax for text
    fields": an exact phrase needs quote-marks, escaped inside JQL). Quotes inside the value cannot be part
    of a phrase; they only separate words, so they become spaces."""
    return _jql_string('"' + value.replace('"', " ") + '"')


def _cf_clause(field_id: str) -> str:
    """``customfield_10042`` -> ``cf[10042]`` (names may contain dots or quotes; ids do not)."""
    return f"cf[{field_id.removeprefix('customfield_')}]" if field_id.startswith("customfield_") else field_id


class LookupMixin(UpsertBase):
    # unlinked records: pending intents and JQL ----------------------------------------------------
    def _resolve_unlinked(
        self, drafts: dict[str, IssueDraft], links: Mapping[str, Any], outcomes: dict[str, _Outcome]
    ) -> tuple[set[str], dict[str, str]]:
        """Returns (record ids to create, found record id -> hash to assume for its issue)."""
        pending = [b for b, lk in links.items() if lk.state == PENDING and b in drafts]
        unknown = [
            b
            for b, d in drafts.items()
            if d.needs_human
            and (
                b not in links
                or links[b].state == FAILED
                or (not links[b].issue_id and links[b].state != PENDING)
            )
        ]
        to_create: set[str] = set()
        found_hashes: dict[str, str] = {}

        if pending:
            youngest = max((parse_ts(links[b].updated_at) or self.clock()) for b in pending)
            wait = self.cfg.search_settle_seconds - (self.clock() - youngest).total_seconds()
            if wait > 0:
                log.info(
                    "%s: %d create(s) with a lost answer; waiting %.1fs for Jira search to settle",
                    self.entity,
                    len(pending),
                    wait,
                )
                self.sleep(wait)
            found = self._find(pending)
            for b in pending:
                issue = found.get(b)
                if issue:
                    # Jira committed the create we could not confirm: it holds what the intent carried.
                    self._link(drafts[b], issue, LINKED, links[b].content_hash or "")
                    found_hashes[b] = links[b].content_hash or ""
                    log.info(
                        "%s: record %s was created as %s before the answer was lost",
                        self.entity,
                        b,
                        issue["key"],
                    )
                elif drafts[b].needs_human:
                    to_create.add(b)
                else:
                    self._save_link(drafts[b], None, None, FAILED, "")
                    outcomes[b] = _Outcome("skipped", reason="create never reached Jira; no longer needed")
        if unknown:
            found = self._find(unknown)
            for b in unknown:
                issue = found.get(b)
                if issue:
                    self._link(drafts[b], issue, LINKED, "")
                    found_hashes[b] = ""
                else:
                    to_create.add(b)
        return to_create, found_hashes

    def _find(self, bc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Issues carrying these record ids in the record-id field (one JQL per 100 ids; oldest wins)."""
        fid = self.ids.record_id
        out: dict[str, dict[str, Any]] = {}
        reconcile = list(_RECENT_CREATED[self.entity])
        for chunk in _chunks(list(bc_ids), JQL_IDS_PER_SEARCH):
            # a phrase per id; a phrase also matches a longer value holding it, so only exact values count
            ors = " OR ".join(f"{_cf_clause(fid)} ~ {_text_phrase(b)}" for b in chunk)
            jql = f"project = {_jql_string(self.cfg.project_key)} AND ({ors}) ORDER BY created ASC"
            issues = self.jira.search(jql, ["id", "key", fid], reconcile)
            wanted = set(chunk)
            every: dict[str, list[dict[str, Any]]] = {}
            for issue in issues:
                value = (issue.get("fields") or {}).get(fid)
                if value in wanted:
                    every.setdefault(value, []).append({"id": str(issue["id"]), "key": issue["key"]})
            for value, found in every.items():
                found = sorted({i["id"]: i for i in found}.values(), key=lambda i: int(i["id"]))
                out[value] = found[0]
                if len(found) > 1:
                    log.warning(
                        "%s: record %s has %d issues (%s); keeping the oldest, healing the others",
                        self.entity,
                        value,
                        len(found),
                        ", ".join(i["key"] for i in found),
                    )
                    self._dups[value] = (found[0], found[1:])
        return out

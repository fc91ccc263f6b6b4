"""Find the issue of a record the link table does not know: pending intents and the record-id JQL."""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from bc_jira.config import ENTITIES
from bc_jira.config.companies import COMPANY_LABEL_PREFIX
from bc_jira.hooks.jira import RECONCILE_MAX
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import UpsertBase, _chunks, _Outcome

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.sync.plan import BatchPlan, ReadPlan

log = logging.getLogger(__name__)

# Record ids per lookup JQL: 250 phrase clauses OR'ed (about 15 KB of JQL, sent in a POST body). Atlassian
# documents no clause limit; JRACLOUD-84010 (https://jira.atlassian.com/browse/JRACLOUD-84010) says large
# operand lists fail "starting around the few thousands" and always near 25,000, so 250 stays an order of
# magnitude below. 250 rather than 100: a first sync costs 0.004 lookups per record instead of 0.01, which
# brings it under 0.035 Jira calls per record (bulk create 0.02 + bulk-fetch read-back 0.01 + lookup).
JQL_IDS_PER_SEARCH = 250

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


# record id -> the issues carrying it, oldest first
Found = dict[str, list[dict[str, str]]]


def in_company(issue: Mapping[str, Any], label: str, default: bool) -> bool:
    """Whether an issue found by record id is this company's: its ``bc-company-`` label says so; an issue
    without one is the default company's (issues created before ``companies`` carry no company)."""
    labels = (issue.get("fields") or {}).get("labels") or []
    companies = {lab for lab in labels if isinstance(lab, str) and lab.startswith(COMPANY_LABEL_PREFIX)}
    return label in companies if companies else default


def company_clause(label: str, default: bool) -> str:
    """The JQL narrowing a record-id search to one company (the default one also owns unlabelled issues,
    which JQL cannot say without listing every other company: those are filtered by :func:`in_company`)."""
    return "" if default else f" AND labels = {_jql_string(label)}"


class LookupMixin(UpsertBase):
    # unlinked records: pending intents and JQL ----------------------------------------------------
    def _lookups(self, read: ReadPlan) -> tuple[Found, Found]:
        """Look up the pending intents (once Jira search has settled) and the unknown records by record id."""
        found_pending: Found = {}
        if read.pending:
            if read.settle_wait > 0:
                log.info(
                    "%s: %d create(s) with a lost answer; waiting %.1fs for Jira search to settle",
                    self.entity,
                    len(read.pending),
                    read.settle_wait,
                )
                self.sleep(read.settle_wait)
            found_pending = self._find_all(read.pending)
        found_unknown = self._find_all(read.unknown) if read.unknown else {}
        return found_pending, found_unknown

    def _apply_lookups(
        self, plan: BatchPlan, read: ReadPlan, links: Mapping[str, Any], outcomes: dict[str, _Outcome]
    ) -> None:
        """Queue the links the lookups decided: found issues linked, intents Jira never saw given up."""
        for b, (issue, content_hash) in plan.relink.items():
            # a recovered intent carries what its create wrote; an issue found by JQL alone is not known
            lk = links.get(b) if b in plan.recovered else None
            texts = (lk.summary_hash, lk.description_hash) if lk is not None else (None, None)
            self._link(read.current[b], issue, LinkState.LINKED, content_hash, texts)
        for b in plan.recovered:
            log.info(
                "%s: record %s was created as %s before the answer was lost",
                self.entity,
                b,
                plan.relink[b][0]["key"],
            )
        for b in plan.give_up:
            self._save_link(read.current[b], None, None, LinkState.FAILED, "")
            outcomes[b] = _Outcome("skipped", reason="create never reached Jira; no longer needed")

    def _find(self, bc_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """The oldest issue carrying each of these record ids (the one the record keeps)."""
        return {bc_id: issues[0] for bc_id, issues in self._find_all(bc_ids).items()}

    def _find_all(self, bc_ids: Sequence[str]) -> Found:
        """Issues carrying these record ids in the record-id field, oldest first (one JQL per
        JQL_IDS_PER_SEARCH ids)."""
        fid = self.ids.record_id
        out: Found = {}
        reconcile = list(_RECENT_CREATED[self.entity])
        scope = self.cfg.company  # None: one company (no ``companies``): the record id alone
        where = company_clause(scope.label, scope.default) if scope else ""
        for chunk in _chunks(list(bc_ids), JQL_IDS_PER_SEARCH):
            # a phrase per id; a phrase also matches a longer value holding it, so only exact values count
            ors = " OR ".join(f"{_cf_clause(fid)} ~ {_text_phrase(b)}" for b in chunk)
            jql = f"project = {_jql_string(self.cfg.project_key)} AND ({ors}){where} ORDER BY created ASC"
            issues = self.jira.search(jql, ["id", "key", fid, *(["labels"] if scope else [])], reconcile)
            wanted = set(chunk)
            every: dict[str, list[dict[str, Any]]] = {}
            for issue in issues:
                if scope is not None and not in_company(issue, scope.label, scope.default):
                    continue  # the same record id in another company (a copy of this one)
                value = (issue.get("fields") or {}).get(fid)
                if isinstance(value, str) and value in wanted:
                    every.setdefault(value, []).append({"id": str(issue["id"]), "key": issue["key"]})
            for value, found in every.items():
                found = sorted({i["id"]: i for i in found}.values(), key=lambda i: int(i["id"]))
                out[value] = found
                if len(found) > 1:
                    log.warning(
                        "%s: record %s has %d issues (%s); keeping the oldest, healing the others",
                        self.entity,
                        value,
                        len(found),
                        ", ".join(i["key"] for i in found),
                    )
        return out

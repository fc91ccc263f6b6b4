"""What an upsert does with each record of its batch, decided without I/O.

Two steps, because the second needs what Jira answered to the first: :func:`plan_reads` (after the claims
and the link read) picks the records that are stale and the ones whose issue must be looked up by record id
(pending intents, whose create answer was lost, and records that need a human but have no issue);
:func:`plan_batch` (with what the lookups found) decides which records are linked to a found issue, created,
given up, updated or resolved, or skipped, and which found issues are duplicates to heal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira.store.schema import LinkState
from bc_jira.timeutil import Timestamp, iso, parse_ts

if TYPE_CHECKING:
    from datetime import datetime

    from bc_jira.mapping import IssueDraft

# A found issue, as the record-id lookup returns it: {"id": "10001", "key": "FIN-1"}.
Issue = Mapping[str, str]


class LinkView(Protocol):
    """What the planner reads of a stored link (``bc_jira.store.Link``)."""

    @property
    def state(self) -> str: ...
    @property
    def issue_id(self) -> str | None: ...
    @property
    def issue_key(self) -> str | None: ...
    @property
    def content_hash(self) -> str | None: ...
    @property
    def bc_last_modified(self) -> Timestamp: ...
    @property
    def updated_at(self) -> Timestamp: ...


def stale_reason(record: Mapping[str, Any], link: LinkView | None) -> str | None:
    """Why this version of the record must not be sent (it is older than the one last synced), or None."""
    if link is None:
        return None
    mine, synced = parse_ts(record.get("lastModifiedDateTime")), parse_ts(link.bc_last_modified)
    if mine is None or synced is None or mine >= synced:
        return None
    return (
        f"this version (modified {iso(mine)}) is older than the one already synced (modified "
        f"{iso(synced)}); nothing sent"
    )


@dataclass(frozen=True)
class ReadPlan:
    current: dict[str, IssueDraft]  # claimed and not older than the version last synced, in batch order
    stale: dict[str, str]  # record id -> why nothing is sent
    pending: list[str]  # intents whose create answer was lost: look them up before creating again
    unknown: list[str]  # need a human, no issue known: look them up by record id before creating
    settle_wait: float  # seconds to wait before the pending lookup (Jira search lags writes)


def _unlinked(bc_id: str, links: Mapping[str, LinkView]) -> bool:
    link = links.get(bc_id)
    return (
        link is None
        or link.state == LinkState.FAILED
        or (not link.issue_id and link.state != LinkState.PENDING)
    )


def plan_reads(
    records: Mapping[str, Mapping[str, Any]],
    drafts: Mapping[str, IssueDraft],
    links: Mapping[str, LinkView],
    mine: set[str],
    now: datetime,
    settle_seconds: float,
) -> ReadPlan:
    """Stale records, and the lookups to make before anything is created."""
    current: dict[str, IssueDraft] = {}
    stale: dict[str, str] = {}
    for bc_id in records:
        if bc_id not in mine:
            continue
        reason = stale_reason(records[bc_id], links.get(bc_id))
        if reason:
            stale[bc_id] = reason
        else:
            current[bc_id] = drafts[bc_id]
    pending = [b for b, lk in links.items() if lk.state == LinkState.PENDING and b in current]
    unknown = [b for b, d in current.items() if d.needs_human and _unlinked(b, links)]
    wait = 0.0
    if pending:
        youngest = max((parse_ts(links[b].updated_at) or now) for b in pending)
        wait = settle_seconds - (now - youngest).total_seconds()
    return ReadPlan(current, stale, pending, unknown, wait)


@dataclass(frozen=True)
class BatchPlan:
    relink: dict[str, tuple[Issue, str]] = field(default_factory=dict)  # found: link, hash to assume
    recovered: list[str] = field(default_factory=list)  # pending intents Jira had committed after all
    give_up: list[str] = field(default_factory=list)  # pending, not found, no longer needed: failed link
    create: list[str] = field(default_factory=list)  # in batch order
    update: list[str] = field(default_factory=list)  # have an issue: edit if changed, resolve if done
    skip: list[str] = field(default_factory=list)  # need no human step and have no issue
    duplicates: dict[str, tuple[Issue, list[Issue]]] = field(default_factory=dict)  # kept, others

    def assumed_hash(self, bc_id: str) -> str | None:
        """The content hash to assume for a found issue (None: the link's own)."""
        found = self.relink.get(bc_id)
        return found[1] if found else None


def plan_batch(
    read: ReadPlan,
    links: Mapping[str, LinkView],
    found_pending: Mapping[str, Sequence[Issue]],
    found_unknown: Mapping[str, Sequence[Issue]],
) -> BatchPlan:
    """Decide every current record from its link and what the lookups found (oldest issue first)."""
    plan = BatchPlan()
    to_create: set[str] = set()
    for found in (found_pending, found_unknown):
        for bc_id, issues in found.items():
            if len(issues) > 1:
                plan.duplicates[bc_id] = (issues[0], list(issues[1:]))
    for b in read.pending:
        committed = found_pending.get(b)
        if committed:
            # Jira committed the create we could not confirm: it holds what the intent carried.
            plan.relink[b] = (committed[0], links[b].content_hash or "")
            plan.recovered.append(b)
        elif read.current[b].needs_human:
            to_create.add(b)
        else:
            plan.give_up.append(b)
    for b in read.unknown:
        existing = found_unknown.get(b)
        if existing:
            plan.relink[b] = (existing[0], "")
        else:
            to_create.add(b)
    done = to_create | set(plan.give_up)
    for b in read.current:
        if b in to_create:
            plan.create.append(b)
        elif b in done:
            continue
        elif b in plan.relink or _has_issue(links.get(b)):
            plan.update.append(b)
        else:
            plan.skip.append(b)
    return plan


def _has_issue(link: LinkView | None) -> bool:
    return (
        link is not None and bool(link.issue_id) and link.state not in (LinkState.PENDING, LinkState.FAILED)
    )

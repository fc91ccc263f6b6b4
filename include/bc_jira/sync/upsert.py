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
  of 0.02, which keeps the whole sync within 0.05 calls per record (bench: 0.030 before this check).

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
the retry finds the comment by its marker instead of posting a second one.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira import adf
from bc_jira.config import (
    ENTITIES,
    FIELDS_VARIABLE_KEY,
    USERS_VARIABLE_KEY,
    WATERMARK_PREFIX,
    Config,
    EntityConfig,
)
from bc_jira.mapping import (
    FieldIds,
    IssueDraft,
    create_payload,
    edit_payload,
    field_ids,
    map_record,
    resolved_comment,
)
from bc_jira.sync import effects

log = logging.getLogger(__name__)

# Link states (store.Link.state).
PENDING = "pending"  # a create was attempted; whether Jira committed it is unknown
LINKED = "linked"  # issue exists, record needs a human step
RESOLVED = "resolved"  # record no longer needs a human step; comment (+ transition) done
RESOLVING = "resolving"  # the resolve comment exists; the resolved_transition is still to be made
FAILED = "failed"  # Jira refused the create (known not to exist)
# States set by the write-back (jira_transitions_to_bc) after it acted: no "no longer needed" comment.
DONE_STATES = frozenset({RESOLVED, "written_back", "done"})

BULK_CREATE_MAX = 50
JQL_IDS_PER_SEARCH = 100
RECONCILE_MAX = 50
LINK_LOOKUP_CHUNK = 1000
BC_PAGE_SIZE = 1000
MAX_BATCHES = 200  # batch ids are ~40 bytes: the extract's XCom stays under 10 KB
BULK_FETCH_MAX = 100  # POST /issue/bulkfetch takes up to 100 ids: one read confirms two bulk creates
# A claim older than this belongs to an owner that is gone (owners refresh theirs every third of it).
CLAIM_TTL_SECONDS = int(os.environ.get("BC_JIRA_CLAIM_TTL_SECONDS", "900"))
STALE = "stale"  # audit action: the batch's record is older than the version already synced
CLAIMED = "claimed"  # audit action: another live run holds the record
_MIN = datetime.min.replace(tzinfo=UTC)

# Issue ids this process created recently, passed as reconcileIssues so a search right after our own
# creates sees them (Jira: consistency only for the ids listed, at most 50).
_RECENT_CREATED: dict[str, deque[int]] = {e: deque(maxlen=RECONCILE_MAX) for e in ENTITIES}


class SyncError(RuntimeError):
    """Some records of a batch failed; the batch is safe to retry (done records are skipped by hash)."""


class _NotConfirmed(RuntimeError):
    """An owed comment is not known to exist yet (failed, or its answer was lost); the retry settles it."""


# bc_jira_effects kinds of the outbound side
RESOLVE_COMMENT_KIND = "resolve_comment"
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


def _noun(entity: str) -> str:
    return {
        "purchase_invoices": "purchase invoice",
        "vendors": "vendor",
        "purchase_orders": "purchase order",
    }[entity]


# -- run context ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    dag_id: str | None = None
    run_id: str = "manual"
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    run_type: str = "manual"
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """RunInfo from an Airflow task context (``get_current_context()``)."""
    ti = context.get("ti") or context.get("task_instance")
    dr = context.get("dag_run")
    run_type = getattr(dr, "run_type", None) or "manual"
    run_type = getattr(run_type, "value", run_type)
    map_index = getattr(ti, "map_index", None)
    return RunInfo(
        dag_id=getattr(ti, "dag_id", None) or getattr(dr, "dag_id", None),
        run_id=getattr(ti, "run_id", None) or getattr(dr, "run_id", None) or "manual",
        task_id=getattr(ti, "task_id", None),
        map_index=map_index if map_index is not None and map_index >= 0 else None,
        try_number=getattr(ti, "try_number", None),
        run_type=str(run_type).lower(),
        data_interval_start=context.get("data_interval_start") or getattr(dr, "data_interval_start", None),
        data_interval_end=context.get("data_interval_end") or getattr(dr, "data_interval_end", None),
    )


@dataclass
class Counts:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    resolved: int = 0
    linked: int = 0  # existing issue found by JQL (link table did not know it)
    skipped: int = 0
    failed: int = 0
    stale: int = 0  # older than the version already synced: nothing sent
    claimed: int = 0  # held by another live run: that run owns it

    def line(self) -> str:
        parts = [
            f"read {self.read}",
            f"created {self.created}",
            f"updated {self.updated}",
            f"unchanged {self.unchanged}",
        ]
        for name in ("resolved", "linked", "skipped", "stale", "claimed", "failed"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


# -- helpers ---------------------------------------------------------------------------------------


def parse_ts(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def watermark_key(entity: str) -> str:
    return f"{WATERMARK_PREFIX}{entity}"


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


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


def _short(value: Any, limit: int = 2000) -> Any:
    """Bound what goes into the audit row (the read record is kept whole; answers are trimmed)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


# -- Jira operations (thin adapter over JiraCloudHook) -----------------------------------------------------


class JiraOps:
    """The handful of Jira calls the upsert needs, over :class:`bc_jira.hooks.jira.JiraCloudHook`."""

    def __init__(self, hook: Any) -> None:
        self.hook = hook

    def search(self, jql: str, fields: Sequence[str], reconcile: Sequence[int] = ()) -> list[dict[str, Any]]:
        return self.hook.search_all(
            jql, list(fields), reconcile_issues=list(reconcile)[-RECONCILE_MAX:], max_results=5000
        )

    def bulk_create(self, issue_updates: list[dict[str, Any]]) -> Any:
        """One POST (≤ 50). Not retried on a lost answer: the pending intents decide what happened."""
        return self.hook.bulk_create_issues(issue_updates)

    def fetch(self, issue_ids: Sequence[str], fields: Sequence[str]) -> list[dict[str, Any]]:
        """The issues themselves (≤ 100 per call), read after a create to learn which record each carries."""
        return self.hook.bulk_fetch_issues(list(issue_ids), list(fields))

    def edit(self, issue_id: str, body: dict[str, Any]) -> None:
        self.hook.edit_issue(issue_id, body.get("fields"), update=body.get("update"))

    def comment(self, issue_id: str, adf_body: dict[str, Any]) -> dict[str, Any]:
        return self.hook.add_comment(issue_id, adf_body)

    def transition(self, issue_id: str, name: str) -> str | None:
        """Apply the transition named ``name`` (or leading to a status of that name); None if unavailable."""
        return self.hook.transition_to(issue_id, name)

    def list_comments(self, issue_id: str) -> Iterable[dict[str, Any]]:
        """The issue's comments, newest first (to find one whose answer was lost)."""
        return self.hook.iter_comments(issue_id, newest_first=True)

    def get_issue(self, issue_id: str, fields: Sequence[str]) -> dict[str, Any]:
        return self.hook.get_issue(issue_id, fields=list(fields))

    def link_types(self) -> list[dict[str, Any]]:
        return self.hook.get_issue_link_types()

    def link(self, type_name: str, inward_issue: str, outward_issue: str) -> None:
        """Make "<inward_issue> <type.outward> <outward_issue>" (e.g. duplicate "duplicates" original)."""
        self.hook.link_issues(type_name, inward_issue, outward_issue)


# -- extract -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None
    initial: bool


def sync_window(
    cfg: Config,
    run: RunInfo,
    watermark: str | None,
    events_scan: tuple[bool, datetime | None] = (False, None),
) -> Window:
    """Backfill: the run's data interval. Otherwise: watermark minus the overlap, open-ended.

    ``events_scan`` comes from staged BC ``collection`` notifications (``intake.bc_scan_since``): BC merged
    more than 1,000 changes, so read from their ``since`` when that is earlier, or everything.
    """
    if run.is_backfill:
        if run.data_interval_start is None or run.data_interval_end is None:
            raise SyncError("a backfill run needs a data interval (schedule with CronDataIntervalTimetable)")
        return Window(parse_ts(run.data_interval_start), parse_ts(run.data_interval_end), False)
    wm = parse_ts(watermark)
    if wm is None:
        return Window(None, None, True)
    full, earliest = events_scan
    if full:
        return Window(None, None, False)
    since = wm - timedelta(seconds=cfg.overlap_seconds)
    if earliest is not None and parse_ts(earliest) < since:
        since = parse_ts(earliest)
    return Window(since, None, False)


def extract(
    entity: str,
    *,
    cfg: Config,
    bc: Any,
    store: Any,
    run: RunInfo,
    watermark: str | None,
    events_scan: tuple[bool, datetime | None] = (False, None),
) -> dict[str, Any]:
    """Read changed records into the state store as batches; return only batch ids and the high-water mark.

    Kept: records the selection says need a human step, plus records that already have an issue (so one that
    stopped needing a human step gets its comment/transition). Clearing this task replays the same batches.
    """
    ecfg = cfg.entity(entity)
    result: dict[str, Any] = {
        "batch_ids": [],
        "high_watermark": None,
        "watermark": watermark,
        "read": 0,
        "kept": 0,
        "backfill": run.is_backfill,
    }
    if not ecfg.enabled:
        log.info("%s: disabled in bc_jira_config (entities.%s.enabled); nothing to do", entity, entity)
        return result

    existing = store.batch_ids(entity, run.run_id)
    if existing:
        high = None
        kept = 0
        for bid in existing:
            for rec in store.load_batch(bid):
                kept += 1
                ts = parse_ts(rec.get("lastModifiedDateTime"))
                high = ts if high is None or (ts and ts > high) else high
        log.info(
            "%s: run %s already extracted %d batch(es); replaying them", entity, run.run_id, len(existing)
        )
        result.update(
            batch_ids=list(existing), high_watermark=iso(high) if high else None, kept=kept, read=kept
        )
        return result

    window = sync_window(cfg, run, watermark, events_scan)
    # First sync ever: no issue can be linked yet, so let BC filter by the selection.
    extra = ecfg.selection.odata_filter() if window.initial else None
    log.info(
        "%s: reading %s modified %s%s%s",
        entity,
        ecfg.entity_set,
        f"after {iso(window.since)}" if window.since else "at any time",
        f" up to {iso(window.until)}" if window.until else "",
        f" where {extra}" if extra else "",
    )

    kept: dict[str, dict[str, Any]] = {}
    high: datetime | None = None
    read = 0
    buffer: dict[str, dict[str, Any]] = {}

    def flush() -> None:
        if not buffer:
            return
        linked = store.get_links(entity, list(buffer))
        for bc_id, rec in buffer.items():
            link = linked.get(bc_id)
            if ecfg.selection.matches(rec) or (link is not None and link.state != FAILED):
                kept[bc_id] = rec
            else:
                kept.pop(bc_id, None)
        buffer.clear()

    for rec in bc.iter_modified(
        ecfg.entity_set, window.since, window.until, extra_filter=extra, page_size=BC_PAGE_SIZE
    ):
        read += 1
        ts = parse_ts(rec.get("lastModifiedDateTime"))
        if ts is not None and (high is None or ts > high):
            high = ts
        rec = {k: v for k, v in rec.items() if not k.startswith("@odata")}
        prev = buffer.get(rec["id"]) or kept.get(rec["id"])
        if prev is not None and (parse_ts(prev.get("lastModifiedDateTime")) or _MIN) > (ts or _MIN):
            continue  # de-duplicate by id (the overlap re-reads records): keep the newest version
        buffer[rec["id"]] = rec
        if len(buffer) >= LINK_LOOKUP_CHUNK:
            flush()
    flush()

    records = sorted(kept.values(), key=lambda r: (r.get("lastModifiedDateTime") or "", r["id"]))
    # XCom stays small and the map under [core] max_map_length: at most MAX_BATCHES batches per run.
    size = max(cfg.batch_size, -(-len(records) // MAX_BATCHES))
    if size != cfg.batch_size:
        log.info(
            "%s: %d records: batches of %d instead of %d (at most %d mapped tasks)",
            entity,
            len(records),
            size,
            cfg.batch_size,
            MAX_BATCHES,
        )
    batch_ids = store.save_batches(entity, run.run_id, records, size) if records else []
    result.update(
        batch_ids=list(batch_ids), high_watermark=iso(high) if high else None, read=read, kept=len(records)
    )
    log.info(
        "%s: read %d, %d need sync, %d batch(es) of up to %d",
        entity,
        read,
        len(records),
        len(batch_ids),
        size,
    )
    return result


# -- upsert --------------------------------------------------------------------------------------------------


@dataclass
class _Outcome:
    action: str
    issue_key: str | None = None
    reason: str | None = None
    sent: Any = None
    response: Any = None
    error: str | None = None


@dataclass
class Upserter:
    """Upsert one batch of records of one entity; all decisions per record are audited."""

    cfg: Config
    entity: str
    ids: FieldIds
    jira: JiraOps
    store: Any
    run: RunInfo = field(default_factory=RunInfo)
    users: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    link_cls: Any = None  # bc_jira.store.Link unless given (tests)
    audit_cls: Any = None  # bc_jira.store.AuditRow unless given

    @property
    def ecfg(self) -> EntityConfig:
        return self.cfg.entity(self.entity)

    # public ------------------------------------------------------------------------------------------------
    def upsert(self, records: Iterable[Mapping[str, Any]]) -> Counts:
        if self.link_cls is None or self.audit_cls is None:
            from bc_jira.store import AuditRow, Link

            self.link_cls, self.audit_cls = self.link_cls or Link, self.audit_cls or AuditRow
        self._links_out: list[Any] = []
        self._dups: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
        recs = {str(r["id"]): dict(r) for r in records}
        counts = Counts(read=len(recs))
        outcomes: dict[str, _Outcome] = {}
        all_drafts = {
            bc_id: map_record(self.cfg, self.entity, rec, self.ids, self.users) for bc_id, rec in recs.items()
        }
        failures = 0
        # Claimed before the link is read: what this task decides below nobody else decides at the same time.
        mine = self._claim(recs, outcomes)
        try:
            links = self.store.get_links(self.entity, list(mine))
            drafts = self._current(recs, all_drafts, links, mine, outcomes)
            to_create, found_hashes = self._resolve_unlinked(drafts, links, outcomes)
            self._flush_links()
            links = self.store.get_links(self.entity, list(drafts))
            # create
            creatable = [d for bid, d in drafts.items() if bid in to_create]
            failures += self._create(creatable, outcomes)
            # update / resolve / unchanged
            for bc_id, draft in drafts.items():
                if bc_id in outcomes:
                    continue
                self._heartbeat()
                link = links.get(bc_id)
                if link is None or not link.issue_id or link.state in (PENDING, FAILED):
                    outcomes[bc_id] = _Outcome(
                        "skipped", reason="does not need a human step and has no issue"
                    )
                    continue
                outcome = self._update(draft, recs[bc_id], link, found_hashes.get(bc_id))
                if bc_id in found_hashes and outcome.action == "unchanged":
                    outcome = _Outcome(
                        "link",
                        issue_key=outcome.issue_key,
                        reason="issue found by JQL on the record id; linked",
                    )
                outcomes[bc_id] = outcome
                if outcome.action == "error":
                    failures += 1
            failures += self._heal(drafts)
        finally:
            self._flush_links()
            self._audit(recs, all_drafts, outcomes)
            # only once the links are durable: a run that claims these next finds them linked
            self.store.release_claims(self.entity, mine, self._owner())
        for o in outcomes.values():
            name = {
                "create": "created",
                "update": "updated",
                "unchanged": "unchanged",
                "resolve": "resolved",
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

    def _current(
        self,
        recs: Mapping[str, Mapping[str, Any]],
        drafts: Mapping[str, IssueDraft],
        links: Mapping[str, Any],
        mine: set[str],
        outcomes: dict[str, _Outcome],
    ) -> dict[str, IssueDraft]:
        """The claimed records whose version is not older than the one their link last synced."""
        out: dict[str, IssueDraft] = {}
        for bc_id in recs:
            if bc_id not in mine:
                continue
            reason = stale_reason(recs[bc_id], links.get(bc_id))
            if reason:
                outcomes[bc_id] = _Outcome(
                    STALE, issue_key=getattr(links[bc_id], "issue_key", None), reason=reason
                )
            else:
                out[bc_id] = drafts[bc_id]
        stale = len(mine) - len(out)
        if stale:
            log.info(
                "%s: %d record(s) older than the version already synced: nothing sent", self.entity, stale
            )
        return out

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

    # duplicates ---------------------------------------------------------------------------------------------
    def _heal(self, drafts: Mapping[str, IssueDraft]) -> int:
        """Plan a healing effect per duplicate found, then run every pending one of these records.

        Returns the number that failed (the batch then fails and its retry heals them).
        """
        from bc_jira.store import Effect

        for bc_id, (original, others) in getattr(self, "_dups", {}).items():
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
                f"This issue duplicates {original_key}, the issue of {_noun(self.entity)} "
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

    def _comment_effects(self) -> effects.CommentEffects:
        return effects.CommentEffects(
            store=self.store,
            post=self.jira.comment,
            comments=lambda issue: self.jira.list_comments(issue),
            audit=lambda suffix, eff, reason, sent, response, error: self._audit_effect(
                f"{eff.kind.removesuffix('_comment')}_{suffix}", eff, reason, sent, response, error
            ),
        )

    def _audit_effect(
        self,
        action: str,
        eff: Any,
        reason: str,
        sent: Any = None,
        response: Any = None,
        error: str | None = None,
    ) -> None:
        self.store.audit(
            [
                self.audit_cls(
                    entity=self.entity,
                    bc_id=eff.bc_id,
                    action=action,
                    document_number=(eff.payload or {}).get("document_number"),
                    issue_key=eff.issue_key,
                    reason=reason,
                    sent=sent,
                    response=response,
                    error=error,
                    dag_id=self.run.dag_id,
                    run_id=self.run.run_id,
                    task_id=self.run.task_id,
                    map_index=self.run.map_index,
                    try_number=self.run.try_number,
                )
            ]
        )

    # create ------------------------------------------------------------------------------------------------
    def _create(self, drafts: list[IssueDraft], outcomes: dict[str, _Outcome]) -> int:
        failures = 0
        for group in _chunks(drafts, BULK_FETCH_MAX):
            self._heartbeat()
            waiting: dict[str, tuple[IssueDraft, dict[str, Any]]] = {}
            made: list[Mapping[str, Any]] = []
            for chunk in _chunks(group, BULK_CREATE_MAX):
                payloads = [create_payload(self.cfg, d) for d in chunk]
                # the intent: if the answer is lost, the next attempt knows to look before creating again
                for d in chunk:
                    self._save_link(d, None, None, PENDING, d.content_hash)
                self._flush_links()  # the intents are durable before Jira sees the request
                try:
                    answer = self.jira.bulk_create(payloads)
                except Exception as exc:  # noqa: BLE001 - every failure is audited; the task then fails and retries
                    failures += len(chunk)
                    for d, p in zip(chunk, payloads, strict=True):
                        outcomes[d.bc_id] = _Outcome(
                            "error",
                            reason="bulk create failed; intent kept as pending",
                            sent=p,
                            error=str(exc),
                        )
                    continue
                # failedElementNumber is documented to name the element; the order of issues[] is not.
                failed = {f.index: f for f in answer.failed}
                for i, (d, p) in enumerate(zip(chunk, payloads, strict=True)):
                    if i in failed:
                        failures += 1
                        self._save_link(d, None, None, FAILED, "")
                        outcomes[d.bc_id] = _Outcome(
                            "error",
                            reason="Jira refused the create",
                            sent=p,
                            response={
                                "status": failed[i].status,
                                "errors": failed[i].errors,
                                "messages": failed[i].messages,
                            },
                            error=_short(str(failed[i])),
                        )
                    else:
                        waiting[d.bc_id] = (d, p)
                made.extend(issue for _, issue in answer.created)
            failures += self._link_created(waiting, made, outcomes)
            self._flush_links()
        return failures

    def _link_created(
        self,
        waiting: Mapping[str, tuple[IssueDraft, dict[str, Any]]],
        made: Sequence[Mapping[str, Any]],
        outcomes: dict[str, _Outcome],
    ) -> int:
        """Link each created issue to the record id it carries (read back, one call per 100), not by the
        position of the answer. What no created issue carries stays pending: the next attempt looks it up."""
        if not waiting:
            return 0
        fid = self.ids.record_id
        carried: dict[str, dict[str, str]] = {}
        error = "no created issue carries this record id; intent kept as pending"
        if made:
            try:
                read_back = self.jira.fetch([str(i["id"]) for i in made], [fid])
            except Exception as exc:  # noqa: BLE001 - the intents stay pending; the retry looks them up by JQL
                read_back = []
                error = f"created, but reading the created issues back failed ({exc}); intent kept as pending"
            for issue in read_back:
                value = (issue.get("fields") or {}).get(fid)
                if value in waiting and value not in carried:
                    carried[value] = {"id": str(issue["id"]), "key": issue["key"]}
                else:
                    log.warning(
                        "%s: created issue %s carries record id %r, which this create did not send once",
                        self.entity,
                        issue.get("key"),
                        value,
                    )
        failures = 0
        for bc_id, (d, p) in waiting.items():
            issue = carried.get(bc_id)
            if issue is None:
                failures += 1
                outcomes[bc_id] = _Outcome("error", reason="no issue in the bulk answer", sent=p, error=error)
                continue
            _RECENT_CREATED[self.entity].append(int(issue["id"]))
            state = LINKED if d.needs_human else RESOLVED
            self._save_link(d, issue["id"], issue["key"], state, d.content_hash)
            outcomes[bc_id] = _Outcome("create", issue_key=issue["key"], sent=p, response=issue)
        return failures

    # update / resolve -----------------------------------------------------------------------------
    def _update(
        self, draft: IssueDraft, record: Mapping[str, Any], link: Any, assumed_hash: str | None
    ) -> _Outcome:
        current_hash = link.content_hash if assumed_hash is None else assumed_hash
        key = link.issue_key or link.issue_id
        outcome = _Outcome("unchanged", issue_key=key)
        state = link.state
        try:
            if draft.content_hash != current_hash:
                body = edit_payload(draft)
                self.jira.edit(link.issue_id, body)
                outcome = _Outcome("update", issue_key=key, sent=body, reason="owned fields changed")
                current_hash = draft.content_hash
            if draft.needs_human:
                if state in DONE_STATES or state == RESOLVING:
                    state = LINKED  # needs a human again (e.g. vendor blocked again)
            elif state not in DONE_STATES:
                comment = resolved_comment(self.entity, record)
                refused = None
                if state != RESOLVING:
                    made = self._resolve_comment(draft, link, comment)
                    if not made.settled:
                        raise _NotConfirmed(f"resolve comment not confirmed ({made.state}: {made.error})")
                    refused = None if made.exists else made.error
                    state = RESOLVING  # a failing transition below is retried without a second comment
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
                state = RESOLVED
        except Exception as exc:  # noqa: BLE001 - audited; the batch fails at the end and retries
            self._save_link(draft, link.issue_id, link.issue_key, state, current_hash)
            return _Outcome(
                "error", issue_key=key, sent=outcome.sent, error=str(exc), reason="Jira call failed"
            )
        if current_hash != link.content_hash or state != link.state or assumed_hash is not None:
            self._save_link(draft, link.issue_id, link.issue_key, state, current_hash)
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

    # store ----------------------------------------------------------------------------------------
    def _link(self, draft: IssueDraft, issue: Mapping[str, Any], state: str, content_hash: str) -> None:
        self._save_link(draft, str(issue["id"]), issue["key"], state, content_hash)

    def _save_link(
        self, draft: IssueDraft, issue_id: str | None, issue_key: str | None, state: str, content_hash: str
    ) -> None:
        """Queue a link write; :meth:`_flush_links` writes the queue (in one transaction when it can)."""
        self._links_out.append(
            self.link_cls(
                entity=self.entity,
                bc_id=draft.bc_id,
                document_number=draft.document_number,
                issue_id=issue_id,
                issue_key=issue_key,
                content_hash=content_hash,
                bc_last_modified=draft.last_modified,
                state=state,
                updated_at=self.clock(),
            )
        )

    def _flush_links(self) -> None:
        queued, self._links_out = self._links_out, []
        if not queued:
            return
        bulk = getattr(self.store, "upsert_links", None)
        if callable(bulk):
            bulk(queued)
        else:
            for link in queued:
                self.store.upsert_link(link)

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


def stale_reason(record: Mapping[str, Any], link: Any) -> str | None:
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


# -- finalize --------------------------------------------------------------------------------------


def next_watermark(extracted: Mapping[str, Any], current: str | None) -> str | None:
    """The watermark after a successful run: the highest lastModifiedDateTime read, never below the value the
    run started from nor below ``current`` (the Variable now). Backfill runs leave it alone."""
    return plan_watermark(extracted, current).value


@dataclass(frozen=True)
class WatermarkPlan:
    value: str | None  # the watermark after this run (``current`` when it is left alone)
    write: bool  # whether Variable.set is needed
    message: str  # what the log says (never "advanced" for a non-advance)


# A held watermark sits this far below the oldest record it must not pass (BC keeps milliseconds).
HOLD_MARGIN = timedelta(milliseconds=1)


def plan_watermark(
    extracted: Mapping[str, Any],
    current: str | None,
    hold_below: datetime | None = None,
    key: str = "watermark",
) -> WatermarkPlan:
    """Decide the watermark from what the run read and the Variable's value *now* (``current``).

    It never decreases: a replayed, cleared or older run whose high-water mark is not newer than ``current``
    leaves it alone. ``hold_below``: the oldest lastModifiedDateTime this run skipped (claimed by another
    run) that is not synced yet; the watermark stays just below it so the next scan reads it again.
    """
    if extracted.get("backfill"):
        return WatermarkPlan(current, False, f"backfill run; watermark {key} left unchanged at {current}")
    now = parse_ts(current)
    candidates = [parse_ts(extracted.get("high_watermark")), parse_ts(extracted.get("watermark"))]
    best = max((c for c in candidates if c is not None), default=None)
    note = ""
    if best is not None and hold_below is not None and best >= hold_below:
        best = hold_below - HOLD_MARGIN
        note = (
            f" (held below {iso(hold_below)}: a record another run claimed is not synced yet; the next "
            "scan reads it again)"
        )
    if best is None:
        return WatermarkPlan(current, False, f"watermark {key} unchanged at {current}: nothing read")
    if now is not None and best <= now:
        if best == now:
            return WatermarkPlan(current, False, f"watermark {key} unchanged at {current}{note}")
        return WatermarkPlan(
            current,
            False,
            f"watermark {key} left at {current}: this run read up to {iso(best)}, which is older (a newer "
            f"run moved it on; a replay never moves it back){note}",
        )
    return WatermarkPlan(iso(best), True, f"watermark {key} advanced {current} -> {iso(best)}{note}")


def hold_below(held: Mapping[str, str | None], links: Mapping[str, Any]) -> datetime | None:
    """The oldest version among records skipped as claimed whose link does not show it synced, or None.

    Synced means: the record's link is linked/resolved/done (not pending, not failed) and its
    ``bc_last_modified`` is at least the version this run read. A record the owner found needs no issue has
    no link: it holds this run's watermark once, and the next run handles it itself.
    """
    oldest: datetime | None = None
    for bc_id, modified in held.items():
        ts = parse_ts(modified) or _MIN
        link = links.get(bc_id)
        synced = parse_ts(link.bc_last_modified) if link is not None else None
        if link is not None and link.state not in (PENDING, FAILED) and synced is not None and synced >= ts:
            continue
        oldest = ts if oldest is None or ts < oldest else oldest
    return oldest


def held_records(results: Any) -> dict[str, str | None]:
    """The ``held`` maps of every upsert result (the XCom of the mapped task: a list, one dict, or None)."""
    items = results if isinstance(results, list) else [results]
    out: dict[str, str | None] = {}
    for r in items:
        if isinstance(r, Mapping):
            out.update(r.get("held") or {})
    return out


# -- task entry points (the DAG files call these) ------------------------------------------------------------


def _variable_json(key: str) -> dict[str, Any]:
    import json

    from airflow.sdk import Variable

    raw = Variable.get(key, default=None)
    if not raw:
        return {}
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        from bc_jira.config import ConfigError

        raise ConfigError(
            [f"(root): {key} is not valid JSON; run the bc_jira_connect DAG to rewrite it"], source=key
        ) from None
    return value if isinstance(value, dict) else {}


def _context_run() -> RunInfo:
    from airflow.sdk import get_current_context

    return run_info(get_current_context())


SYNC_XCOM_KEY = "sync_state"


def extract_task(entity: str) -> list[str]:
    """Task: validate config (every problem at once), read BC, save batches.

    Returns the batch ids (what the upserts map over); the watermark facts go to XCom key ``sync_state``.
    """
    from airflow.sdk import Variable, get_current_context

    from bc_jira.config import load_config
    from bc_jira.hooks.business_central import BusinessCentralHook
    from bc_jira.store import StateStore

    cfg = load_config()
    field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY))  # fail here, before anything is read
    run = _context_run()
    watermark = Variable.get(watermark_key(entity), default=None)
    store = StateStore.from_airflow()
    events_scan: tuple[bool, datetime | None] = (False, None)
    if entity in EVENT_ENTITIES and not run.is_backfill:
        from bc_jira.intake import bc_kind, bc_scan_since

        events_scan = bc_scan_since(store.pending_events(bc_kind(entity), limit=5000))
    result = extract(
        entity,
        cfg=cfg,
        bc=BusinessCentralHook(),
        store=store,
        run=run,
        watermark=watermark,
        events_scan=events_scan,
    )
    state = {k: result[k] for k in ("high_watermark", "watermark", "backfill", "read", "kept")}
    get_current_context()["ti"].xcom_push(key=SYNC_XCOM_KEY, value=state)
    return list(result["batch_ids"])


def upsert_task(entity: str, batch_id: str) -> dict[str, Any]:
    """Mapped task: upsert one stored batch. Clearing it replays exactly this batch.

    When Jira asks to wait longer than ``rate_limit.max_inline_wait_seconds``, the task is rescheduled for
    that time (``bc_jira.sync.deferral``) and runs the batch again, done records being no-ops.
    """
    from bc_jira.config import load_config
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore
    from bc_jira.sync.deferral import retry_policy, waiting_out_rate_limits

    cfg = load_config()
    ids = field_ids(cfg.fields, _variable_json(FIELDS_VARIABLE_KEY))
    store = StateStore.from_airflow()
    records = store.load_batch(batch_id)
    hook = JiraCloudHook(retry=retry_policy(cfg))
    upserter = Upserter(
        cfg=cfg,
        entity=entity,
        ids=ids,
        jira=JiraOps(hook),
        store=store,
        run=_context_run(),
        users=_variable_json(USERS_VARIABLE_KEY),
    )
    log.info("%s: batch %s with %d record(s)", entity, batch_id, len(records))
    with waiting_out_rate_limits(hook, cfg=cfg, what=f"{entity} batch {batch_id}"):
        counts = upserter.upsert(records).as_dict()
    # records another run holds: advance_watermark checks that they got synced before passing them
    return {**counts, "held": dict(upserter.held)}


def finalize_task(
    entity: str,
    extracted: Mapping[str, Any] | None = None,
    extract_task_id: str = "extract",
    upsert_task_id: str = "upsert",
) -> str | None:
    """Task (after every batch succeeded): advance the watermark; backfill runs leave it alone.

    Read-compare-write under a state-store lock, comparing with the Variable's value now: two runs finishing
    at the same moment, or a replay of an older run, can never move it backwards.
    """
    from airflow.sdk import Variable, get_current_context

    from bc_jira.store import StateStore

    ti = get_current_context()["ti"]
    if extracted is None:
        extracted = ti.xcom_pull(task_ids=extract_task_id, key=SYNC_XCOM_KEY) or {}
    store = StateStore.from_airflow()
    held = {} if extracted.get("backfill") else held_records(ti.xcom_pull(task_ids=upsert_task_id))
    hold = hold_below(held, store.get_links(entity, list(held))) if held else None

    key = watermark_key(entity)
    with store.call_slot(f"watermark:{key}", 1, timeout=120):
        current = Variable.get(key, default=None)
        plan = plan_watermark(extracted, current, hold, key)
        if plan.write:
            Variable.set(key, plan.value)
    log.info("%s: %s", entity, plan.message)
    new = plan.value
    if entity in EVENT_ENTITIES and not extracted.get("backfill") and new:
        from bc_jira.intake import settle_bc_events

        run = _context_run()
        settled = settle_bc_events(
            store,
            entity,
            new,
            run={
                "dag_id": run.dag_id,
                "run_id": run.run_id,
                "task_id": run.task_id,
                "try_number": run.try_number,
            },
        )
        log.info("%s: %d staged BC notification(s) settled by this sync", entity, settled)
    try:
        store.purge_batches(datetime.now(UTC) - timedelta(days=7))
    except Exception:  # noqa: BLE001 - housekeeping must not fail a good run
        log.warning("%s: purging old batches failed", entity, exc_info=True)
    return new


# -- DAG wiring helpers ---------------------------------------------------------------------------

# Retries must wait longer than Jira's search lag so a retried batch can find what a lost answer created.
RETRY_DELAY_SECONDS = int(os.environ.get("BC_JIRA_RETRY_DELAY_SECONDS", "120"))
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "bc-jira",
    "retries": int(os.environ.get("BC_JIRA_RETRIES", "3")),
    "retry_delay": timedelta(seconds=RETRY_DELAY_SECONDS),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}
# BC sends change notifications for these; purchase orders are cron only.
EVENT_ENTITIES = frozenset({"purchase_invoices", "vendors"})


def schedule_for(entity: str, cron: str) -> Any:
    """Cron with real data intervals (backfill windows); OR'ed with the BC change-notification asset.

    The asset comes from ``bc_jira.triggers.bc_change_asset(entity)`` (inbound helper); until that exists
    the DAG runs on the cron alone.
    """
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable

    timetable = CronDataIntervalTimetable(cron, timezone="UTC")
    if entity not in EVENT_ENTITIES:
        return timetable
    try:
        from bc_jira import triggers
    except ImportError:
        return timetable
    factory = getattr(triggers, "bc_change_asset", None)
    if factory is None:
        return timetable
    return AssetOrTimeSchedule(timetable=timetable, assets=factory(entity))


def sync_dag(entity: str, *, dag_id: str, cron: str, doc_md: str | None, tags: Sequence[str]) -> Any:
    """The one shape of the three BC → Jira DAGs: extract → upsert (mapped per batch) → advance_watermark.

    The DAG files keep what differs (id, schedule, docs); the wiring lives once here.
    """
    import pendulum
    from airflow.sdk import dag, task

    @dag(
        dag_id=dag_id,
        schedule=schedule_for(entity, cron),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        default_args=DEFAULT_ARGS,
        tags=["bc-jira", "outbound", *tags],
        doc_md=doc_md,
    )
    def sync() -> None:
        @task
        def extract() -> list[str]:
            return extract_task(entity)

        @task(max_active_tis_per_dagrun=8)
        def upsert(batch_id: str) -> dict:
            return upsert_task(entity, batch_id)

        @task(trigger_rule="none_failed")
        def advance_watermark() -> str | None:
            return finalize_task(entity)

        upsert.expand(batch_id=extract()) >> advance_watermark()

    return sync()


# -- bc_jira_connect ---------------------------------------------------------------------------------------


class ConnectError(RuntimeError):
    """Everything bc_jira_connect found wrong, one line each with the fix; nothing was written."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"bc_jira_connect found {len(self.problems)} problem(s); nothing was saved:\n{lines}"
        )


@dataclass
class ConnectReport:
    cloud_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # configured field name -> customfield id
    users: dict[str, str] = field(default_factory=dict)  # email -> accountId
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


_FIELD_TYPES = {"amount": "number"}

# What a real create/edit accepts (spec createIssue): single-line text fields take the plain strings the
# connector sends, Paragraph (textarea) fields only ADF; the amount is a number. schema.custom tells them
# apart (schema.type is "string" for textfield, textarea, url and read-only fields alike).
CUSTOM_TYPE_PREFIX = "com.atlassian.jira.plugin.system.customfieldtypes:"
_FIELD_CUSTOM = {"amount": "float"}
_CUSTOM_HELP = {
    "textfield": ("a Short text (single line) field", "Free Text Searcher"),
    "float": ("a Number field", "Number Searcher"),
}
CREATEMETA_PAGE = 50  # the spec's default page size for createmeta (at most 200)


def field_setup_problems(key: str, name: str, f: Mapping[str, Any]) -> list[str]:
    """Why a discovered custom field would make creates or the record-id search fail (type, searcher)."""
    want = _FIELD_CUSTOM.get(key, "textfield")
    kind, searcher = _CUSTOM_HELP[want]
    custom = str((f.get("schema") or {}).get("custom") or "")
    out: list[str] = []
    if custom != CUSTOM_TYPE_PREFIX + want:
        why = (
            " (a Paragraph field takes only Atlassian Document Format, not the plain text sent here)"
            if custom.endswith(":textarea")
            else ""
        )
        out.append(
            f"fields.{key}: Jira field {name!r} ({f.get('id')}) is of type {custom or 'unknown'}{why}; the "
            f"connector needs {kind} ({CUSTOM_TYPE_PREFIX}{want}). A field's type cannot be changed: create "
            f"{kind} and put its name in bc_jira_config fields.{key}"
        )
    if not f.get("searchable"):
        out.append(
            f"fields.{key}: Jira field {name!r} ({f.get('id')}) has no searcher, so JQL cannot use it; in "
            f"Jira settings > Issues > Custom fields, edit {name!r} and set its search template to {searcher}"
        )
    return out


def create_screen_fields(cfg: Config, ecfg: EntityConfig, custom_ids: Mapping[str, str]) -> dict[str, str]:
    """Field id -> how to name it in a message, for every field a create of this entity may set."""
    names = cfg.fields.as_dict()
    need = {"summary": "Summary", "description": "Description"}
    need.update({fid: f"{names[key]!r} ({fid})" for key, fid in custom_ids.items()})
    if cfg.labels or ecfg.labels:
        need["labels"] = "Labels"
    if cfg.assignees:
        need["assignee"] = "Assignee"
    return need


def screen_problems(
    cfg: Config, ecfg: EntityConfig, on_screen: set[str], need: Mapping[str, str], screen: str = "create"
) -> list[str]:
    """One problem per needed field missing from the create (or edit) screen of the entity's issue type."""
    what = "every create fails" if screen == "create" else "every update of its issues fails"
    verb = "creates" if screen == "create" else "edits"
    return [
        f"entities.{ecfg.name}: {label} is not on the {screen} screen of issue type {ecfg.issue_type!r} in "
        f"project {cfg.project_key}, so {what} ('cannot be set. It is not on the appropriate screen'); add "
        f"it to the screen that {verb} {ecfg.issue_type!r} issues (Project settings > Issue types > "
        f"{ecfg.issue_type} > {screen.capitalize()} screen, or Jira settings > Issues > Screens), and make "
        f"sure the field's context includes {cfg.project_key} and {ecfg.issue_type!r}"
        for fid, label in need.items()
        if fid not in on_screen
    ]


def _createmeta_pages(client: Any, path: str, key: str) -> list[dict[str, Any]]:
    """Every item of a paged createmeta answer (startAt / maxResults / total)."""
    items: list[dict[str, Any]] = []
    while True:
        page = client.get_json(path, params={"startAt": len(items), "maxResults": CREATEMETA_PAGE})
        got = page.get(key) or []
        items.extend(got)
        if not got or len(items) >= int(page.get("total") or 0):
            return items


def edit_screen_checks(
    cfg: Config, client: Any, custom_ids: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """(problems, notes): the edit screen of each enabled issue type, through editmeta of its newest issue.

    editmeta needs an existing issue; before the first sync there is none, and the check says so in a note
    (an edit Jira refuses later is audited per record with Jira's message).
    """
    from bc_jira.http import ApiError

    problems: list[str] = []
    notes: list[str] = []
    for ecfg in (cfg.entity(e) for e in ENTITIES):
        if not ecfg.enabled:
            continue
        jql = (
            f"project = {_jql_string(cfg.project_key)} AND issuetype = {_jql_string(ecfg.issue_type)} "
            "ORDER BY created DESC"
        )
        try:
            found = client.post_json("search/jql", {"jql": jql, "maxResults": 1, "fields": ["id"]})
            issues = found.get("issues") or []
            if not issues:
                notes.append(
                    f"{ecfg.name}: edit screen not checked yet (no {ecfg.issue_type!r} issue exists)"
                )
                continue
            meta = client.get_json(f"issue/{issues[0]['id']}/editmeta")
        except ApiError as exc:
            problems.append(
                f"entities.{ecfg.name}: cannot read the edit screen of {ecfg.issue_type!r} ({exc})"
            )
            continue
        on_screen = set((meta.get("fields") or {}).keys())
        need = create_screen_fields(cfg, ecfg, custom_ids)
        problems += screen_problems(cfg, ecfg, on_screen, need, screen="edit")
    return problems, notes


def create_screen_checks(cfg: Config, client: Any, custom_ids: Mapping[str, str]) -> list[str]:
    """Through createmeta: are the fields the connector sets on each enabled issue type's create screen?"""
    from bc_jira.http import ApiError

    base = f"issue/createmeta/{cfg.project_key}/issuetypes"
    try:
        types = {(t.get("name") or "").casefold(): t for t in _createmeta_pages(client, base, "issueTypes")}
    except ApiError as exc:
        return [
            f"project_key: cannot read the create metadata of {cfg.project_key} ({exc}); the connection's "
            "user needs the Create issues permission in that project"
        ]
    out: list[str] = []
    for ecfg in (cfg.entity(e) for e in ENTITIES):
        if not ecfg.enabled:
            continue
        t = types.get(ecfg.issue_type.casefold())
        if t is None:
            continue  # not an issue type of the project: reported with the project checks
        try:
            fields = _createmeta_pages(client, f"{base}/{t['id']}", "fields")
        except ApiError as exc:
            out.append(f"entities.{ecfg.name}: cannot read the create screen of {ecfg.issue_type!r} ({exc})")
            continue
        on_screen = {str(f.get("fieldId") or f.get("key")) for f in fields}
        out += screen_problems(cfg, ecfg, on_screen, create_screen_fields(cfg, ecfg, custom_ids))
    return out


def connect_checks(cfg: Config, client: Any, cloud_id: str | None = None) -> ConnectReport:
    """Discover field ids, resolve users, check project / issue types / statuses; collect every problem.

    ``client`` is the Jira ApiClient (paths relative to ``/rest/api/3``).
    """
    from bc_jira.http import ApiError, NotFoundError

    rep = ConnectReport(cloud_id=cloud_id)
    add = rep.problems.append
    # custom fields by name
    try:
        all_fields = client.get_json("field")
    except ApiError as exc:
        add(f"cannot list Jira fields ({exc}); check the jira_default connection and scopes")
        all_fields = []
    by_name: dict[str, list[dict[str, Any]]] = {}
    custom_ids: dict[str, str] = {}  # config key -> the one custom field of that name
    for f in all_fields:
        if f.get("custom"):
            by_name.setdefault((f.get("name") or "").casefold(), []).append(f)
    for key, name in cfg.fields.as_dict().items():
        matches = by_name.get(name.casefold(), [])
        if not matches:
            add(
                f"fields.{key}: no Jira custom field named {name!r}; create it (type "
                f"{_FIELD_TYPES.get(key, 'text')}, with a searcher) or change the name in "
                "bc_jira_config"
            )
        elif len(matches) > 1:
            ids = ", ".join(m["id"] for m in matches)
            add(
                f"fields.{key}: {len(matches)} custom fields are named {name!r} ({ids}); "
                "rename all but one in Jira"
            )
        else:
            f = matches[0]
            custom_ids[key] = f["id"]
            setup = field_setup_problems(key, name, f)
            rep.problems.extend(setup)
            if not setup:
                rep.fields[name] = f["id"]

    # project and issue types
    project = None
    try:
        project = client.get_json(f"project/{cfg.project_key}")
    except NotFoundError:
        add(
            f"project_key: Jira project {cfg.project_key!r} not found or not visible to the "
            "connection's user; fix project_key or grant Browse projects"
        )
    except ApiError as exc:
        add(f"project_key: cannot read project {cfg.project_key!r} ({exc})")
    enabled = [cfg.entity(e) for e in ENTITIES if cfg.entity(e).enabled]
    if project is not None:
        types = {(t.get("name") or "").casefold() for t in project.get("issueTypes") or []}
        available = ", ".join(sorted(t.get("name") for t in project.get("issueTypes") or []))
        for ecfg in enabled:
            if ecfg.issue_type.casefold() not in types:
                add(
                    f"entities.{ecfg.name}.issue_type: {ecfg.issue_type!r} is not an issue type "
                    f"of project {cfg.project_key}; available: {available}"
                )
        try:
            statuses = client.get_json(f"project/{cfg.project_key}/statuses")
        except ApiError as exc:
            add(f"project_key: cannot read the workflow statuses of {cfg.project_key} ({exc})")
            statuses = []
        per_type = {(s.get("name") or "").casefold(): s.get("statuses") or [] for s in statuses}
        for ecfg in enabled:
            sts = per_type.get(ecfg.issue_type.casefold())
            if sts is None:
                continue
            names = {(s.get("name") or "").casefold() for s in sts}
            done = [s["name"] for s in sts if ((s.get("statusCategory") or {}).get("key")) == "done"]
            if ecfg.done_action != "none" and not done:
                add(
                    f"entities.{ecfg.name}: the workflow of {ecfg.issue_type!r} has no status in "
                    f"the Done category, so done_action {ecfg.done_action!r} can never fire; add "
                    "one or set done_action to none"
                )
            elif done:
                rep.notes.append(f"{ecfg.name}: done statuses {', '.join(done)}")
            dup_to = cfg.duplicate_transition
            if dup_to and dup_to.casefold() not in names:
                add(
                    f"duplicate_transition: no status {dup_to!r} in the workflow of {ecfg.issue_type!r}; use "
                    f"one of {', '.join(sorted(s['name'] for s in sts))} or null"
                )
            if ecfg.resolved_transition and ecfg.resolved_transition.casefold() not in names:
                add(
                    f"entities.{ecfg.name}.resolved_transition: no status "
                    f"{ecfg.resolved_transition!r} in the workflow of {ecfg.issue_type!r}; use one "
                    f"of {', '.join(sorted(s['name'] for s in sts))} or null"
                )
        rep.problems.extend(create_screen_checks(cfg, client, custom_ids))
        edit_problems, edit_notes = edit_screen_checks(cfg, client, custom_ids)
        rep.problems.extend(edit_problems)
        rep.notes.extend(edit_notes)

    # issue linking: a second issue found for one record is linked to the kept one as a Duplicate
    try:
        types = (client.get_json("issueLinkType") or {}).get("issueLinkTypes") or []
        name = duplicate_link_type(types)
        if name is None:
            add(
                "issue linking: Jira has no link type named 'Duplicate' (nor one whose outward description "
                "is 'duplicates'); add it in Jira settings > Issues > Issue linking, so duplicate issues of "
                "one record can be linked to the record's issue"
            )
        else:
            rep.notes.append(f"duplicates are linked with the {name!r} issue link type")
    except NotFoundError:
        add(
            "issue linking is disabled in Jira (GET issueLinkType answered 404); turn it on in Jira "
            "settings > Issues > Issue linking, so duplicate issues of one record can be linked to the "
            "record's issue"
        )
    except ApiError as exc:
        add(f"issue linking: cannot list the issue link types ({exc})")

    # users
    for i, rule in enumerate(cfg.assignees):
        path = f"assignees[{i}]"
        try:
            if rule.account_id:
                found = client.get_json("user/bulk", params={"accountId": rule.account_id})
                if not (found.get("values") or []):
                    add(f"{path}.account_id: no active Jira user {rule.account_id!r}")
                continue
            email = rule.email or ""
            users = client.get_json("user/search", params={"query": email})
            exact = [u for u in users if (u.get("emailAddress") or "").casefold() == email.casefold()]
            pick = exact if exact else (users if len(users) == 1 else [])
            if len(pick) == 1:
                rep.users[email.casefold()] = pick[0]["accountId"]
            elif not users:
                add(
                    f"{path}.email: no Jira user found for {email!r}; check the address or use "
                    "account_id (Jira user profile URL ends with it)"
                )
            else:
                add(
                    f"{path}.email: {len(users)} Jira users match {email!r} and none shows that "
                    "email (hidden by privacy settings); use account_id instead"
                )
        except ApiError as exc:
            add(f"{path}: user lookup failed ({exc}); the connection needs Browse users and groups")
    return rep


def connect_task() -> dict[str, Any]:
    """Task of bc_jira_connect: validate everything, then write bc_jira_jira_fields / bc_jira_jira_users."""
    import json

    from airflow.sdk import Variable

    from bc_jira.config import ConfigError, load_config
    from bc_jira.hooks.jira import JiraCloudHook

    problems: list[str] = []
    try:
        cfg = load_config()
    except ConfigError as exc:
        raise ConnectError([f"bc_jira_config: {p}" for p in exc.problems]) from None
    hook = JiraCloudHook()
    cloud_id = None
    try:
        cloud_id = _resolve_cloud_id(hook)
    except Exception as exc:  # noqa: BLE001 - reported with the rest
        problems.append(f"jira_default: cannot resolve the Jira cloudId ({exc}); check site_url and consent")
        raise ConnectError(problems) from None
    rep = connect_checks(cfg, hook.client, cloud_id)
    problems += rep.problems
    if problems:
        raise ConnectError(problems)
    Variable.set(FIELDS_VARIABLE_KEY, json.dumps(rep.fields, sort_keys=True))
    Variable.set(USERS_VARIABLE_KEY, json.dumps(rep.users, sort_keys=True))
    for note in rep.notes:
        log.info("%s", note)
    log.info(
        "connected: cloudId %s, %d field id(s), %d user(s) resolved",
        cloud_id,
        len(rep.fields),
        len(rep.users),
    )
    return {"cloud_id": cloud_id, "fields": rep.fields, "users": len(rep.users)}


def _resolve_cloud_id(hook: Any) -> str | None:
    """oauth2: the cloudId via accessible-resources; basic auth talks to the site URL and has none."""
    if hook.settings.auth == "basic":
        return None
    return hook.cloud_id

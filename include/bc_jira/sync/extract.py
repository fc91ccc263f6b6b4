"""Read changed BC records into stored batches (what the upserts map over)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, Protocol

from bc_jira.entities import ATTACHMENT_SETS, DIMENSION_FIELDS, DIMENSION_SET_LINES, navigation_expands, spec
from bc_jira.hooks.odata import expand_clause
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import _MIN, RunInfo, SyncError, iso, parse_ts

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from bc_jira.config import Config, EntityConfig
    from bc_jira.sync.plan import LinkView

log = logging.getLogger(__name__)

LINK_LOOKUP_CHUNK = 1000
BC_PAGE_SIZE = 1000
MAX_BATCHES = 200  # batch ids are ~40 bytes: the extract's XCom stays under 10 KB
# A batch grows past batch_size only to keep the map within its limit; beyond this an upsert's records and
# its per-batch Jira work stop being a task's worth, so the extract fails with a clear error instead.
MAX_BATCH_RECORDS = 5000


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
    first = parse_ts(earliest)
    if first is not None and first < since:
        since = first
    return Window(since, None, False)


class BcRecords(Protocol):
    """What the extract needs of the BC hook (``BusinessCentralHook.iter_modified``)."""

    def iter_modified(
        self,
        entity: str,
        since: datetime | None,
        until: datetime | None = None,
        *,
        extra_filter: str | None = None,
        page_size: int | None = None,
        expand: str | None = None,
    ) -> Iterable[dict[str, Any]]: ...


class BatchStore(Protocol):
    """The state-store calls of the extract (``bc_jira.store.StateStore``)."""

    def batch_ids(self, entity: str, run_key: str) -> list[str]: ...
    def load_batch(self, batch_id: str) -> list[dict[str, Any]]: ...
    def get_links(self, entity: str, bc_ids: Iterable[str]) -> Mapping[str, LinkView]: ...
    def save_batches(
        self, entity: str, run_key: str, records: Iterable[dict[str, Any]], batch_size: int
    ) -> list[str]: ...


def lines_expand(entity: str) -> str | None:
    """The ``$expand`` that reads a document's lines (the table's fields, their dimensions) with its header:
    one request per page of documents instead of one per document."""
    s = spec(entity)
    if not s.lines:
        return None
    return expand_clause(s.lines, s.line_fields, {DIMENSION_SET_LINES: DIMENSION_FIELDS})


def _modified(rec: Mapping[str, Any]) -> datetime | None:
    return parse_ts(rec.get("lastModifiedDateTime"))


def _newest(current: datetime | None, ts: datetime | None) -> datetime | None:
    return ts if ts is not None and (current is None or ts > current) else current


def _result(watermark: str | None, run: RunInfo, **kw: Any) -> dict[str, Any]:
    high = kw.pop("high", None)
    return {
        "batch_ids": [],
        "watermark": watermark,
        "read": 0,
        "kept": 0,
        "backfill": run.is_backfill,
        **kw,
        "high_watermark": iso(high) if high else None,
    }


def _replay(
    entity: str, store: BatchStore, run: RunInfo, existing: list[str], watermark: str | None
) -> dict[str, Any]:
    """This run already extracted: the same batches again (clearing the task replays them)."""
    high: datetime | None = None
    count = 0
    for bid in existing:
        for rec in store.load_batch(bid):
            count += 1
            high = _newest(high, _modified(rec))
    log.info("%s: run %s already extracted %d batch(es); replaying them", entity, run.run_id, len(existing))
    return _result(watermark, run, batch_ids=list(existing), high=high, kept=count, read=count)


@dataclass
class _Reading:
    """What a BC scan kept so far: the newest version of each record the sync needs.

    Kept records wait in a temporary file (``spill``); memory holds only (lastModifiedDateTime, offset,
    length) per record. Held as objects, a 100,000-record first sync peaked at 676 MB, as JSON text still
    above the 300 MB target; a task's memory must not grow with the backlog."""

    ecfg: EntityConfig
    store: BatchStore
    kept: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    # closed by extract() once the batches are written; deleted by the OS when closed or at exit
    spill: IO[bytes] = field(default_factory=lambda: tempfile.TemporaryFile(prefix="bc_extract_"))  # noqa: SIM115
    buffer: dict[str, dict[str, Any]] = field(default_factory=dict)
    high: datetime | None = None
    read: int = 0

    def add(self, raw: Mapping[str, Any]) -> None:
        self.read += 1
        ts = _modified(raw)
        self.high = _newest(self.high, ts)
        rec = {k: v for k, v in raw.items() if not k.startswith("@odata")}
        buffered, held = self.buffer.get(rec["id"]), self.kept.get(rec["id"])
        prev = _modified(buffered) if buffered is not None else parse_ts(held[0]) if held else None
        if (buffered is not None or held is not None) and (prev or _MIN) > (ts or _MIN):
            return  # de-duplicate by id (the overlap re-reads records): keep the newest version
        self.buffer[rec["id"]] = rec
        if len(self.buffer) >= LINK_LOOKUP_CHUNK:
            self.flush()

    def flush(self) -> None:
        """Keep what needs a human step or already has an issue (one link read per chunk)."""
        if not self.buffer:
            return
        linked = self.store.get_links(self.ecfg.name, list(self.buffer))
        for bc_id, rec in self.buffer.items():
            link = linked.get(bc_id)
            if self.ecfg.selection.matches(rec) or (link is not None and link.state != LinkState.FAILED):
                self.kept[bc_id] = (str(rec.get("lastModifiedDateTime") or ""), *self._write(rec))
            else:
                self.kept.pop(bc_id, None)
        self.buffer.clear()

    def _write(self, rec: Mapping[str, Any]) -> tuple[int, int]:
        data = json.dumps(rec).encode()
        offset = self.spill.seek(0, os.SEEK_END)
        self.spill.write(data)
        return offset, len(data)

    def take(self, bc_id: str) -> dict[str, Any]:
        """A kept record back from the spill file."""
        _, offset, length = self.kept.pop(bc_id)
        self.spill.seek(offset)
        return json.loads(self.spill.read(length))


def record_expand(cfg: Config, entity: str) -> str | None:
    """What the list request expands for ``entity``, in one ``$expand``: its lines (with their dimensions),
    and its registered navigations, the attachments only when the ``attachments`` section is on, under the
    entity set it names."""
    att = cfg.attachments
    skip = () if att.enabled else ATTACHMENT_SETS
    navs = navigation_expands(entity, rename={"documentAttachments": att.source}, skip=skip)
    return ",".join(part for part in (lines_expand(entity), navs) if part) or None


def map_limit() -> int:
    """How many mapped upserts a run may have: MAX_BATCHES, or Airflow's ``[core] max_map_length`` if lower
    (default 1024; a longer list fails the extract with "pushed value is too large to map")."""
    from airflow.configuration import conf

    return max(1, min(MAX_BATCHES, conf.getint("core", "max_map_length", fallback=1024)))


def batch_size(cfg: Config, count: int, limit: int = MAX_BATCHES) -> int:
    """The configured size, or larger so the run has at most ``limit`` batches (small XCom, map length).

    ``SyncError`` when even MAX_BATCH_RECORDS per batch would need more than ``limit`` batches."""
    size = max(cfg.batch_size, -(-count // limit))
    if size > MAX_BATCH_RECORDS:
        raise SyncError(
            f"{count} records to sync would need more than {limit} mapped upserts of at most "
            f"{MAX_BATCH_RECORDS} records (the limit is the lower of {MAX_BATCHES} and Airflow's "
            "[core] max_map_length): raise [core] max_map_length, or sync the backlog in smaller windows "
            "(a backfill over data intervals); nothing was stored"
        )
    return size


def extract(
    entity: str,
    *,
    cfg: Config,
    bc: BcRecords,
    store: BatchStore,
    run: RunInfo,
    watermark: str | None,
    events_scan: tuple[bool, datetime | None] = (False, None),
    max_batches: int | None = None,
) -> dict[str, Any]:
    """Read changed records into the state store as batches; return only batch ids and the high-water mark.

    Kept: records the selection says need a human step, plus records that already have an issue (so one that
    stopped needing a human step gets its comment/transition). Clearing this task replays the same batches.
    """
    ecfg = cfg.entity(entity)
    if not ecfg.enabled:
        log.info("%s: disabled in bc_jira_config (entities.%s.enabled); nothing to do", entity, entity)
        return _result(watermark, run)
    existing = store.batch_ids(entity, run.run_id)
    if existing:
        return _replay(entity, store, run, existing, watermark)

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
    reading = _Reading(ecfg, store)
    for rec in bc.iter_modified(
        ecfg.entity_set,
        window.since,
        window.until,
        extra_filter=extra,
        page_size=BC_PAGE_SIZE,
        expand=record_expand(cfg, entity),
    ):
        reading.add(rec)
    reading.flush()

    kept = reading.kept
    order = sorted(kept, key=lambda b: (kept[b][0], b))
    limit = map_limit() if max_batches is None else max_batches
    size = batch_size(cfg, len(order), limit)
    if size != cfg.batch_size:
        log.info(
            "%s: %d records: batches of %d instead of %d (at most %d mapped tasks)",
            entity,
            len(order),
            size,
            cfg.batch_size,
            limit,
        )
    # handed over one at a time and let go of: the batches' JSON replaces the records, never doubles them
    records = (reading.take(b) for b in order)
    try:
        batch_ids = store.save_batches(entity, run.run_id, records, size) if order else []
    finally:
        reading.spill.close()
    log.info(
        "%s: read %d, %d need sync, %d batch(es) of up to %d",
        entity,
        reading.read,
        len(order),
        len(batch_ids),
        size,
    )
    return _result(
        watermark, run, batch_ids=list(batch_ids), high=reading.high, read=reading.read, kept=len(order)
    )

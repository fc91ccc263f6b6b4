"""Read changed BC records into stored batches (what the upserts map over)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bc_jira.config import Config
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import _MIN, RunInfo, SyncError, iso, parse_ts

log = logging.getLogger(__name__)

LINK_LOOKUP_CHUNK = 1000
BC_PAGE_SIZE = 1000
MAX_BATCHES = 200  # batch ids are ~40 bytes: the extract's XCom stays under 10 KB


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
            if ecfg.selection.matches(rec) or (link is not None and link.state != LinkState.FAILED):
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

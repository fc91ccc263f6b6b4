"""The watermark after a run: never backwards, held below records another run still owns."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bc_jira.entities import spec
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import _MIN, iso, parse_ts

log = logging.getLogger(__name__)


def watermark_key(entity: str) -> str:
    return spec(entity).watermark_key


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
        if (
            link is not None
            and link.state not in (LinkState.PENDING, LinkState.FAILED)
            and synced is not None
            and synced >= ts
        ):
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

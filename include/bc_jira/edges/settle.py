"""Settling staged BC change events once a sync covered them (called by the outbound DAGs and the backstop).

An event goes only after its effect is done: for a BC notification the effect is "the record was synced",
which holds once a sync advanced the watermark to or past the notification's change time.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from bc_jira import timeutil
from bc_jira.edges.intake import bc_kind

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.edges.protocols import EventStore, StagedEvent


def bc_scan_since(events: Sequence[StagedEvent]) -> tuple[bool, datetime | None]:
    """For staged BC events of one entity: ``(full_scan, earliest_since)``.

    A ``collection`` item means BC merged more than 1,000 changes: the consumer must read the window from
    its ``since`` (earlier than its watermark, if so) or, without a filter, everything.
    """
    full, earliest = False, None
    for ev in events:
        scan = (ev.payload or {}).get("scan")
        if not scan:
            continue
        since = timeutil.try_parse_ts(scan.get("since"))
        if since is None:
            full = True
        elif earliest is None or since < earliest:
            earliest = since
    return full, earliest


def settle_bc_events(
    store: EventStore,
    entity: str,
    watermark: str | datetime | None,
    *,
    run: Mapping[str, Any] | None = None,
    named_only: bool = False,
) -> int:
    """Delete staged BC events of ``entity`` whose change is covered by ``watermark``; audited. Returns count.

    An event goes only after its effect is done (README, "Replay and backfill"). For a BC notification the
    effect is "the record was synced", which holds once a sync advanced the watermark to or past the
    notification's change time. With companies, ``store`` is one company's view (its events only) and
    ``watermark`` that company's: another company's watermark says nothing about its events.
    ``named_only``: leave events that name no company (staged before companies: the default company's).
    """
    from bc_jira.store import AuditRow

    mark = watermark if isinstance(watermark, datetime) else timeutil.try_parse_ts(watermark)
    if mark is None:
        return 0
    rows: list[AuditRow] = []
    done: list[int] = []
    for ev in store.pending_events(bc_kind(entity), limit=5000):
        if named_only and not (ev.payload or {}).get("company_id"):
            continue  # staged before companies: the default company's, settled by its watermark
        if (ev.payload or {}).get("changeType") == "deleted":
            continue  # its effect is the deletion comment: bc_jira.sync.deletions deletes it when done
        changed = timeutil.try_parse_ts((ev.payload or {}).get("lastModifiedDateTime"))
        if changed is None or changed > mark:
            continue
        done.append(ev.id)
        rows.append(
            AuditRow(
                entity=entity,
                bc_id=str((ev.payload or {}).get("record_id") or "*"),
                action="event_settled",
                reason=f"{ev.payload.get('changeType')} at "
                f"{ev.payload.get('lastModifiedDateTime')} covered by watermark "
                f"{mark.isoformat()}",
                read={"event_id": ev.id, "dedupe_key": ev.dedupe_key},
                **{
                    k: v
                    for k, v in (run or {}).items()
                    if k in ("dag_id", "run_id", "task_id", "map_index", "try_number")
                },
            )
        )
    if rows:
        store.audit(rows)
        for event_id in done:
            store.delete_event(event_id)
    return len(done)

"""What the write-back decided about one issue, and how that reads in the issue's outcome comment.

Values only (no I/O): :class:`Result` (what happened, reported and audited), :class:`Decision` (what
``WriteBack._finish`` records), the replay rule and the comment texts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira.entities import WRITEBACK_ENTITIES, noun
from bc_jira.store.schema import LinkState

if TYPE_CHECKING:
    from datetime import datetime

    from bc_jira.config import Config
    from bc_jira.store import AuditRow, Link


def replay_verdict(done_at: datetime | None, record_modified: datetime | None) -> str | None:
    """None when the done decision may act on the record; otherwise why not (rule 3 of the replay rule in
    ``bc_jira.sync.writeback``)."""
    if done_at is None or record_modified is None:
        return None
    if record_modified > done_at:
        return (
            f"the issue reached its done status at {done_at.isoformat()}, before the record last changed in "
            f"BC at {record_modified.isoformat()}: that decision was about an older state"
        )
    return None


@dataclass
class Result:
    """One issue's outcome (audit action, what happened, and whether the staged event may go)."""

    issue: str
    action: str  # posted | unblocked | noop | rejected | ignored | error
    entity: str | None = None
    bc_id: str | None = None
    document_number: str | None = None
    new_number: str | None = None
    detail: str = ""
    done: bool = True  # False -> keep the event staged (failed) for replay
    transient: bool = False
    done_at: str | None = None  # the issue's statuscategorychangedate: which done decision this is about
    alarm: bool = False  # a person must look (the issue names another record): the task fails
    status: str | None = None  # the Jira status the decision is about (rejected: which "no")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Decision:
    """What to do with one issue's outcome (see :meth:`WriteBack._finish`)."""

    action: str
    detail: str
    comment: bool
    done: bool = True  # False -> keep the event staged
    error: bool = False  # the detail is audited as the error
    mark_done: bool = False  # the link becomes written_back: the outbound adds no comment of its own
    read: Any = None
    sent: Any = None
    response: Any = None
    new_number: str | None = None
    draft_number: str | None = None


def deleted_decision(category: str, status_name: str, bc_id: str, *, own_move: bool = False) -> Decision:
    """The issue of a record deleted in BC moved: nothing is sent to BC; a done status is an audited no-op
    with one comment per done episode (``writeback_deleted_noop``). The move to ``deleted_transition``
    (``own_move``: the connector's own) is audited without a comment: the deletion comment said it all."""
    if category != "done" or own_move:
        return Decision(
            "noop", f"the BC record {bc_id} was deleted; issue is in {status_name!r}", comment=False
        )
    return Decision(
        "deleted_noop",
        f"the BC record {bc_id} was deleted in Business Central; moving the issue to {status_name!r} "
        "changes nothing in BC",
        comment=True,
    )


def comment_text(res: Result, draft_number: str | None) -> str:
    doc = res.document_number or res.bc_id
    if res.action == "deleted_noop":
        return f"{noun(res.entity)} {doc} was deleted in Business Central; nothing was changed in BC."
    if res.action == "posted":
        return (
            f"purchase invoice {draft_number or doc} was posted; the posted invoice number is "
            f"{res.new_number}."
        )
    if res.action == "unblocked":
        return f"vendor {doc} was unblocked."
    if res.action == "rejected":
        return (
            f"{noun(res.entity)} {doc} was left untouched: this issue was moved to "
            f"{res.status or 'a reject status'!r}, which means no (reject_statuses), so nothing was "
            "posted or changed in Business Central."
        )
    if res.action == "stale":
        return (
            f"{noun(res.entity)} {doc} changed in Business Central after this issue was moved to done, so "
            "it was left as it is. To apply the decision to the current record, move the issue out of done "
            "and back."
        )
    if res.action == "noop" and res.entity == "purchase_invoices":
        return f"purchase invoice {res.new_number or doc} was already posted; nothing to do."
    if res.action == "noop":
        return f"vendor {doc} is not blocked; nothing to do."
    return f"{noun(res.entity)} {doc} could not be updated: {res.detail}"


def acted_on(link: Link | None) -> bool:
    """The write-back already acted on this record (a replay or second delivery needs no new comment)."""
    return link is not None and link.state == LinkState.WRITTEN_BACK


def slim(record: Any) -> Any:
    if not isinstance(record, Mapping):
        return record
    keep = (
        "id",
        "number",
        "status",
        "blocked",
        "displayName",
        "vendorNumber",
        "totalAmountIncludingTax",
        "currencyCode",
        "lastModifiedDateTime",
        "@odata.etag",
    )
    return {k: record.get(k) for k in keep if k in record}


def record_mismatch(link: Link | None, record_id_field: str | None, fields: Mapping[str, Any]) -> str | None:
    """Why the issue may not act on the link's record (its BC Record Id names another one), or None.

    Before any BC write the issue's *BC Record Id* field must equal the link's record id. A link can only
    point at the wrong record through a bug or a hand-edited field (e.g. a bulk-create answer paired by
    position); on a mismatch nothing is written to BC, the issue gets a comment, the audit says
    ``writeback_mismatch``, the event stays staged and the task fails loudly.
    """
    if link is None:
        return None  # the record id was taken from the issue's own field
    if not record_id_field:
        return (
            f"cannot confirm that the issue names BC record {link.bc_id}: the 'BC Record Id' field id is "
            "unknown; run bc_jira_connect"
        )
    carried = str(fields.get(record_id_field) or "").strip()
    if carried != link.bc_id:
        return (
            f"the issue's BC Record Id is {carried or '(empty)'!r} but it is linked to BC record "
            f"{link.bc_id!r}; nothing was written to BC. Check which record this issue is about, fix the "
            "field or the link, then move the issue again"
        )
    return None


def entity_of(cfg: Config, fields: Mapping[str, Any]) -> str | None:
    """The write-back entity whose issue type the issue has (no link: the issue type tells)."""
    type_name = str((fields.get("issuetype") or {}).get("name") or "").casefold()
    for entity in WRITEBACK_ENTITIES:
        if cfg.entity(entity).issue_type.casefold() == type_name:
            return entity
    return None


def carried_record_id(record_id_field: str | None, fields: Mapping[str, Any]) -> str | None:
    """The BC record id the issue carries in its 'BC Record Id' field (None: no field id, or empty)."""
    if not record_id_field:
        return None
    return str(fields.get(record_id_field) or "").strip() or None


def audit_row(
    res: Result,
    run: Mapping[str, Any],
    *,
    read: Any = None,
    sent: Any = None,
    response: Any = None,
    error: str | None = None,
) -> AuditRow:
    """The ``writeback_<action>`` audit row of one outcome, with the run that made it."""
    from bc_jira.store import AuditRow

    ids = {k: v for k, v in run.items() if k in ("dag_id", "run_id", "task_id", "map_index", "try_number")}
    return AuditRow(
        entity=res.entity or "jira",
        bc_id=res.bc_id or res.issue,
        action=f"writeback_{res.action}",
        document_number=res.document_number,
        issue_key=res.issue,
        reason=res.detail,
        read=read,
        sent=sent,
        response=response,
        error=error,
        **ids,
    )

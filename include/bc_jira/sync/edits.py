"""People's edits are kept: which of summary and description an update may rewrite. Pure, no I/O.

The connector owns its custom fields (record id, document number, vendor, amount, currency, status), its
labels and the rule-based assignee; those it always sets. Summary and description are the people's too: the
connector rewrites them only while they still read what it last wrote there. So each link keeps a hash of
the summary and of the description the connector last wrote (``bc_jira_links.summary_hash`` /
``description_hash``); before an edit the issue is read (one ``POST /issue/bulkfetch`` per 100 issues to
edit: it reads the issues themselves, so a person's edit of a second ago is seen, where the JQL search would
lag) and each text is compared with that hash:

* it reads what the connector would write now: nothing to decide, the new hash is recorded;
* it reads what the connector last wrote: a person did not touch it, it is rewritten;
* it reads something else: a person changed it. It is left out of the edit (only the owned fields are
  sent) and the issue gets one short comment saying what changed in BC (audited ``kept_edit``). The recorded
  hash stays what the connector last wrote, so later BC changes keep the person's text too, until the person
  puts back the connector's own text;
* no hash is recorded (a link written before this version): whether a person edited the text cannot be
  told. Text that is there is kept as it is and its hash recorded as the baseline (``adopted``), without a
  comment (an empty field has nothing to lose and is written):
  a person's edit is never overwritten, at the cost of a summary that shows the old values until BC changes
  the record again (then the baseline matches and the text is rewritten).

Hashes are taken of a canonical form (``bc_jira.adf.canonical``): Jira may hand a description back with
attributes it added (a table's ``localId``, a cell's empty ``attrs``), which must not read as a person's edit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bc_jira import adf
from bc_jira.mapping import edit_payload

if TYPE_CHECKING:
    from collections.abc import Mapping

    from bc_jira.mapping import FieldIds, IssueDraft

TEXTS = ("summary", "description")
# The owned fields a "changed in Business Central" comment names, in this order (FieldIds attributes).
_NAMED = ("document_number", "vendor", "amount", "currency", "status")


def text_hash(value: Any) -> str | None:
    """Hash of a summary (string) or description (ADF) as a reader sees it; None for no value."""
    if value is None:
        return None
    raw = json.dumps(adf.canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def written_hashes(draft: IssueDraft) -> tuple[str | None, str | None]:
    """(summary hash, description hash) of what a create or full edit of ``draft`` writes."""
    return text_hash(draft.fields.get("summary")), text_hash(draft.fields.get("description"))


@dataclass(frozen=True)
class EditPlan:
    """What an update sends, and what it records as written."""

    body: dict[str, Any]  # the PUT /issue body
    written: tuple[str | None, str | None]  # the summary/description hashes to record after the edit
    kept: tuple[str, ...] = ()  # texts a person changed: left out of the edit, commented
    adopted: tuple[str, ...] = ()  # texts with no recorded hash: left as they are, their hash recorded


def plan_edit(
    draft: IssueDraft, recorded: tuple[str | None, str | None], current: Mapping[str, Any] | None
) -> EditPlan:
    """The edit of one issue given the hashes recorded for it and its current fields (None: not read, so
    the whole draft is sent, as for an issue whose texts the connector wrote)."""
    body = edit_payload(draft)
    mine = written_hashes(draft)
    if current is None:
        return EditPlan(body, mine)
    written = list(mine)
    kept: list[str] = []
    adopted: list[str] = []
    for i, name in enumerate(TEXTS):
        now = text_hash(current.get(name))
        if now == mine[i] or now == recorded[i] or (now is None and recorded[i] is None):
            continue  # already what we write, still what we wrote, or nothing there to lose: written
        if recorded[i] is None:
            adopted.append(name)
            written[i] = now
        else:
            kept.append(name)
            written[i] = recorded[i]
    if kept or adopted:
        body = {**body, "fields": {k: v for k, v in body["fields"].items() if k not in (*kept, *adopted)}}
    return EditPlan(body, (written[0], written[1]), tuple(kept), tuple(adopted))


def _shown(value: Any, is_amount: bool) -> str:
    if value is None or value == "":
        return "(empty)"
    if is_amount and isinstance(value, int | float):
        return f"{value:,.2f}"
    return str(value)


def bc_changes(
    draft: IssueDraft, current: Mapping[str, Any], ids: FieldIds, names: Mapping[str, str]
) -> list[str]:
    """ "BC Amount 100.00 → 150.00" for each owned field whose value on the issue differs from the draft."""
    out = []
    for key in _NAMED:
        fid = getattr(ids, key)
        old, new = current.get(fid), draft.fields.get(fid)
        if key == "amount" and isinstance(old, int | float) and isinstance(new, int | float):
            if round(float(old), 2) == round(float(new), 2):
                continue
        elif (old or None) == (new or None):
            continue
        is_amount = key == "amount"
        out.append(f"{names.get(key, key)} {_shown(old, is_amount)} → {_shown(new, is_amount)}")
    return out


def kept_comment(draft: IssueDraft, plan: EditPlan, changes: list[str]) -> dict[str, Any]:
    """The short comment on an issue whose summary or description a person changed (ADF)."""
    what = "; ".join(changes) if changes else "details shown in the summary or description"
    texts = " and ".join(plan.kept)
    verb = "was" if len(plan.kept) == 1 else "were"
    lines = [
        adf.paragraph(adf.text("Changed in Business Central: ", strong=True), f"{what}."),
        adf.paragraph(
            f"The {texts} {verb} edited in Jira, so the connector left {'it' if verb == 'was' else 'them'} "
            "as written and updated only its BC fields."
        ),
    ]
    if "summary" in plan.kept:
        lines.append(
            adf.paragraph(
                "The connector's summary would read: ", adf.text(draft.fields["summary"], code=True)
            )
        )
    lines[-1]["content"].append({"type": "text", "text": " (bc-jira)"})
    return adf.doc(*lines)

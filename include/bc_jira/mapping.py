"""BC record -> Jira issue fields. Pure functions, no I/O.

The content hash covers exactly the fields this connector owns (summary, the six mapped custom
fields, our labels, the rule-based assignee, the description with its lines table, the due date and the
rule-based priority). An issue is edited only when that
hash changes, and an edit only sends those fields, so whatever a person changed elsewhere on the
issue is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from bc_jira import adf
from bc_jira.config import Config, ConfigError, EntityConfig, FieldNames, decode_enum
from bc_jira.entities import spec
from bc_jira.mapping_lines import lines_blocks, schedule_fields
from bc_jira.timeutil import now

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import date

# Bump when the mapping changes in a way that should re-edit every issue once.
MAPPING_VERSION = 2  # 2: the lines table, duedate, priority

TEXT_MAX = 255
SUMMARY_MAX = 254


@dataclass(frozen=True)
class FieldIds:
    """Discovered ``customfield_NNNNN`` ids of the six mapped fields."""

    record_id: str
    document_number: str
    vendor: str
    amount: str
    currency: str
    status: str
    company: str | None = None  # the company field (only with ``companies``)

    def as_dict(self) -> dict[str, str]:
        return {
            k: getattr(self, k)
            for k in ("record_id", "document_number", "vendor", "amount", "currency", "status")
        }


def field_ids(
    names: FieldNames, discovered: Mapping[str, str] | None, *, with_company: bool = False
) -> FieldIds:
    """Look the configured field names up in the ``bc_jira_jira_fields`` map; one error for all misses.
    ``with_company``: the company field too (``companies`` is configured)."""
    discovered = discovered or {}
    problems = []
    ids = {}
    wanted = names.wanted(with_company=with_company)
    for key, name in wanted.items():
        fid = discovered.get(name)
        if not fid:
            problems.append(
                f"fields.{key}: Jira custom field {name!r} has no discovered id; "
                "create the field in Jira (or fix the name) and run the bc_jira_connect DAG"
            )
        else:
            ids[key] = fid
    if problems:
        raise ConfigError(problems, source="bc_jira_jira_fields")
    return FieldIds(**ids)


@dataclass(frozen=True)
class IssueDraft:
    """What we want the issue of one BC record to look like."""

    entity: str
    bc_id: str
    document_number: str
    fields: dict[str, Any]  # owned fields, Jira ids as keys (labels excluded)
    labels: tuple[str, ...]
    content_hash: str
    needs_human: bool
    last_modified: str | None


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _trim(value: Any, limit: int = TEXT_MAX) -> str:
    s = " ".join(str(value if value is not None else "").split())
    return s if len(s) <= limit else s[: limit - 1] + "…"


def amount_of(entity: str, record: Mapping[str, Any]) -> Decimal | None:
    return _decimal(record.get(spec(entity).amount_field))


def status_text(entity: str, record: Mapping[str, Any]) -> str:
    value = decode_enum(record.get(spec(entity).status_field))
    if spec(entity).document:
        return value
    return f"Blocked: {value}" if value else "Not blocked"


def vendor_text(entity: str, record: Mapping[str, Any]) -> str:
    s = spec(entity)
    number = record.get(s.vendor_number_field)
    name = record.get(s.vendor_name_field) if s.vendor_name_field else None
    return _trim(" - ".join(str(p) for p in (number, name) if p))


def template_view(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Values a summary template sees: the record with enums decoded, plus amount/currency/status_text."""
    view = {k: ("" if v is None else v) for k, v in record.items() if not k.startswith("@")}
    for key in ("status", "blocked"):
        if key in view:
            view[key] = decode_enum(view[key])
    amount = amount_of(entity, record)
    view["amount"] = f"{amount:,.2f}" if amount is not None else ""
    view["currency"] = record.get("currencyCode") or ""
    view["status_text"] = status_text(entity, record)
    return view


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return ""


def render_summary(template: str, entity: str, record: Mapping[str, Any]) -> str:
    """Render the configured template; unknown values render empty, result is one line <= 254 chars."""
    text = string.Formatter().vformat(template, (), _Blank(template_view(entity, record)))
    return _trim(text, SUMMARY_MAX) or f"{spec(entity).kind} {record.get('number') or record.get('id')}"


def bc_link(cfg: Config, entity: str, record: Mapping[str, Any]) -> str | None:
    """Deep link to the document in the BC web client (page + filter on No.)."""
    if not cfg.bc_web_client_url or not record.get("number"):
        return None
    s = spec(entity)
    page = s.page
    if s.posted_page is not None and decode_enum(record.get(s.status_field)) not in ("Draft", ""):
        page = s.posted_page
    sep = "&" if "?" in cfg.bc_web_client_url else "?"
    query = urlencode({"page": page, "filter": f"'No.' IS '{record['number']}'"}, quote_via=quote)
    return f"{cfg.bc_web_client_url}{sep}{query}"


def _facts(entity: str, record: Mapping[str, Any]) -> list[tuple[str, Any]]:
    amount = amount_of(entity, record)
    money = f"{amount:,.2f} {record.get('currencyCode') or ''}".strip() if amount is not None else ""
    if not spec(entity).document:
        rows = [
            ("Vendor No.", record.get("number")),
            ("Name", record.get("displayName")),
            ("Blocked", decode_enum(record.get("blocked")) or "No"),
            ("Balance", money),
            ("Email", record.get("email")),
            ("Phone", record.get("phoneNumber")),
            ("City", record.get("city")),
            ("Country", record.get("country")),
        ]
    else:
        excl = _decimal(record.get("totalAmountExcludingTax"))
        tax = _decimal(record.get("totalTaxAmount"))
        rows = [
            ("Document No.", record.get("number")),
            ("Vendor", vendor_text(entity, record)),
        ]
        rows += [(label, record.get(key)) for label, key in spec(entity).extra_facts]
        rows += [
            ("Amount excl. tax", f"{excl:,.2f}" if excl is not None else ""),
            ("Tax", f"{tax:,.2f}" if tax is not None else ""),
            ("Amount incl. tax", money),
            ("Status", decode_enum(record.get("status"))),
            ("Purchaser", record.get("purchaser")),
        ]
    rows.append(("BC record id", record.get("id")))
    return [(label, "" if v is None else str(v)) for label, v in rows if v not in (None, "")]


def description(cfg: Config, entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """ADF: one intro line, the facts table, and a link back to BC when a web client URL is configured."""
    url = bc_link(cfg, entity, record)
    intro = adf.paragraph(
        f"{spec(entity).kind} ",
        adf.text(record.get("number") or record.get("id"), strong=True),
        " needs a step in Business Central. Resolve it here; the outcome flows back to BC.",
    )
    link_para = adf.paragraph(adf.link("Open in Business Central", url)) if url else None
    lines = lines_blocks(entity, record, url)
    return adf.doc(intro, adf.facts_table(_facts(entity, record)), *lines, link_para)


def assignee_for(
    cfg: Config, entity: str, record: Mapping[str, Any], users: Mapping[str, str] | None = None
) -> str | None:
    """First matching rule's accountId; emails resolve through ``bc_jira_jira_users`` (email -> id)."""
    users = {k.casefold(): v for k, v in (users or {}).items()}
    for rule in cfg.assignees:
        if rule.match == "purchaser" and not spec(entity).has_purchaser:
            continue
        if rule.applies(record, entity):
            if rule.account_id:
                return rule.account_id
            if rule.email and rule.email.casefold() in users:
                return users[rule.email.casefold()]
    return None


def content_hash(fields: Mapping[str, Any], labels: tuple[str, ...]) -> str:
    """Stable hash of the owned fields (canonical JSON, sorted keys, sorted labels)."""
    payload = {"v": MAPPING_VERSION, "fields": fields, "labels": sorted(labels)}
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def needs_human(ecfg: EntityConfig, record: Mapping[str, Any]) -> bool:
    return ecfg.selection.matches(record)


def map_record(
    cfg: Config,
    entity: str,
    record: Mapping[str, Any],
    ids: FieldIds,
    users: Mapping[str, str] | None = None,
    today: date | None = None,
) -> IssueDraft:
    """The owned fields of the issue for one BC record (``today``: for "due within N days" priority rules)."""
    ecfg = cfg.entity(entity)
    amount = amount_of(entity, record)
    fields: dict[str, Any] = {
        "summary": render_summary(ecfg.summary_template, entity, record),
        ids.record_id: str(record["id"]),
        ids.document_number: _trim(record.get("number")) or None,
        ids.vendor: vendor_text(entity, record) or None,
        ids.amount: float(amount) if amount is not None else None,
        ids.currency: _trim(record.get("currencyCode")) or None,
        ids.status: _trim(status_text(entity, record)) or None,
        "description": description(cfg, entity, record),
        **schedule_fields(cfg, entity, record, today or now().date()),
    }
    if cfg.company is not None and ids.company:
        fields[ids.company] = cfg.company.name
    account = assignee_for(cfg, entity, record, users)
    if account:
        fields["assignee"] = {"accountId": account}
    labels = tuple(dict.fromkeys(cfg.labels + ecfg.labels))
    return IssueDraft(
        entity=entity,
        bc_id=str(record["id"]),
        document_number=str(record.get("number") or ""),
        fields=fields,
        labels=labels,
        content_hash=content_hash(fields, labels),
        needs_human=needs_human(ecfg, record),
        last_modified=record.get("lastModifiedDateTime"),
    )


def create_payload(cfg: Config, draft: IssueDraft) -> dict[str, Any]:
    """One ``issueUpdates`` element for bulk create: project, issue type, owned fields, labels."""
    ecfg = cfg.entity(draft.entity)
    fields = {k: v for k, v in draft.fields.items() if v is not None}
    fields["project"] = {"key": cfg.project_key}
    fields["issuetype"] = {"name": ecfg.issue_type}
    if draft.labels:
        fields["labels"] = list(draft.labels)
    return {"fields": fields}


def edit_payload(draft: IssueDraft) -> dict[str, Any]:
    """Edit body: owned fields (None clears), labels only *added* so people's labels survive."""
    body: dict[str, Any] = {"fields": dict(draft.fields)}
    if draft.labels:
        body["update"] = {"labels": [{"add": lab} for lab in draft.labels]}
    return body


def resolved_comment(entity: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """Comment for a record that no longer needs a human step (posted / unblocked / released in BC)."""
    number = record.get("number") or record.get("id")
    s = spec(entity)
    if not s.document:
        msg = f"{s.kind} {number} is no longer blocked in Business Central ({status_text(entity, record)})."
    else:
        msg = (
            f"{s.kind} {number} no longer needs a step in Business Central "
            f"(status {status_text(entity, record) or 'blank'})."
        )
    return adf.doc(adf.paragraph(msg, " (bc-jira)"))

"""The daily deletion reconcile: which linked BC records BC no longer returns.

BC sends ``deleted`` notifications for purchase invoices and vendors only (and a lost notification is never
resent), so once a day every linked record id still open in Jira is looked up in BC, in batches of
``$filter=id in (...)&$select=id``. A record counts as deleted only when **both** the batch read left it out
**and** a read by key answers 404 for that record: a failed read, a page that is empty by mistake or an
answer naming a record not asked for never deletes anything (fail closed; the task fails and retries).

Cost: ``ceil(linked / IN_BATCH)`` list calls a day plus one GET per record found missing; 1,000 linked
records cost 25 calls a day.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira.hooks.odata import id_in_filter
from bc_jira.http import NotFoundError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

log = logging.getLogger(__name__)

# GUIDs per `id in (...)`: 40 x 39 bytes (id + encoded comma) keeps the query string near 1.6 KB, under a
# 2,048-byte maxQueryString and well under OData's default MaxNodeCount of 100 (bc_jira_sandbox.bc.odata).
IN_BATCH = 40
# 404 codes that say the endpoint (company, environment, route) is wrong, not that the record is gone.
_ENDPOINT_NOT_FOUND = frozenset({"Internal_CompanyNotFound", "NoEnvironment", "BadRequest_NotFound"})


class BcReads(Protocol):
    """What the reconcile needs of ``BusinessCentralHook``."""

    def iter_records(self, entity: str, **kw: Any) -> Iterator[dict[str, Any]]: ...
    def get_record(
        self, entity: str, record_id: str, *, select: Iterable[str] | None = None
    ) -> dict[str, Any]: ...


class ReconcileError(RuntimeError):
    """BC answered something that cannot be read as "these records exist": nothing is taken as deleted."""


def id_batches(ids: Sequence[str], size: int = IN_BATCH) -> list[list[str]]:
    """The ids (lower-cased, de-duplicated, in order) in batches of ``size``."""
    unique = list(dict.fromkeys(i.lower() for i in ids))
    return [unique[i : i + size] for i in range(0, len(unique), size)]


def missing_ids(asked: Sequence[str], returned: Iterable[str]) -> list[str]:
    """The asked ids BC did not return. Raises when BC returned an id not asked (it ignored the filter)."""
    want = {a.lower() for a in asked}
    got = {str(r).lower() for r in returned}
    stray = got - want
    if stray:
        raise ReconcileError(
            f"BC returned {len(stray)} record(s) not asked for (e.g. {sorted(stray)[0]}): the id filter was "
            "not applied; nothing is taken as deleted"
        )
    return [a for a in dict.fromkeys(x.lower() for x in asked) if a not in got]


@dataclass
class Found:
    """The outcome of one reconcile: how many were checked, with how many BC calls, which are gone."""

    checked: int = 0
    calls: int = 0
    deleted: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "calls": self.calls, "deleted": list(self.deleted or [])}


def gone_by_key(bc: BcReads, entity_set: str, record_id: str) -> bool:
    """True only when BC answers 404 for this very record (not for the company, environment or route)."""
    try:
        bc.get_record(entity_set, record_id, select=["id"])
    except NotFoundError as exc:
        if exc.code in _ENDPOINT_NOT_FOUND:
            raise ReconcileError(f"BC answered 404 {exc.code} for {entity_set}: check bc_default") from exc
        return True
    return False


def find_deleted(bc: BcReads, entity_set: str, ids: Sequence[str], size: int = IN_BATCH) -> Found:
    """Linked record ids BC no longer has (see the module docstring); any BC failure propagates."""
    found = Found(deleted=[])
    for batch in id_batches(ids, size):
        rows = bc.iter_records(entity_set, filter=id_in_filter(batch), select=["id"], page_size=len(batch))
        returned = [str(r.get("id") or "") for r in rows]
        found.calls += 1
        found.checked += len(batch)
        for rid in missing_ids(batch, returned):
            found.calls += 1
            if gone_by_key(bc, entity_set, rid):
                assert found.deleted is not None
                found.deleted.append(rid)
            else:
                log.warning(
                    "%s %s: missing from the id list but readable by key; not deleted", entity_set, rid
                )
    return found

"""The daily deletion reconcile's plan: batches, what counts as missing, and failing closed."""

from __future__ import annotations

from typing import Any

import pytest

from bc_jira.http import NotFoundError, ServerError
from bc_jira.store import Event
from bc_jira.sync.deletions import deleted_events
from bc_jira.sync.reconcile import IN_BATCH, ReconcileError, find_deleted, id_batches, missing_ids

IDS = [f"0000000{n % 10}-0000-4000-8000-{n:012x}" for n in range(95)]


def test_batches_are_small_enough_for_the_url_and_node_limits() -> None:
    batches = id_batches(IDS + [IDS[0].upper()])
    assert [len(b) for b in batches] == [IN_BATCH, IN_BATCH, 95 - 2 * IN_BATCH]
    assert sum(batches, []) == IDS  # de-duplicated (case-insensitively), order kept
    query = "$filter=id%20in%20(" + "%2C".join(batches[0]) + ")&$select=id"
    assert len(query) < 2048


def test_missing_is_asked_minus_returned_and_a_stray_id_fails_closed() -> None:
    assert missing_ids(IDS[:3], [IDS[1].upper()]) == [IDS[0], IDS[2]]
    assert missing_ids(IDS[:3], IDS[:3]) == []
    with pytest.raises(ReconcileError, match="not asked"):
        missing_ids(IDS[:3], [IDS[5]])


class FakeBc:
    """BC as the reconcile sees it: a set of existing ids; ``empty`` answers every list with no rows."""

    def __init__(self, existing: set[str], *, empty: bool = False, fail_at: int | None = None) -> None:
        self.existing, self.empty, self.fail_at = existing, empty, fail_at
        self.lists: list[str] = []
        self.gets: list[str] = []

    def iter_records(self, entity: str, **kw: Any) -> Any:
        self.lists.append(kw["filter"])
        if self.fail_at is not None and len(self.lists) > self.fail_at:
            raise ServerError("bc", "GET", entity, status=503, message="unavailable")
        asked = kw["filter"][len("id in (") : -1].split(",")
        assert kw["select"] == ["id"]
        return iter([] if self.empty else [{"id": i} for i in asked if i in self.existing])

    def get_record(self, entity: str, record_id: str, *, select: Any = None) -> dict[str, Any]:
        self.gets.append(record_id)
        if record_id in self.existing:
            return {"id": record_id}
        raise NotFoundError("bc", "GET", entity, status=404, code="Internal_RecordNotFound", message="gone")


def test_find_deleted_reads_in_batches_and_confirms_each_by_key() -> None:
    bc = FakeBc(set(IDS) - {IDS[3], IDS[77]})
    found = find_deleted(bc, "vendors", IDS)
    assert found.deleted == [IDS[3], IDS[77]]
    assert found.checked == 95
    assert len(bc.lists) == 3
    assert bc.gets == [IDS[3], IDS[77]]
    assert found.calls == 5


def test_an_empty_answer_deletes_nothing_when_the_records_are_readable() -> None:
    bc = FakeBc(set(IDS), empty=True)
    assert find_deleted(bc, "vendors", IDS[:10]).deleted == []
    assert len(bc.gets) == 10


def test_a_read_failure_propagates_and_a_wrong_endpoint_404_fails_closed() -> None:
    with pytest.raises(ServerError):
        find_deleted(FakeBc(set(IDS[1:]), fail_at=1), "vendors", IDS)

    class WrongCompany(FakeBc):
        def get_record(self, entity: str, record_id: str, *, select: Any = None) -> dict[str, Any]:
            raise NotFoundError("bc", "GET", entity, status=404, code="Internal_CompanyNotFound", message="x")

    with pytest.raises(ReconcileError, match="bc_default"):
        find_deleted(WrongCompany(set(), empty=True), "vendors", IDS[:2])


def test_deleted_events_group_by_record_and_ignore_other_changes() -> None:
    def ev(n: int, change: str, rid: str) -> Event:
        return Event(
            n, "bc", "bc.vendors", f"k{n}", {"changeType": change, "record_id": rid}, "staged", 0, None, None
        )  # type: ignore[arg-type]

    out = deleted_events(
        [ev(1, "deleted", IDS[0].upper()), ev(2, "updated", IDS[1]), ev(3, "deleted", IDS[0])]
    )
    assert out == {IDS[0]: [1, 3]}


def test_a_thousand_linked_records_cost_25_calls_a_day() -> None:
    ids = [f"00000000-0000-4000-8000-{n:012x}" for n in range(1000)]
    bc = FakeBc(set(ids))
    found = find_deleted(bc, "purchaseOrders", ids)
    assert (found.checked, found.calls, found.deleted) == (1000, 25, [])

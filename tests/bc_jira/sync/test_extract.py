"""Extract: the window, de-duplication, what is kept, replay of a run's batches, the batch cap."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bc_jira.config import parse_config
from bc_jira.store.schema import LinkState
from bc_jira.sync.base import RunInfo, SyncError
from bc_jira.sync.extract import extract, sync_window
from bc_jira.sync.watermark import next_watermark
from tests.support.sync_fakes import FakeBC, invoice


def test_extract_dedupes_filters_and_replays(store) -> None:
    cfg = parse_config({"project_key": "FIN", "batch_size": 2})
    newer = invoice(1, lastModifiedDateTime="2026-11-20T10:59:00Z", totalAmountIncludingTax=5)
    recs = [invoice(1), invoice(2), invoice(3, status="Open"), newer]
    bc = FakeBC(recs)
    run = RunInfo(run_id="scheduled__1", run_type="scheduled")
    out = extract("purchase_invoices", cfg=cfg, bc=bc, store=store, run=run, watermark="2026-11-20T10:00:00Z")
    assert bc.queries[0][1] == datetime(2026, 11, 20, 9, 58, tzinfo=UTC)  # watermark minus 120 s overlap
    assert bc.queries[0][3] is None  # not the first sync: every change is read, selection applied here
    assert out["read"] == 4
    assert out["kept"] == 2
    assert out["high_watermark"] == "2026-11-20T10:59:00Z"
    saved = [r for b in out["batch_ids"] for r in store.load_batch(b)]
    assert sorted(r["id"] for r in saved) == [invoice(1)["id"], invoice(2)["id"]]
    assert next(r for r in saved if r["id"] == invoice(1)["id"])["totalAmountIncludingTax"] == 5
    assert all("@odata.etag" not in r for r in saved)
    # clearing extract replays the same batches without reading BC again
    again = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([invoice(9)]),
        store=store,
        run=run,
        watermark="2026-11-20T10:00:00Z",
    )
    assert again["batch_ids"] == out["batch_ids"]


def test_extract_keeps_linked_records_that_stopped_needing_a_human(store, stores) -> None:
    Link = stores[1]
    cfg = parse_config({"project_key": "FIN"})
    posted = invoice(3, status="Open")
    store.upsert_link(
        Link(
            entity="purchase_invoices",
            bc_id=posted["id"],
            document_number="PI1003",
            issue_id="10001",
            issue_key="FIN-1",
            content_hash="x",
            bc_last_modified=None,
            state=LinkState.LINKED,
            updated_at=datetime.now(UTC),
        )
    )
    out = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([posted, invoice(4, status="Paid")]),
        store=store,
        run=RunInfo(run_id="r"),
        watermark="2026-11-20T10:00:00Z",
    )
    assert out["kept"] == 1


def test_first_sync_lets_bc_filter_by_selection(store) -> None:
    cfg = parse_config({"project_key": "FIN"})
    bc = FakeBC([])
    extract("purchase_orders", cfg=cfg, bc=bc, store=store, run=RunInfo(run_id="r"), watermark=None)
    assert bc.queries == [("purchaseOrders", None, None, "status eq 'In_x0020_Review'")]


def test_backfill_window_and_watermark() -> None:
    cfg = parse_config({"project_key": "FIN"})
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    w = sync_window(
        cfg,
        RunInfo(run_type="backfill", data_interval_start=start, data_interval_end=end),
        "2026-11-20T00:00:00Z",
    )
    assert (w.since, w.until) == (start, end)
    with pytest.raises(SyncError):
        sync_window(cfg, RunInfo(run_type="backfill"), None)
    assert next_watermark({"backfill": True, "high_watermark": "2026-12-01T00:00:00Z"}, "A") == "A"
    assert (
        next_watermark(
            {"high_watermark": "2026-11-20T10:00:00Z", "watermark": "2026-11-20T10:01:00Z"},
            "2026-11-20T10:01:00Z",
        )
        == "2026-11-20T10:01:00Z"
    )  # overlap never rewinds
    assert (
        next_watermark({"high_watermark": "2026-11-21T00:00:00.5+00:00", "watermark": None}, None)
        == "2026-11-21T00:00:00.500000Z"
    )
    assert next_watermark({"high_watermark": None, "watermark": None}, None) is None


def test_collection_notification_widens_the_window() -> None:
    cfg = parse_config({"project_key": "FIN"})
    run = RunInfo(run_type="asset_triggered")
    wm = "2026-11-20T10:00:00Z"
    earlier = datetime(2026, 11, 19, tzinfo=UTC)
    assert sync_window(cfg, run, wm, (False, earlier)).since == earlier
    assert sync_window(cfg, run, wm, (False, datetime(2026, 11, 21, tzinfo=UTC))).since == datetime(
        2026, 11, 20, 9, 58, tzinfo=UTC
    )
    full = sync_window(cfg, run, wm, (True, None))
    assert (full.since, full.until, full.initial) == (None, None, False)


def test_batch_count_is_capped_for_small_xcom(store, monkeypatch) -> None:
    import json as _json

    from bc_jira.sync import extract as ex

    monkeypatch.setattr(ex, "MAX_BATCHES", 3)
    cfg = parse_config({"project_key": "FIN", "batch_size": 1})
    out = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([invoice(i) for i in range(10)]),
        store=store,
        run=RunInfo(run_id="cap"),
        watermark=None,
    )
    assert len(out["batch_ids"]) == 3
    assert sum(len(store.load_batch(b)) for b in out["batch_ids"]) == 10
    assert len(_json.dumps(out["batch_ids"])) < 10_240


def test_map_length_follows_airflow_max_map_length(store, monkeypatch) -> None:
    """A lower ``[core] max_map_length`` caps the batches (bigger batches), so the extract's list can map."""
    from bc_jira.sync import extract as ex

    monkeypatch.setenv("AIRFLOW__CORE__MAX_MAP_LENGTH", "4")
    assert ex.map_limit() == 4
    cfg = parse_config({"project_key": "FIN", "batch_size": 1})
    out = extract(
        "purchase_invoices",
        cfg=cfg,
        bc=FakeBC([invoice(i) for i in range(10)]),
        store=store,
        run=RunInfo(run_id="maplen"),
        watermark=None,
    )
    assert len(out["batch_ids"]) == 4
    assert sum(len(store.load_batch(b)) for b in out["batch_ids"]) == 10
    monkeypatch.delenv("AIRFLOW__CORE__MAX_MAP_LENGTH")
    assert ex.map_limit() == ex.MAX_BATCHES  # Airflow's default 1024 is above ours


def test_100k_first_sync_plans_200_batches_under_the_map_limit() -> None:
    from bc_jira.sync.extract import MAX_BATCHES, batch_size

    cfg = parse_config({"project_key": "FIN", "batch_size": 500})
    size = batch_size(cfg, 100_000, MAX_BATCHES)
    assert (size, -(-100_000 // size)) == (500, 200)
    assert 200 <= MAX_BATCHES < 1024
    assert batch_size(cfg, 150_000, MAX_BATCHES) == 750  # grows instead of mapping more


def test_more_records_than_the_map_can_hold_is_a_clear_error_and_stores_nothing(store, monkeypatch) -> None:
    from bc_jira.sync import extract as ex

    monkeypatch.setattr(ex, "MAX_BATCH_RECORDS", 2)
    cfg = parse_config({"project_key": "FIN", "batch_size": 1})
    with pytest.raises(SyncError, match=r"more than 3 mapped upserts .*raise \[core\] max_map_length"):
        extract(
            "purchase_invoices",
            cfg=cfg,
            bc=FakeBC([invoice(i) for i in range(7)]),
            store=store,
            run=RunInfo(run_id="toolong"),
            watermark=None,
            max_batches=3,
        )
    assert store.batch_ids("purchase_invoices", "toolong") == []


# -- against the sandbox: the record-id lookup and bc_jira_connect's field checks (issue 10.2, 10.5) ---------

"""The token rows' lock: one refresh at a time across processes, rollback on failure."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import pytest

from bc_jira.store import StateStore


def test_token_lock_roundtrip_and_rollback(store: StateStore) -> None:
    assert store.get_token("jira:x") is None
    with store.token_lock("jira:x") as txn:
        assert txn.row is None
    assert store.get_token("jira:x") is None  # the lock placeholder is not a token
    with store.token_lock("jira:x") as txn:
        txn.save("enc-rt", "enc-at", 1234.5, {"cloud_id": "c1"})
    row = store.get_token("jira:x")
    assert (row.refresh_token_enc, row.access_token_enc, row.expires_at, row.meta) == (
        "enc-rt",
        "enc-at",
        1234.5,
        {"cloud_id": "c1"},
    )

    def failing_refresh() -> None:
        with store.token_lock("jira:x") as txn:
            assert txn.row.refresh_token_enc == "enc-rt"
            txn.save("enc-rt-2", None, None, {})
            raise RuntimeError("refresh failed")

    with pytest.raises(RuntimeError, match="refresh failed"):
        failing_refresh()
    assert store.get_token("jira:x").refresh_token_enc == "enc-rt"  # rolled back


def _increment(url: str, name: str, times: int, start_at: float, out: Any) -> None:
    try:
        s = StateStore.from_url(url)
        time.sleep(max(0.0, start_at - time.time()))
        for _ in range(times):
            with s.token_lock(name) as txn:
                meta = dict(txn.row.meta) if txn.row else {}
                time.sleep(0.005)  # widen the read-modify-write window
                txn.save("rt", "at", None, {**meta, "count": meta.get("count", 0) + 1})
        out.put("ok")
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent process
        out.put(f"{type(exc).__name__}: {exc}")


def test_token_lock_is_exclusive_across_processes(store: StateStore, url: str) -> None:
    store.ensure_schema()
    store.get_token("warm")  # the parent holds pooled connections: forked children must not reuse them
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.time() + 1.0
    procs = [ctx.Process(target=_increment, args=(url, "jira:counter", 8, start_at, out)) for _ in range(6)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == ["ok"] * 6
    assert store.get_token("jira:counter").meta["count"] == 48

"""The schema: created lazily, idempotently and by concurrent processes; every table in the dump."""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from bc_jira.store import StateStore
from bc_jira.store import engine as store_engine
from bc_jira.store import schema as store_schema
from tests.support.store_db import table_names

ALL_TABLES = {t.name for t in store_schema.metadata.sorted_tables}


def test_schema_created_lazily_and_idempotently(url: str, store: StateStore) -> None:
    assert not (table_names(url) & ALL_TABLES)
    assert store.stage_event("bc", "notification", "k1", {"a": 1})  # first use creates the schema
    assert table_names(url) >= ALL_TABLES
    store_engine._SCHEMA_READY.clear()  # forget the per-process memo: really run the creation again
    store.ensure_schema()
    StateStore.from_url(url).ensure_schema()
    assert store.count_pending() == 1  # nothing was dropped or recreated


def _create_schema(url: str, start_at: float, out: Any) -> None:
    try:
        time.sleep(max(0.0, start_at - time.time()))
        s = StateStore.from_url(url)
        s.ensure_schema()
        out.put(("ok", s.stage_event("bc", "k", f"proc-{multiprocessing.current_process().name}", {})))
    except Exception as exc:  # noqa: BLE001 - any failure is reported to the parent process
        out.put((f"{type(exc).__name__}: {exc}", False))


def test_schema_from_concurrent_processes(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 4.0
    procs = [ctx.Process(target=_create_schema, args=(url, start_at, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == [("ok", True)] * 4
    assert StateStore.from_url(url).count_pending() == 4


def test_dump_text_covers_every_table(store: StateStore) -> None:
    store.stage_event("bc", "n", "d1", {"p": "payload-value"})
    with store.token_lock("jira:dump") as txn:
        txn.save("CIPHERTEXT-RT", "CIPHERTEXT-AT", 1.0, {"m": "meta-value"})
    store.put_webhook("w1", secret_hint="hook-value")
    dump = store.dump_text()
    for needle in (
        "bc_jira_events",
        "payload-value",
        "jira:dump",
        "CIPHERTEXT-RT",
        "CIPHERTEXT-AT",
        "meta-value",
        "hook-value",
    ):
        assert needle in dump
    assert len(dump.splitlines()) >= 3
    assert all(": " in line for line in dump.splitlines())

"""At most N concurrent BC calls per principal across processes (the store's call slots)."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

from bc_jira.store import StateStore


def _worker(url: str, key: str, slots: int, path: str, barrier) -> None:
    store = StateStore.from_url(url)
    barrier.wait()
    for _ in range(3):
        with store.call_slot(key, slots, timeout=60):
            with open(path, "a") as fh:
                fh.write(f"+ {time.monotonic()}\n")
            time.sleep(0.05)
            with open(path, "a") as fh:
                fh.write(f"- {time.monotonic()}\n")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, sqlite_url):
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_never_more_than_the_slots_at_once_across_processes(url, tmp_path):
    path = tmp_path / "trace"
    path.touch()
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(10)
    procs = [
        ctx.Process(target=_worker, args=(url, "bc:tenant:client", 3, str(path), barrier)) for _ in range(10)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    events = sorted(
        (float(t), 1 if s == "+" else -1) for s, t in (line.split() for line in path.read_text().splitlines())
    )
    # at a tie, count releases first (a slot freed and taken in the same instant is not an overlap)
    events.sort(key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert len(events) == 60
    assert peak == 3  # 10 processes wanted in; exactly 3 at a time got in


def test_other_keys_do_not_share_slots(sqlite_url):
    store = StateStore.from_url(sqlite_url)
    with store.call_slot("a", 1), store.call_slot("b", 1):
        pass  # would time out if "b" waited for "a"
    with store.call_slot("a", 1), pytest.raises(TimeoutError), store.call_slot("a", 1, timeout=0.2):
        pass

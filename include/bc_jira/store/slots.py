"""Cross-process call slots: at most N concurrent calls per key across every process using one store.

Why: BC allows about 5 concurrent calls per service principal, and mapped tasks run in many processes (and,
with Celery, on many hosts). PostgreSQL: session advisory locks, one per slot. SQLite (one host): an
exclusive file lock per slot next to the database file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

    from bc_jira.store.engine import Database

Release = Callable[[], None]
Taker = Callable[[int], Release | None]


@contextmanager
def call_slot(db: Database, key: str, slots: int, timeout: float = 300.0) -> Iterator[int]:
    """Hold one of ``slots`` slots for ``key``; yields the slot, TimeoutError after ``timeout`` seconds."""
    with contextlib.ExitStack() as stack:
        if db.dialect == "postgresql":
            try_take = _pg_taker(stack.enter_context(db.engine.connect()), _digest(key))
        else:
            try_take = _file_taker(_slot_folder(db.url), _digest(key))
        deadline = time.monotonic() + timeout
        order = list(range(slots))
        while True:
            random.shuffle(order)
            for slot in order:
                release = try_take(slot)
                if release is not None:
                    try:
                        yield slot
                    finally:
                        release()
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"no free call slot for {key!r} in {timeout:.0f}s")
            time.sleep(0.02)


def _digest(key: str) -> str:
    return hashlib.sha1(key.encode(), usedforsecurity=False).hexdigest()  # a lock id, not a secret


def _pg_taker(conn: Connection, digest: str) -> Taker:
    """A non-blocking ``take(slot)`` on session advisory locks, returning its release (None: busy)."""
    group = int(digest[:7], 16)

    def take(slot: int) -> Release | None:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:g, :s)"), {"g": group, "s": slot}).scalar()
        conn.commit()
        if not got:
            return None

        def release() -> None:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:g, :s)"), {"g": group, "s": slot})
            conn.commit()

        return release

    return take


def _slot_folder(url: str) -> Path:
    folder = Path(f"{sa.engine.make_url(url).database or 'bc_jira_state.db'}.slots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _file_taker(folder: Path, digest: str) -> Taker:
    """A non-blocking ``take(slot)`` on exclusive file locks, returning its release (None: busy)."""

    def take(slot: int) -> Release | None:
        fh = open(folder / f"{digest[:16]}.{slot}.lock", "a+b")  # noqa: SIM115 - closed by release
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            return None

        def release() -> None:
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

        return release

    return take

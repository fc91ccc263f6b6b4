"""An in-memory store with the StateStore token interface (``get_token``, ``list_tokens``, ``token_lock``).

For unit tests of the token provider and the Jira hook; the cross-process tests use the real StateStore.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass
class Row:
    name: str
    refresh_token_enc: str | None
    access_token_enc: str | None
    expires_at: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    updated_at: float = 0.0


class Txn:
    def __init__(self, store: FakeStore, name: str) -> None:
        self.store, self.name = store, name
        self.row = store.rows.get(name)

    def save(
        self,
        refresh_token_enc: str | None,
        access_token_enc: str | None,
        expires_at: float | None,
        meta: dict[str, Any],
    ) -> None:
        self.store.rows[self.name] = Row(
            self.name, refresh_token_enc, access_token_enc, expires_at, dict(meta), time.time()
        )
        self.store.saves += 1


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.lock = threading.Lock()
        self.saves = 0
        self.locks_taken = 0
        self.before_lock: Any = None  # hook: simulate a neighbour acting between read and lock

    def get_token(self, name: str) -> Row | None:
        return self.rows.get(name)

    def list_tokens(self, prefix: str = "") -> list[Row]:
        return [row for name, row in sorted(self.rows.items()) if name.startswith(prefix)]

    @contextlib.contextmanager
    def token_lock(self, name: str) -> Iterator[Txn]:
        if self.before_lock:
            self.before_lock()
        with self.lock:
            self.locks_taken += 1
            yield Txn(self, name)

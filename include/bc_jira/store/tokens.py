"""OAuth token rows (``bc_jira_tokens``, ciphertext only) and the lock for one refresh at a time.

Not the token provider: ``bc_jira.tokens`` encrypts, refreshes and decides; this module stores and locks.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bc_jira.store.schema import TokenRow, aware, dumps, loads, tokens, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection, Row

    from bc_jira.store.engine import Database


def token_from_row(row: Row[Any] | None) -> TokenRow | None:
    if row is None or (row.refresh_token_enc is None and row.access_token_enc is None and not row.meta):
        return None  # a placeholder row created only to be locked
    return TokenRow(
        row.name,
        row.refresh_token_enc,
        row.access_token_enc,
        row.expires_at,
        loads(row.meta) or {},
        aware(row.updated_at),
    )


class TokenTxn:
    """The token row as seen inside ``token_lock``; ``save`` writes in the same transaction."""

    def __init__(self, conn: Connection, name: str, row: TokenRow | None) -> None:
        self._conn = conn
        self.name = name
        self.row = row

    def save(
        self,
        refresh_token_enc: str | None,
        access_token_enc: str | None,
        expires_at: float | None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        updated_at = utcnow()
        values = {
            "refresh_token_enc": refresh_token_enc,
            "access_token_enc": access_token_enc,
            "expires_at": expires_at,
            "meta": dumps(meta or {}),
            "updated_at": updated_at,
        }
        self._conn.execute(tokens.update().where(tokens.c.name == self.name).values(**values))
        self.row = TokenRow(
            self.name, refresh_token_enc, access_token_enc, expires_at, dict(meta or {}), updated_at
        )


class TokenRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    def get_token(self, name: str) -> TokenRow | None:
        with self._db.tx() as conn:
            return token_from_row(conn.execute(sa.select(tokens).where(tokens.c.name == name)).first())

    def list_tokens(self, prefix: str = "") -> list[TokenRow]:
        """Every token row whose name starts with ``prefix`` (placeholders left out), by name."""
        with self._db.tx() as conn:
            rows = conn.execute(
                sa.select(tokens)
                .where(tokens.c.name.startswith(prefix, autoescape=True))
                .order_by(tokens.c.name)
            ).all()
        return [t for t in (token_from_row(r) for r in rows) if t is not None]

    @contextmanager
    def token_lock(self, name: str) -> Iterator[TokenTxn]:
        """Hold the token row exclusively across processes; the row is read after the lock is taken.

        PostgreSQL: ``SELECT … FOR UPDATE`` on a row inserted beforehand if missing. SQLite: ``BEGIN
        IMMEDIATE`` takes the database's write lock. Either way a waiter sees what its neighbour just saved.
        """
        placeholder = {
            "name": name,
            "refresh_token_enc": None,
            "access_token_enc": None,
            "expires_at": None,
            "meta": None,
            "updated_at": utcnow(),
        }
        if self._db.dialect == "postgresql":
            with self._db.tx() as conn:
                conn.execute(self._db.insert_ignore(tokens, placeholder, ["name"]))
        with self._db.tx(immediate=True) as conn:
            if self._db.dialect == "sqlite":
                conn.execute(self._db.insert_ignore(tokens, placeholder, ["name"]))
                row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).first()
            else:
                row = conn.execute(sa.select(tokens).where(tokens.c.name == name).with_for_update()).first()
            yield TokenTxn(conn, name, token_from_row(row))

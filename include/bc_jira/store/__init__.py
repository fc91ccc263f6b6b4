"""The connector's state store: every table and every SQL statement, on PostgreSQL or SQLite.

Why one module: the promises (no duplicates, nothing lost, full audit, one token refresh at a time) all
rest on these rows; keeping their SQL in one place keeps the two dialects honest. Tokens are stored as
ciphertext only: ``bc_jira.tokens`` encrypts before anything reaches this module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "bc_jira_db"
_MAX_ERROR = 4000
_SCHEMA_LOCK_KEY = 0x6BC71A  # pg_advisory_xact_lock key: concurrent schema creators queue, not collide
_PG_PARAMS = (
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "target_session_attrs",
)

metadata = sa.MetaData()

events = sa.Table(
    "bc_jira_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("dedupe_key", sa.String(512), nullable=False, unique=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, default="staged"),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_events_kind_status", "kind", "status"),
)

# One row per delivery that reached staging (Jira: per X-Atlassian-Webhook-Identifier; BC: per notification
# item). It outlives the staged event: a late retry after the event was processed and deleted is still
# recognised as a duplicate (Jira retries for up to ~30 min). Purged after ``expires_at``.
deliveries = sa.Table(
    "bc_jira_deliveries",
    metadata,
    sa.Column("delivery_key", sa.String(512), primary_key=True),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("body_sha256", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(512), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_deliveries_expires", "expires_at"),
)

links = sa.Table(
    "bc_jira_links",
    metadata,
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("bc_id", sa.String(64), primary_key=True),
    sa.Column("document_number", sa.String(64)),
    sa.Column("issue_id", sa.String(32)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("content_hash", sa.String(128)),
    sa.Column("bc_last_modified", sa.String(40)),
    sa.Column("state", sa.String(16), nullable=False, default="open"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_links_issue_id", "issue_id"),
    sa.Index("ix_bc_jira_links_issue_key", "issue_key"),
)

batches = sa.Table(
    "bc_jira_batches",
    metadata,
    sa.Column("batch_id", sa.String(200), primary_key=True),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("run_key", sa.String(250), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("records", sa.Text, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_batches_run", "entity", "run_key", "seq"),
)

audit_log = sa.Table(
    "bc_jira_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("bc_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("document_number", sa.String(64)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("read", sa.Text),
    sa.Column("sent", sa.Text),
    sa.Column("response", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("run_id", sa.String(250)),
    sa.Column("task_id", sa.String(250)),
    sa.Column("map_index", sa.Integer),
    sa.Column("try_number", sa.Integer),
    sa.Index("ix_bc_jira_audit_record", "entity", "bc_id", "id"),
    sa.Index("ix_bc_jira_audit_issue", "issue_key"),
    sa.Index("ix_bc_jira_audit_at", "at"),
)

tokens = sa.Table(
    "bc_jira_tokens",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("refresh_token_enc", sa.Text),
    sa.Column("access_token_enc", sa.Text),
    sa.Column("expires_at", sa.Float),
    sa.Column("meta", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

subscriptions = sa.Table(
    "bc_jira_bc_subscriptions",
    metadata,
    sa.Column("resource", sa.String(500), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

webhooks = sa.Table(
    "bc_jira_jira_webhooks",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("fields", sa.Text, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

claims = sa.Table(
    "bc_jira_claims",
    metadata,
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("bc_id", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(800), nullable=False),  # dag/run/task[map]: the task instance holding it
    sa.Column("try_number", sa.Integer, nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
)

oauth_states = sa.Table(
    "bc_jira_oauth_states",
    metadata,
    sa.Column("state", sa.String(200), primary_key=True),
    sa.Column("meta", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


effects = sa.Table(
    "bc_jira_effects",
    metadata,
    # An effect the connector owes in Jira that Jira cannot make idempotent (a comment, the healing
    # of a duplicate issue): the intent is written before the call, the outcome after it. attempts > 0 while
    # pending means an earlier call may have reached Jira: look for the effect before making it again.
    sa.Column("effect_key", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("bc_id", sa.String(64), nullable=False),
    sa.Column("issue_id", sa.String(32)),
    sa.Column("issue_key", sa.String(64)),
    sa.Column("payload", sa.Text),
    sa.Column("state", sa.String(16), nullable=False),  # pending | done | failed
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", sa.Text),
    sa.Column("error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_bc_jira_effects_state", "kind", "state", "entity"),
    sa.Index("ix_bc_jira_effects_record", "kind", "entity", "bc_id"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they were written as UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _dumps(value: Any) -> str | None:
    return None if value is None else json.dumps(value, default=str, sort_keys=True)


def _loads(value: str | None) -> Any:
    return None if value is None else json.loads(value)


@dataclass
class Event:
    id: int
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    status: str
    attempts: int
    error: str | None
    received_at: datetime


@dataclass
class Link:
    entity: str
    bc_id: str
    document_number: str | None = None
    issue_id: str | None = None
    issue_key: str | None = None
    content_hash: str | None = None
    bc_last_modified: str | None = None
    state: str = "open"
    updated_at: datetime | None = None


@dataclass
class Effect:
    """One row of ``bc_jira_effects`` (see the table's comment)."""

    effect_key: str
    kind: str
    entity: str
    bc_id: str
    issue_id: str | None = None
    issue_key: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"
    attempts: int = 0
    result: Any = None
    error: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class AuditRow:
    entity: str
    bc_id: str
    action: str
    document_number: str | None = None
    issue_key: str | None = None
    reason: str | None = None
    read: Any = None
    sent: Any = None
    response: Any = None
    error: str | None = None
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    at: datetime | None = None
    id: int | None = None


@dataclass
class TokenRow:
    name: str
    refresh_token_enc: str | None
    access_token_enc: str | None
    expires_at: float | None
    meta: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


def _token_row(row: Any) -> TokenRow | None:
    if row is None or (row.refresh_token_enc is None and row.access_token_enc is None and not row.meta):
        return None  # a placeholder row created only to be locked
    return TokenRow(
        row.name,
        row.refresh_token_enc,
        row.access_token_enc,
        row.expires_at,
        _loads(row.meta) or {},
        _aware(row.updated_at),
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
        values = {
            "refresh_token_enc": refresh_token_enc,
            "access_token_enc": access_token_enc,
            "expires_at": expires_at,
            "meta": _dumps(meta or {}),
            "updated_at": _now(),
        }
        self._conn.execute(tokens.update().where(tokens.c.name == self.name).values(**values))
        self.row = TokenRow(
            self.name, refresh_token_enc, access_token_enc, expires_at, dict(meta or {}), values["updated_at"]
        )


_ENGINES: dict[tuple[int, str], Engine] = {}
_ENGINES_LOCK = threading.Lock()
_SCHEMA_READY: set[tuple[int, str]] = set()


def _engine(url: str) -> Engine:
    """One engine per URL per process (a forked worker must not share its parent's connections)."""
    key = (os.getpid(), url)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            if url.startswith("sqlite"):
                engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

                @sa.event.listens_for(engine, "connect")
                def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
                    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (BEGIN IMMEDIATE for locks)
                    cur = dbapi_conn.cursor()
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute("PRAGMA busy_timeout=30000")
                    cur.close()

                @sa.event.listens_for(engine, "begin")
                def _sqlite_begin(conn: Connection) -> None:
                    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")
            else:
                engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
            _ENGINES[key] = engine
        return engine


def _url_from_connection(conn: Any) -> str:
    conn_type = (conn.conn_type or "").lower()
    if conn_type in ("postgres", "postgresql"):
        extra = getattr(conn, "extra_dejson", None) or {}
        user = sa.engine.URL.create(
            "postgresql+psycopg2",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or "localhost",
            port=conn.port or None,
            database=conn.schema or None,
            query={k: str(v) for k, v in extra.items() if k in _PG_PARAMS and v is not None},
        )
        return user.render_as_string(hide_password=False)
    if conn_type == "sqlite":
        path = conn.host or conn.schema
        if not path:
            raise ValueError("bc_jira_db: a sqlite connection needs the database file path in host")
        return f"sqlite:///{os.path.abspath(os.path.expanduser(path))}"
    raise ValueError(f"bc_jira_db: conn_type {conn_type!r} is not supported; use postgres or sqlite")


def _airflow_connection(conn_id: str) -> Any | None:
    """The Airflow connection if defined (task, server or script context), else None.

    Only "not found" means undefined (``bc_jira.airflow_conn``): a failing secrets backend must not silently
    switch a worker to a local SQLite file (its links would be invisible to the other workers -> duplicate
    issues).
    """
    from bc_jira.airflow_conn import get_connection

    return get_connection(conn_id)


class StateStore:
    """All persistent state of the connector. Cheap to construct; the schema is created on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> StateStore:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg2://" + url.split("://", 1)[1]
        return cls(url)

    @classmethod
    def from_airflow(cls, conn_id: str = DEFAULT_CONN_ID) -> StateStore:
        """The ``bc_jira_db`` connection when defined, else a SQLite file in ``$AIRFLOW_HOME``."""
        conn = _airflow_connection(conn_id)
        if conn is not None:
            url = _url_from_connection(conn)
        else:
            home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
            home.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{home / 'bc_jira_state.db'}"
        return cls.from_url(url)

    def describe(self) -> str:
        """Where the store lives, without credentials (health route, logs)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    # -- schema and transactions -------------------------------------------------------------------
    def ensure_schema(self) -> None:
        key = (os.getpid(), self.url)
        if key in _SCHEMA_READY:
            return
        for attempt in range(3):
            try:
                # One transaction holding the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
                # lock): concurrent creators wait for the first one, then find every table there.
                with self.engine.connect() as conn:
                    if self.dialect == "sqlite":
                        conn.info["immediate"] = True
                    with conn.begin():
                        if self.dialect == "postgresql":
                            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                        metadata.create_all(conn, checkfirst=True)
                break
            except sa.exc.DatabaseError as exc:  # a creator outside our lock won the race: look again
                if attempt == 2:
                    raise
                log.info("state store schema: concurrent creation (%s); retrying", type(exc.orig).__name__)
        _SCHEMA_READY.add(key)

    @contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[Connection]:
        self.ensure_schema()
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.info["immediate"] = immediate
            with conn.begin():
                yield conn

    # -- staged inbound events ---------------------------------------------------------------------
    def stage_event(self, source: str, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
        """Stage one event durably; False when the same dedupe key was staged before."""
        now = _now()
        values = {
            "source": source,
            "kind": kind,
            "dedupe_key": dedupe_key[:512],
            "payload": _dumps(payload),
            "status": "staged",
            "attempts": 0,
            "received_at": now,
            "updated_at": now,
        }
        with self._tx() as conn:
            stmt = self._insert_ignore(events, values, ["dedupe_key"])
            return conn.execute(stmt).rowcount == 1

    def stage_delivery(
        self,
        source: str,
        kind: str,
        dedupe_key: str,
        payload: dict[str, Any],
        *,
        delivery_key: str,
        body_sha256: str,
        ttl: timedelta,
    ) -> str:
        """Stage the event of one delivery, once per delivery key; the delivery's tombstone lives ``ttl``.

        Returns ``"staged"``; ``"duplicate"`` (the delivery was seen with the same body, even if its event
        is long processed and deleted, or another delivery staged the same change); ``"conflict"`` (the
        delivery key was seen with a different body: nothing staged). One transaction; expired tombstones
        are purged on the way.
        """
        now = _now()
        key = delivery_key[:512]
        with self._tx(immediate=True) as conn:
            conn.execute(deliveries.delete().where(deliveries.c.expires_at < now))
            seen_q = sa.select(deliveries.c.body_sha256).where(deliveries.c.delivery_key == key)
            seen = conn.execute(seen_q).scalar()
            if seen is None:
                tomb = {
                    "delivery_key": key,
                    "source": source,
                    "body_sha256": body_sha256,
                    "event_key": dedupe_key[:512],
                    "received_at": now,
                    "expires_at": now + ttl,
                }
                if conn.execute(self._insert_ignore(deliveries, tomb, ["delivery_key"])).rowcount != 1:
                    seen = conn.execute(seen_q).scalar()  # a concurrent twin committed first
            if seen is not None:
                return "duplicate" if seen == body_sha256 else "conflict"
            values = {
                "source": source,
                "kind": kind,
                "dedupe_key": dedupe_key[:512],
                "payload": _dumps(payload),
                "status": "staged",
                "attempts": 0,
                "received_at": now,
                "updated_at": now,
            }
            staged = conn.execute(self._insert_ignore(events, values, ["dedupe_key"])).rowcount == 1
            return "staged" if staged else "duplicate"

    def count_deliveries(self) -> int:
        """Tombstones kept (tests and the health route)."""
        with self._tx() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(deliveries)).scalar_one())

    def pending_events(self, kind: str | None = None, limit: int = 500) -> list[Event]:
        q = sa.select(events).where(events.c.status.in_(("staged", "failed")))
        if kind is not None:
            q = q.where(events.c.kind == kind)
        q = q.order_by(events.c.id).limit(limit)
        with self._tx() as conn:
            return [
                Event(
                    r.id,
                    r.source,
                    r.kind,
                    r.dedupe_key,
                    _loads(r.payload),
                    r.status,
                    r.attempts,
                    r.error,
                    _aware(r.received_at),
                )
                for r in conn.execute(q)
            ]

    def count_pending(self, kind: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(events).where(events.c.status.in_(("staged", "failed")))
        if kind is not None:
            q = q.where(events.c.kind == kind)
        with self._tx() as conn:
            return int(conn.execute(q).scalar_one())

    def mark_event_failed(self, event_id: int, error: str) -> None:
        with self._tx() as conn:
            conn.execute(
                events.update()
                .where(events.c.id == event_id)
                .values(
                    status="failed",
                    attempts=events.c.attempts + 1,
                    error=error[:_MAX_ERROR],
                    updated_at=_now(),
                )
            )

    def delete_event(self, event_id: int) -> None:
        with self._tx() as conn:
            conn.execute(events.delete().where(events.c.id == event_id))

    # -- links -------------------------------------------------------------------------------------
    @staticmethod
    def _link(r: Any) -> Link:
        return Link(
            r.entity,
            r.bc_id,
            r.document_number,
            r.issue_id,
            r.issue_key,
            r.content_hash,
            r.bc_last_modified,
            r.state,
            _aware(r.updated_at),
        )

    def get_links(self, entity: str, bc_ids: Iterable[str]) -> dict[str, Link]:
        ids = list(dict.fromkeys(bc_ids))
        out: dict[str, Link] = {}
        with self._tx() as conn:
            for i in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
                chunk = ids[i : i + 500]
                q = sa.select(links).where(links.c.entity == entity, links.c.bc_id.in_(chunk))
                out.update({r.bc_id: self._link(r) for r in conn.execute(q)})
        return out

    def get_link_by_issue(self, issue_id_or_key: str) -> Link | None:
        q = sa.select(links).where(
            sa.or_(links.c.issue_id == str(issue_id_or_key), links.c.issue_key == str(issue_id_or_key))
        )
        q = q.order_by(links.c.updated_at.desc()).limit(1)
        with self._tx() as conn:
            row = conn.execute(q).first()
        return self._link(row) if row is not None else None

    def upsert_link(self, link: Link) -> None:
        values = asdict(link)
        values["updated_at"] = link.updated_at or _now()
        with self._tx() as conn:
            conn.execute(self._upsert(links, values, ["entity", "bc_id"]))

    def upsert_links(self, items: Sequence[Link]) -> None:
        """Several links in one transaction (the outbound writes up to 50 intents/results at once)."""
        if not items:
            return
        now = _now()
        rows = [{**asdict(link), "updated_at": link.updated_at or now} for link in items]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(links)
        keep = ("entity", "bc_id")
        stmt = stmt.on_conflict_do_update(
            index_elements=list(keep), set_={k: stmt.excluded[k] for k in rows[0] if k not in keep}
        )
        with self._tx() as conn:
            conn.execute(stmt, rows)  # executemany: one statement, one transaction

    # -- effects (comments and duplicate healing made exactly once) ---------------------------------
    @staticmethod
    def _effect(r: Any) -> Effect:
        return Effect(
            r.effect_key,
            r.kind,
            r.entity,
            r.bc_id,
            r.issue_id,
            r.issue_key,
            _loads(r.payload) or {},
            r.state,
            r.attempts,
            _loads(r.result),
            r.error,
            _aware(r.created_at),
            _aware(r.updated_at),
        )

    def put_effect(self, effect: Effect) -> Effect:
        """Record the intent once (insert-or-ignore on the key); returns the stored row, old or new."""
        now = _now()
        values = {
            "effect_key": effect.effect_key,
            "kind": effect.kind,
            "entity": effect.entity,
            "bc_id": effect.bc_id,
            "issue_id": effect.issue_id,
            "issue_key": effect.issue_key,
            "payload": _dumps(effect.payload or {}),
            "state": "pending",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        with self._tx() as conn:
            conn.execute(self._insert_ignore(effects, values, ["effect_key"]))
            row = conn.execute(sa.select(effects).where(effects.c.effect_key == effect.effect_key)).first()
        return self._effect(row)

    def get_effect(self, effect_key: str) -> Effect | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(effects).where(effects.c.effect_key == effect_key)).first()
        return self._effect(row) if row is not None else None

    def effect_attempt(self, effect_key: str) -> None:
        """Written right before the call: from now on a lost answer means "look before making it again"."""
        with self._tx() as conn:
            conn.execute(
                effects.update()
                .where(effects.c.effect_key == effect_key)
                .values(attempts=effects.c.attempts + 1, updated_at=_now())
            )

    def finish_effect(
        self, effect_key: str, state: str, *, result: Any = None, error: str | None = None
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                effects.update()
                .where(effects.c.effect_key == effect_key)
                .values(
                    state=state,
                    result=_dumps(result),
                    error=error[:_MAX_ERROR] if error else None,
                    updated_at=_now(),
                )
            )

    def pending_effects(
        self,
        kind: str,
        *,
        entity: str | None = None,
        bc_ids: Iterable[str] | None = None,
        limit: int = 500,
    ) -> list[Effect]:
        q = sa.select(effects).where(effects.c.kind == kind, effects.c.state == "pending")
        if entity is not None:
            q = q.where(effects.c.entity == entity)
        out: list[Effect] = []
        with self._tx() as conn:
            if bc_ids is None:
                out = [self._effect(r) for r in conn.execute(q.order_by(effects.c.created_at).limit(limit))]
            else:
                ids = list(dict.fromkeys(bc_ids))
                for i in range(0, len(ids), 500):
                    chunk = q.where(effects.c.bc_id.in_(ids[i : i + 500])).order_by(effects.c.created_at)
                    out += [self._effect(r) for r in conn.execute(chunk)]
        return out[:limit]

    def count_effects(self, kind: str, entity: str, bc_id: str, state: str = "done") -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(effects)
            .where(
                effects.c.kind == kind,
                effects.c.entity == entity,
                effects.c.bc_id == bc_id,
                effects.c.state == state,
            )
        )
        with self._tx() as conn:
            return int(conn.execute(q).scalar_one())

    # -- record claims (two runs never work on one record at once) ---------------------------------
    def claim_records(
        self, entity: str, bc_ids: Iterable[str], owner: str, try_number: int, now: datetime, ttl_s: float
    ) -> tuple[set[str], dict[str, tuple[str, int, datetime | None]]]:
        """Claim each record for ``owner``; returns (taken, {bc_id: (owner, try, claimed_at) held by others}).

        One ``INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`` per chunk: a free record is inserted, a
        claim of the same task instance (an earlier or the same try: a retry or a clear) or one claimed
        more than ``ttl_s`` before ``now`` (its owner is gone) is taken over, any other claim stays with
        its owner. The database decides row by row under its own lock, so two runs never both get one
        record.
        Re-claiming what one holds refreshes ``claimed_at`` (the heartbeat). Ids are sorted so two
        PostgreSQL transactions lock overlapping rows in the same order (no deadlock).
        """
        ids = sorted(set(bc_ids))
        taken: set[str] = set()
        if not ids:
            return taken, {}
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stale_before = now - timedelta(seconds=ttl_s)
        with self._tx(immediate=True) as conn:
            for i in range(0, len(ids), 200):  # 5 parameters a row: far below SQLite's limit
                rows = [
                    {
                        "entity": entity,
                        "bc_id": b,
                        "owner": owner,
                        "try_number": try_number,
                        "claimed_at": now,
                    }
                    for b in ids[i : i + 200]
                ]
                stmt = insert(claims).values(rows)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["entity", "bc_id"],
                    set_={
                        "owner": stmt.excluded.owner,
                        "try_number": stmt.excluded.try_number,
                        "claimed_at": stmt.excluded.claimed_at,
                    },
                    where=sa.or_(
                        sa.and_(claims.c.owner == stmt.excluded.owner, claims.c.try_number <= try_number),
                        claims.c.claimed_at < stale_before,
                    ),
                ).returning(claims.c.bc_id)
                taken.update(r.bc_id for r in conn.execute(stmt))
        others = [b for b in ids if b not in taken]
        held: dict[str, tuple[str, int, datetime | None]] = {}
        if others:
            with self._tx() as conn:
                for i in range(0, len(others), 500):
                    q = sa.select(claims).where(
                        claims.c.entity == entity, claims.c.bc_id.in_(others[i : i + 500])
                    )
                    held.update(
                        {r.bc_id: (r.owner, r.try_number, _aware(r.claimed_at)) for r in conn.execute(q)}
                    )
        # released between the two statements: still skipped now (the watermark of this run holds them)
        return taken, {b: held.get(b, ("another run (since released)", 0, None)) for b in others}

    def get_claims(self, entity: str, bc_ids: Iterable[str]) -> dict[str, tuple[str, int, datetime | None]]:
        """Current claims of these records: {bc_id: (owner, try, claimed_at)} (diagnostics, takeover logs)."""
        ids = sorted(set(bc_ids))
        out: dict[str, tuple[str, int, datetime | None]] = {}
        with self._tx() as conn:
            for i in range(0, len(ids), 500):
                q = sa.select(claims).where(claims.c.entity == entity, claims.c.bc_id.in_(ids[i : i + 500]))
                out.update({r.bc_id: (r.owner, r.try_number, _aware(r.claimed_at)) for r in conn.execute(q)})
        return out

    def release_claims(self, entity: str, bc_ids: Iterable[str], owner: str) -> int:
        """Drop this owner's claims (after its links are written); claims taken over by others stay."""
        ids = sorted(set(bc_ids))
        n = 0
        with self._tx() as conn:
            for i in range(0, len(ids), 500):
                n += conn.execute(
                    claims.delete().where(
                        claims.c.entity == entity,
                        claims.c.bc_id.in_(ids[i : i + 500]),
                        claims.c.owner == owner,
                    )
                ).rowcount
        return n

    # -- batches -----------------------------------------------------------------------------------
    @staticmethod
    def _batch_id(entity: str, run_key: str, seq: int) -> str:
        digest = hashlib.sha1(f"{entity}|{run_key}".encode()).hexdigest()[:16]  # noqa: S324 - an id
        return f"{entity}:{digest}:{seq:05d}"

    def save_batches(
        self, entity: str, run_key: str, records: Iterable[dict[str, Any]], batch_size: int
    ) -> list[str]:
        """Write a run's records once as numbered batches; a retry or clear gets the same ids back."""
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer of at least 1, got {batch_size!r}")
        existing = self.batch_ids(entity, run_key)
        if existing:
            return existing
        rows: list[dict[str, Any]] = []
        chunk: list[dict[str, Any]] = []
        now = _now()

        def flush() -> None:
            seq = len(rows)
            rows.append(
                {
                    "batch_id": self._batch_id(entity, run_key, seq),
                    "entity": entity,
                    "run_key": run_key,
                    "seq": seq,
                    "records": _dumps(chunk),
                    "size": len(chunk),
                    "created_at": now,
                }
            )

        for rec in records:
            chunk.append(rec)
            if len(chunk) >= batch_size:
                flush()
                chunk = []
        if chunk:
            flush()
        if not rows:
            return []
        with self._tx(immediate=True) as conn:
            # Batch 0 is the run's claim: whoever inserts it writes the whole run. A concurrent extract of
            # the same run waits on that row (PostgreSQL) or the write lock (SQLite), then finds it taken.
            if conn.execute(self._insert_ignore(batches, rows[0], ["batch_id"])).rowcount == 1:
                if rows[1:]:
                    conn.execute(batches.insert(), rows[1:])
                return [r["batch_id"] for r in rows]
        return self.batch_ids(entity, run_key)

    def batch_ids(self, entity: str, run_key: str) -> list[str]:
        q = (
            sa.select(batches.c.batch_id)
            .where(batches.c.entity == entity, batches.c.run_key == run_key)
            .order_by(batches.c.seq)
        )
        with self._tx() as conn:
            return [r.batch_id for r in conn.execute(q)]

    def load_batch(self, batch_id: str) -> list[dict[str, Any]]:
        with self._tx() as conn:
            row = conn.execute(sa.select(batches.c.records).where(batches.c.batch_id == batch_id)).first()
        if row is None:
            raise KeyError(f"batch {batch_id} is not in the state store (purged? re-run the extract task)")
        return _loads(row.records)

    def purge_batches(self, older_than: datetime) -> int:
        with self._tx() as conn:
            return conn.execute(batches.delete().where(batches.c.created_at < older_than)).rowcount

    # -- audit -------------------------------------------------------------------------------------
    def audit(self, rows: Sequence[AuditRow]) -> None:
        if not rows:
            return
        now = _now()
        values = []
        for row in rows:
            v = asdict(row)
            v.pop("id")
            v["at"] = row.at or now
            for key in ("read", "sent", "response"):
                v[key] = _dumps(v[key])
            if v["error"]:
                v["error"] = str(v["error"])[:_MAX_ERROR]
            values.append(v)
        with self._tx() as conn:
            conn.execute(audit_log.insert(), values)

    @staticmethod
    def _audit_row(r: Any) -> AuditRow:
        return AuditRow(
            entity=r.entity,
            bc_id=r.bc_id,
            action=r.action,
            document_number=r.document_number,
            issue_key=r.issue_key,
            reason=r.reason,
            read=_loads(r.read),
            sent=_loads(r.sent),
            response=_loads(r.response),
            error=r.error,
            dag_id=r.dag_id,
            run_id=r.run_id,
            task_id=r.task_id,
            map_index=r.map_index,
            try_number=r.try_number,
            at=_aware(r.at),
            id=r.id,
        )

    def query_audit(
        self,
        *,
        entity: str | None = None,
        bc_id: str | None = None,
        issue_key: str | None = None,
        action: str | None = None,
        errors_only: bool = False,
        limit: int = 200,
    ) -> list[AuditRow]:
        q = sa.select(audit_log)
        for col, value in (
            (audit_log.c.entity, entity),
            (audit_log.c.bc_id, bc_id),
            (audit_log.c.issue_key, issue_key),
            (audit_log.c.action, action),
        ):
            if value is not None:
                q = q.where(col == value)
        if errors_only:
            q = q.where(audit_log.c.error.is_not(None))
        q = q.order_by(audit_log.c.id.desc()).limit(limit)
        with self._tx() as conn:
            return [self._audit_row(r) for r in conn.execute(q)]

    def latest_per_record(
        self, *, text_filter: str | None = None, errors_only: bool = False, limit: int = 500
    ) -> list[dict[str, Any]]:
        """The newest audit row of each record with its link (the audit view's table)."""
        latest = (
            sa.select(sa.func.max(audit_log.c.id).label("id"))
            .group_by(audit_log.c.entity, audit_log.c.bc_id)
            .subquery()
        )
        q = (
            sa.select(
                audit_log,
                links.c.issue_key.label("link_issue_key"),
                links.c.issue_id,
                links.c.state.label("link_state"),
                links.c.document_number.label("link_document"),
            )
            .join(latest, audit_log.c.id == latest.c.id)
            .outerjoin(
                links, sa.and_(links.c.entity == audit_log.c.entity, links.c.bc_id == audit_log.c.bc_id)
            )
        )
        if errors_only:
            q = q.where(audit_log.c.error.is_not(None))
        needle = (text_filter or "").strip().lower()
        if needle:
            q = q.where(
                sa.or_(
                    *(
                        sa.func.lower(c).contains(needle, autoescape=True)
                        for c in (
                            audit_log.c.document_number,
                            audit_log.c.issue_key,
                            audit_log.c.bc_id,
                            audit_log.c.error,
                            audit_log.c.entity,
                            links.c.issue_key,
                            links.c.document_number,
                        )
                    )
                )
            )
        q = q.order_by(audit_log.c.id.desc()).limit(limit)
        out = []
        with self._tx() as conn:
            for r in conn.execute(q):
                row = asdict(self._audit_row(r))
                row.pop("read")
                row.update(
                    issue_key=r.issue_key or r.link_issue_key,
                    issue_id=r.issue_id,
                    link_state=r.link_state,
                    document_number=r.document_number or r.link_document,
                )
                out.append(row)
        return out

    # -- tokens ------------------------------------------------------------------------------------
    def get_token(self, name: str) -> TokenRow | None:
        with self._tx() as conn:
            return _token_row(conn.execute(sa.select(tokens).where(tokens.c.name == name)).first())

    def list_tokens(self, prefix: str = "") -> list[TokenRow]:
        """Every token row whose name starts with ``prefix`` (placeholders left out), by name."""
        with self._tx() as conn:
            rows = conn.execute(
                sa.select(tokens)
                .where(tokens.c.name.startswith(prefix, autoescape=True))
                .order_by(tokens.c.name)
            ).all()
        return [t for t in (_token_row(r) for r in rows) if t is not None]

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
            "updated_at": _now(),
        }
        if self.dialect == "postgresql":
            with self._tx() as conn:
                conn.execute(self._insert_ignore(tokens, placeholder, ["name"]))
        with self._tx(immediate=True) as conn:
            if self.dialect == "sqlite":
                conn.execute(self._insert_ignore(tokens, placeholder, ["name"]))
                row = conn.execute(sa.select(tokens).where(tokens.c.name == name)).first()
            else:
                row = conn.execute(sa.select(tokens).where(tokens.c.name == name).with_for_update()).first()
            yield TokenTxn(conn, name, _token_row(row))

    # -- lifecycle: BC subscriptions, Jira webhooks ------------------------------------------------
    def _get_fields(self, table: sa.Table, key_col: str, key: str) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(sa.select(table).where(table.c[key_col] == key)).first()
        if row is None:
            return None
        return {**_loads(row.fields), key_col: key, "updated_at": _aware(row.updated_at)}

    def _put_fields(self, table: sa.Table, key_col: str, key: str, values: dict[str, Any]) -> None:
        current = self._get_fields(table, key_col, key) or {}
        current.pop("updated_at", None)
        current.pop(key_col, None)
        current.update(values)
        with self._tx() as conn:
            conn.execute(
                self._upsert(
                    table, {key_col: key, "fields": _dumps(current), "updated_at": _now()}, [key_col]
                )
            )

    def _list_fields(self, table: sa.Table, key_col: str) -> list[dict[str, Any]]:
        with self._tx() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c[key_col])).all()
        return [{**_loads(r.fields), key_col: r[0], "updated_at": _aware(r.updated_at)} for r in rows]

    def get_subscription(self, resource: str) -> dict[str, Any] | None:
        return self._get_fields(subscriptions, "resource", resource)

    def put_subscription(self, resource: str, **fields: Any) -> None:
        self._put_fields(subscriptions, "resource", resource, fields)

    def delete_subscription(self, resource: str) -> None:
        with self._tx() as conn:
            conn.execute(subscriptions.delete().where(subscriptions.c.resource == resource))

    def list_subscriptions(self) -> list[dict[str, Any]]:
        return self._list_fields(subscriptions, "resource")

    def get_webhook(self, name: str) -> dict[str, Any] | None:
        return self._get_fields(webhooks, "name", name)

    def put_webhook(self, name: str, **fields: Any) -> None:
        self._put_fields(webhooks, "name", name, fields)

    def delete_webhook(self, name: str) -> None:
        with self._tx() as conn:
            conn.execute(webhooks.delete().where(webhooks.c.name == name))

    def list_webhooks(self) -> list[dict[str, Any]]:
        return self._list_fields(webhooks, "name")

    # -- OAuth consent state -----------------------------------------------------------------------
    def put_oauth_state(self, state: str, meta: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(oauth_states.insert().values(state=state, meta=_dumps(meta), created_at=_now()))

    def pop_oauth_state(self, state: str, max_age_s: float = 600) -> dict[str, Any] | None:
        """Consume a consent state once; None when unknown, used or older than ``max_age_s``."""
        with self._tx(immediate=True) as conn:
            row = conn.execute(sa.select(oauth_states).where(oauth_states.c.state == state)).first()
            if row is None:
                return None
            conn.execute(oauth_states.delete().where(oauth_states.c.state == state))
            conn.execute(
                oauth_states.delete().where(oauth_states.c.created_at < _now() - timedelta(seconds=max_age_s))
            )
        if _aware(row.created_at) < _now() - timedelta(seconds=max_age_s):
            return None
        return _loads(row.meta)

    # -- cross-process call limit --------------------------------------------------------------------------
    @contextmanager
    def call_slot(self, key: str, slots: int, timeout: float = 300.0) -> Iterator[int]:
        """Hold one of ``slots`` slots for ``key`` across every process using this store.

        Why: BC allows about 5 concurrent calls per service principal, and mapped tasks run in many
        processes (and, with Celery, on many hosts). PostgreSQL: session advisory locks, one per slot.
        SQLite (one host): an exclusive file lock per slot next to the database file.
        """
        import random
        import time as _time

        with contextlib.ExitStack() as stack:
            try_take = self._slot_taker(key, stack)
            deadline = _time.monotonic() + timeout
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
                if _time.monotonic() > deadline:
                    raise TimeoutError(f"no free call slot for {key!r} in {timeout:.0f}s")
                _time.sleep(0.02)

    def _slot_taker(
        self, key: str, stack: contextlib.ExitStack
    ) -> Callable[[int], Callable[[], None] | None]:
        """A non-blocking ``take(slot)`` returning its release, or None when the slot is busy."""
        digest = hashlib.sha1(key.encode()).hexdigest()  # noqa: S324 - a lock id, not a secret
        if self.dialect == "postgresql":
            conn = stack.enter_context(self.engine.connect())
            group = int(digest[:7], 16)

            def take_pg(slot: int) -> Callable[[], None] | None:
                got = conn.execute(
                    sa.text("SELECT pg_try_advisory_lock(:g, :s)"), {"g": group, "s": slot}
                ).scalar()
                conn.commit()
                if not got:
                    return None

                def release() -> None:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:g, :s)"), {"g": group, "s": slot})
                    conn.commit()

                return release

            return take_pg

        import fcntl

        folder = Path(f"{sa.engine.make_url(self.url).database or 'bc_jira_state.db'}.slots")
        folder.mkdir(parents=True, exist_ok=True)

        def take_file(slot: int) -> Callable[[], None] | None:
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

        return take_file

    # -- diagnostics -------------------------------------------------------------------------------
    def ping(self) -> None:
        with self._tx() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dump_text(self) -> str:
        """Every row of every table as text (tests assert no plaintext secret is stored)."""
        parts = []
        with self._tx() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    parts.append(f"{table.name}: {tuple(row)!r}")
        return "\n".join(parts)

    # -- dialect helpers ---------------------------------------------------------------------------
    def _insert_ignore(self, table: sa.Table, values: Any, keys: list[str]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).values(values).on_conflict_do_nothing(index_elements=keys)

    def _upsert(self, table: sa.Table, values: dict[str, Any], keys: list[str]) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(table).values(values)
        return stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in values if k not in keys}
        )

"""The connector's state store, on PostgreSQL or SQLite: one facade over a repository per concern.

Why a facade: callers hold one ``StateStore`` (built from the ``bc_jira_db`` connection) and need not know
which table a promise rests on; the repositories (``links``, ``events``, ``claims``, ``batches``, ``audit``,
``tokens``, ``effects``, ``records``) keep their SQL together so the two dialects stay honest, and
``schema`` holds every table and row type. Tokens are stored as ciphertext only: ``bc_jira.tokens``
encrypts before anything reaches the store.
"""

from __future__ import annotations

import copy
import dataclasses
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from bc_jira.store import slots as _slots
from bc_jira.store.audit import AuditRepository, BatchKey
from bc_jira.store.batches import BatchRepository
from bc_jira.store.claims import ClaimRepository, Holder
from bc_jira.store.effects import EffectRepository
from bc_jira.store.engine import DEFAULT_CONN_ID, Database, normalize_url, url_from_airflow
from bc_jira.store.events import EventRepository
from bc_jira.store.links import LinkRepository
from bc_jira.store.records import FieldsRepository, OAuthStateRepository
from bc_jira.store.schema import (
    DONE_STATES,
    AuditRow,
    Effect,
    Event,
    Link,
    LinkState,
    TokenRow,
    metadata,
    subscriptions,
    webhooks,
)
from bc_jira.store.tokens import TokenRepository, TokenTxn

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from datetime import datetime, timedelta

_Row = TypeVar("_Row", Link, AuditRow, Effect)

__all__ = [
    "DEFAULT_CONN_ID",
    "DONE_STATES",
    "AuditRow",
    "BatchKey",
    "Effect",
    "Event",
    "Link",
    "LinkState",
    "StateStore",
    "TokenRow",
    "TokenTxn",
]


class StateStore:
    """All persistent state of the connector. Cheap to construct; the schema is created on first use.

    Record-keyed calls (links, claims, batches, effects, audit) act in one BC company: the store's ``company``
    (its store key; :meth:`for_company` gives a view of another). A store not scoped acts in the default
    company ``""`` and lists (audit, pending effects without ids) span every company.
    """

    company: str | None = None
    bc_company_id: str | None = None  # the company's GUID: staged BC events of other companies are not its

    def __init__(self, url: str) -> None:
        self._db = db = Database(url)
        self.url = url
        self.engine = db.engine
        self.dialect = db.dialect
        self._events = EventRepository(db)
        self._links = LinkRepository(db)
        self._effects = EffectRepository(db)
        self._claims = ClaimRepository(db)
        self._batches = BatchRepository(db)
        self._audit_log = AuditRepository(db)
        self._tokens = TokenRepository(db)
        self._oauth_states = OAuthStateRepository(db)
        self._subscriptions = FieldsRepository(db, subscriptions, "resource")
        self._webhooks = FieldsRepository(db, webhooks, "name")

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_url(cls, url: str) -> StateStore:
        return cls(normalize_url(url))

    @classmethod
    def from_airflow(cls, conn_id: str = DEFAULT_CONN_ID) -> StateStore:
        """The ``bc_jira_db`` connection when defined, else a SQLite file in ``$AIRFLOW_HOME``."""
        return cls.from_url(url_from_airflow(conn_id))

    def for_company(self, company: str, bc_company_id: str | None = None) -> StateStore:
        """This store, acting in ``company`` (the store key: ``""`` is the default company); with
        ``bc_company_id``, its pending BC events are that company's only (notifications name it)."""
        view = copy.copy(self)
        view.company = company
        view.bc_company_id = bc_company_id.lower() if bc_company_id else None
        return view

    @property
    def _co(self) -> str:
        return self.company or ""

    def _stamp(self, row: _Row) -> _Row:
        """A row written through a company's view carries that company (unless it names its own)."""
        if self.company and not row.company:
            return dataclasses.replace(row, company=self.company)
        return row

    def describe(self) -> str:
        """Where the store lives, without credentials (health route, logs)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def ensure_schema(self) -> None:
        self._db.ensure_schema()

    # -- events ------------------------------------------------------------
    def stage_event(self, source: str, kind: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
        return self._events.stage_event(source, kind, dedupe_key, payload)

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
        return self._events.stage_delivery(
            source, kind, dedupe_key, payload, delivery_key=delivery_key, body_sha256=body_sha256, ttl=ttl
        )

    def count_deliveries(self) -> int:
        return self._events.count_deliveries()

    def pending_events(self, kind: str | None = None, limit: int = 500) -> list[Event]:
        events = self._events.pending_events(kind, limit)
        if self.bc_company_id is None:
            return events
        return [e for e in events if self._own_event(e)]

    def _own_event(self, event: Event) -> bool:
        """A BC event is this company's when it names its GUID (every BC notification does); others pass."""
        if event.source != "bc":
            return True
        named = str((event.payload or {}).get("company_id") or "").lower()
        return not named or named == self.bc_company_id

    def count_pending(self, kind: str | None = None) -> int:
        return self._events.count_pending(kind)

    def mark_event_failed(self, event_id: int, error: str) -> None:
        self._events.mark_event_failed(event_id, error)

    def delete_event(self, event_id: int) -> None:
        self._events.delete_event(event_id)

    # -- links ------------------------------------------------------------
    def get_links(self, entity: str, bc_ids: Iterable[str]) -> dict[str, Link]:
        return self._links.get_links(entity, bc_ids, self._co)

    def get_link_by_issue(self, issue_id_or_key: str) -> Link | None:
        return self._links.get_link_by_issue(issue_id_or_key)

    def linked_ids(self, entity: str, exclude_states: Iterable[str] = ()) -> list[str]:
        return self._links.linked_ids(entity, exclude_states, self._co)

    def upsert_link(self, link: Link) -> None:
        self._links.upsert_link(self._stamp(link))

    def upsert_links(self, items: Sequence[Link]) -> None:
        self._links.upsert_links([self._stamp(link) for link in items])

    # -- effects ------------------------------------------------------------
    def put_effect(self, effect: Effect) -> Effect:
        return self._effects.put_effect(self._stamp(effect))

    def get_effect(self, effect_key: str) -> Effect | None:
        return self._effects.get_effect(effect_key)

    def effect_attempt(self, effect_key: str) -> None:
        self._effects.effect_attempt(effect_key)

    def finish_effect(
        self, effect_key: str, state: str, *, result: Any = None, error: str | None = None
    ) -> None:
        self._effects.finish_effect(effect_key, state, result=result, error=error)

    def pending_effects(
        self,
        kind: str,
        *,
        entity: str | None = None,
        bc_ids: Iterable[str] | None = None,
        limit: int = 500,
    ) -> list[Effect]:
        company = self.company if self.company is not None else (None if bc_ids is None else "")
        return self._effects.pending_effects(kind, entity=entity, bc_ids=bc_ids, limit=limit, company=company)

    def count_effects(self, kind: str, entity: str, bc_id: str, state: str = "done") -> int:
        return self._effects.count_effects(kind, entity, bc_id, state, self._co)

    # -- claims ------------------------------------------------------------
    def claim_records(
        self, entity: str, bc_ids: Iterable[str], owner: str, try_number: int, now: datetime, ttl_s: float
    ) -> tuple[set[str], dict[str, Holder]]:
        return self._claims.claim_records(entity, bc_ids, owner, try_number, now, ttl_s, self._co)

    def get_claims(self, entity: str, bc_ids: Iterable[str]) -> dict[str, Holder]:
        return self._claims.get_claims(entity, bc_ids, self._co)

    def release_claims(self, entity: str, bc_ids: Iterable[str], owner: str) -> int:
        return self._claims.release_claims(entity, bc_ids, owner, self._co)

    # -- batches ------------------------------------------------------------
    def save_batches(
        self, entity: str, run_key: str, records: Iterable[dict[str, Any]], batch_size: int
    ) -> list[str]:
        return self._batches.save_batches(entity, run_key, records, batch_size, self._co)

    def batch_ids(self, entity: str, run_key: str) -> list[str]:
        return self._batches.batch_ids(entity, run_key, self._co)

    def batch_company(self, batch_id: str) -> str:
        return self._batches.batch_company(batch_id)

    def load_batch(self, batch_id: str) -> list[dict[str, Any]]:
        return self._batches.load_batch(batch_id)

    def purge_batches(self, older_than: datetime) -> int:
        return self._batches.purge_batches(older_than)

    # -- audit ------------------------------------------------------------
    def audit(self, rows: Sequence[AuditRow]) -> None:
        self._audit_log.audit([self._stamp(r) for r in rows])

    def query_audit(
        self,
        *,
        entity: str | None = None,
        bc_id: str | None = None,
        issue_key: str | None = None,
        action: str | None = None,
        errors_only: bool = False,
        before_id: int | None = None,
        limit: int = 200,
        batch: BatchKey | None = None,
        company: str | None = None,
    ) -> list[AuditRow]:
        """``company`` None: the view's company, or every company for a store not scoped."""
        return self._audit_log.query_audit(
            company=company if company is not None else self.company,
            entity=entity,
            bc_id=bc_id,
            issue_key=issue_key,
            action=action,
            errors_only=errors_only,
            before_id=before_id,
            limit=limit,
            batch=batch,
        )

    def latest_per_record(
        self,
        *,
        text_filter: str | None = None,
        errors_only: bool = False,
        entity: str | None = None,
        before_id: int | None = None,
        limit: int = 500,
        company: str | None = None,
    ) -> list[dict[str, Any]]:
        return self._audit_log.latest_per_record(
            text_filter=text_filter,
            errors_only=errors_only,
            entity=entity,
            before_id=before_id,
            limit=limit,
            company=company,
        )

    # -- tokens ------------------------------------------------------------
    def get_token(self, name: str) -> TokenRow | None:
        return self._tokens.get_token(name)

    def list_tokens(self, prefix: str = "") -> list[TokenRow]:
        return self._tokens.list_tokens(prefix)

    @contextmanager
    def token_lock(self, name: str) -> Iterator[TokenTxn]:
        with self._tokens.token_lock(name) as held:
            yield held

    # -- records ------------------------------------------------------------
    def put_oauth_state(self, state: str, meta: dict[str, Any]) -> None:
        self._oauth_states.put_oauth_state(state, meta)

    def pop_oauth_state(self, state: str, max_age_s: float = 600) -> dict[str, Any] | None:
        return self._oauth_states.pop_oauth_state(state, max_age_s)

    # -- records: BC subscriptions, Jira webhooks ------------------------------------------------------
    def get_subscription(self, resource: str) -> dict[str, Any] | None:
        return self._subscriptions.get(resource)

    def put_subscription(self, resource: str, **fields: Any) -> None:
        self._subscriptions.put(resource, fields)

    def delete_subscription(self, resource: str) -> None:
        self._subscriptions.delete(resource)

    def list_subscriptions(self) -> list[dict[str, Any]]:
        return self._subscriptions.list()

    def get_webhook(self, name: str) -> dict[str, Any] | None:
        return self._webhooks.get(name)

    def put_webhook(self, name: str, **fields: Any) -> None:
        self._webhooks.put(name, fields)

    def delete_webhook(self, name: str) -> None:
        self._webhooks.delete(name)

    def list_webhooks(self) -> list[dict[str, Any]]:
        return self._webhooks.list()

    # -- cross-process call limit, diagnostics ---------------------------------------------------------
    @contextmanager
    def call_slot(self, key: str, slots: int, timeout: float = 300.0) -> Iterator[int]:
        """Hold one of ``slots`` slots for ``key`` across every process using this store (``store.slots``)."""
        with _slots.call_slot(self._db, key, slots, timeout) as slot:
            yield slot

    def ping(self) -> None:
        with self._db.tx() as conn:
            conn.execute(sa.text("SELECT 1"))

    def dump_text(self) -> str:
        """Every row of every table as text (tests assert no plaintext secret is stored)."""
        parts = []
        with self._db.tx() as conn:
            for table in metadata.sorted_tables:
                parts += [f"{table.name}: {tuple(row)!r}" for row in conn.execute(sa.select(table))]
        return "\n".join(parts)

"""What the edges need from their collaborators (the state store, the BC and Jira hooks), and nothing more.

Typed as Protocols so each module says which slice of the state store or a hook it uses, and a test can hand
in a small fake; the real ``StateStore``, ``BusinessCentralHook`` and ``JiraCloudHook`` satisfy them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from datetime import datetime, timedelta

    from bc_jira.store import AuditRow


class AuditSink(Protocol):
    def audit(self, rows: Sequence[AuditRow]) -> None: ...


class DeliveryStore(AuditSink, Protocol):
    """Where the intake stages a verified delivery once (a tombstone per delivery outlives the event)."""

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
    ) -> str: ...


class StagedEvent(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def dedupe_key(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def received_at(self) -> datetime: ...


class EventStore(AuditSink, Protocol):
    """The staged events a consumer reads, counts and deletes once their effect is done."""

    def pending_events(self, kind: str | None = None, limit: int = 500) -> Sequence[StagedEvent]: ...
    def count_pending(self, kind: str | None = None) -> int: ...
    def delete_event(self, event_id: int) -> None: ...


class SubscriptionStore(Protocol):
    """The state store's mirror of BC subscriptions, one row per resource."""

    def get_subscription(self, resource: str) -> dict[str, Any] | None: ...
    def put_subscription(self, resource: str, **fields: Any) -> None: ...
    def delete_subscription(self, resource: str) -> None: ...
    def list_subscriptions(self) -> list[dict[str, Any]]: ...


class WebhookStore(Protocol):
    """The state store's rows about Jira webhooks and their deliveries, one row per name."""

    def get_webhook(self, name: str) -> dict[str, Any] | None: ...
    def put_webhook(self, name: str, **fields: Any) -> None: ...
    def list_webhooks(self) -> list[dict[str, Any]]: ...


class StoredToken(Protocol):
    @property
    def refresh_token_enc(self) -> str | None: ...
    @property
    def expires_at(self) -> float | None: ...
    @property
    def meta(self) -> dict[str, Any]: ...
    @property
    def updated_at(self) -> datetime | None: ...


class HealthStore(SubscriptionStore, WebhookStore, Protocol):
    """Everything the health route reads."""

    def ping(self) -> None: ...
    def describe(self) -> str: ...
    def get_token(self, name: str) -> StoredToken | None: ...
    def count_pending(self, kind: str | None = None) -> int: ...
    def latest_per_record(
        self, *, errors_only: bool = False, limit: int = 500, company: str | None = None
    ) -> list[dict[str, Any]]: ...


class BcSettings(Protocol):
    @property
    def client_state(self) -> str | None: ...


class BcSubscriptions(Protocol):
    """The BC hook's subscription calls (``BusinessCentralHook``)."""

    @property
    def settings(self) -> BcSettings: ...
    def subscription_resource(self, entity: str) -> str: ...
    def list_subscriptions(self) -> list[dict[str, Any]]: ...
    def create_subscription(
        self, notification_url: str, entity_or_resource: str, client_state: str | None = None
    ) -> dict[str, Any]: ...
    def renew_subscription(
        self,
        subscription_id: str,
        etag: str | None = None,
        changes: Mapping[str, Any] | None = None,
        *,
        current: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]: ...
    def delete_subscription(self, subscription_id: str, etag: str | None = None) -> bool: ...


class JiraWebhooks(Protocol):
    """The Jira hook's dynamic-webhook calls (``JiraCloudHook``, OAuth 2.0 apps only)."""

    def list_webhooks(self) -> list[dict[str, Any]]: ...
    def register_webhooks(self, url: str, webhooks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]: ...
    def refresh_webhooks(self, webhook_ids: Sequence[int]) -> int: ...
    def delete_webhooks(self, webhook_ids: Sequence[int]) -> None: ...

"""What every step of the BC -> Jira sync shares: run identity, counts, errors, link states."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira.sync import effects
from bc_jira.timeutil import iso as iso
from bc_jira.timeutil import parse_ts as parse_ts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    from bc_jira.config import Config, EntityConfig
    from bc_jira.mapping import FieldIds, IssueDraft
    from bc_jira.store import AuditRow, Effect, Link
    from bc_jira.sync.jira_ops import JiraOps

log = logging.getLogger(__name__)


STALE = "stale"  # audit action: the batch's record is older than the version already synced
CLAIMED = "claimed"  # audit action: another live run holds the record
_MIN = datetime.min.replace(tzinfo=UTC)
Texts = tuple[str | None, str | None]  # hashes of the summary and description last written (None: unknown)


class SyncError(RuntimeError):
    """Some records of a batch failed; the batch is safe to retry (done records are skipped by hash)."""


class _NotConfirmed(RuntimeError):
    """An owed comment is not known to exist yet (failed, or its answer was lost); the retry settles it."""


# -- run context ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    dag_id: str | None = None
    run_id: str = "manual"
    task_id: str | None = None
    map_index: int | None = None
    try_number: int | None = None
    run_type: str = "manual"
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None

    @property
    def is_backfill(self) -> bool:
        return self.run_type == "backfill"


def run_info(context: Mapping[str, Any]) -> RunInfo:
    """RunInfo from an Airflow task context (``get_current_context()``)."""
    ti = context.get("ti") or context.get("task_instance")
    dr = context.get("dag_run")
    run_type = getattr(dr, "run_type", None) or "manual"
    run_type = getattr(run_type, "value", run_type)
    map_index = getattr(ti, "map_index", None)
    return RunInfo(
        dag_id=getattr(ti, "dag_id", None) or getattr(dr, "dag_id", None),
        run_id=getattr(ti, "run_id", None) or getattr(dr, "run_id", None) or "manual",
        task_id=getattr(ti, "task_id", None),
        map_index=map_index if map_index is not None and map_index >= 0 else None,
        try_number=getattr(ti, "try_number", None),
        run_type=str(run_type).lower(),
        data_interval_start=context.get("data_interval_start") or getattr(dr, "data_interval_start", None),
        data_interval_end=context.get("data_interval_end") or getattr(dr, "data_interval_end", None),
    )


@dataclass
class Counts:
    read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    resolved: int = 0
    linked: int = 0  # existing issue found by JQL (link table did not know it)
    skipped: int = 0
    failed: int = 0
    stale: int = 0  # older than the version already synced: nothing sent
    claimed: int = 0  # held by another live run: that run owns it
    reopened: int = 0  # needed a human step again after the episode closed: reopened (bc_jira.sync.reopen)

    def line(self) -> str:
        parts = [
            f"read {self.read}",
            f"created {self.created}",
            f"updated {self.updated}",
            f"unchanged {self.unchanged}",
        ]
        for name in ("resolved", "reopened", "linked", "skipped", "stale", "claimed", "failed"):
            if getattr(self, name):
                parts.append(f"{name} {getattr(self, name)}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _chunks(seq: Sequence[Any], n: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _short(value: Any, limit: int = 2000) -> Any:
    """Bound what goes into the audit row (the read record is kept whole; answers are trimmed)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    return value


@dataclass
class _Outcome:
    action: str
    issue_key: str | None = None
    reason: str | None = None
    sent: Any = None
    response: Any = None
    error: str | None = None


class LinkStore(Protocol):
    """The link, claim and batch rows an upsert reads and writes (``bc_jira.store.StateStore``)."""

    def get_links(self, entity: str, bc_ids: Iterable[str]) -> dict[str, Link]: ...
    def upsert_link(self, link: Link) -> None: ...
    def claim_records(
        self, entity: str, bc_ids: Iterable[str], owner: str, try_number: int, now: datetime, ttl_s: float
    ) -> tuple[set[str], dict[str, tuple[str, int, datetime | None]]]: ...
    def release_claims(self, entity: str, bc_ids: Iterable[str], owner: str) -> int: ...


class EffectStore(Protocol):
    """Intents of effects that must happen exactly once (``bc_jira_effects``)."""

    def put_effect(self, effect: Effect) -> Effect: ...
    def effect_attempt(self, effect_key: str) -> None: ...
    def finish_effect(
        self, effect_key: str, state: str, *, result: Any = None, error: str | None = None
    ) -> None: ...
    def pending_effects(
        self, kind: str, *, entity: str | None = None, bc_ids: Iterable[str] | None = None, limit: int = 500
    ) -> list[Effect]: ...
    def count_effects(self, kind: str, entity: str, bc_id: str, state: str = "done") -> int: ...
    def get_effect(self, effect_key: str) -> Effect | None: ...


class AuditSink(Protocol):
    """Where every decision is recorded (``bc_jira_audit``)."""

    def audit(self, rows: Sequence[AuditRow]) -> None: ...


class UpsertStore(LinkStore, EffectStore, AuditSink, Protocol):
    """Everything the upsert needs of the state store."""


class UpsertBase:
    """What the upsert's parts share: the batch's collaborators, the queued link writes, effect audits."""

    cfg: Config
    entity: str
    ids: FieldIds
    jira: JiraOps
    store: UpsertStore
    run: RunInfo
    users: Mapping[str, str]
    sleep: Callable[[float], None]
    clock: Callable[[], datetime]
    link_cls: Any
    audit_cls: Any
    _links_out: list[Any]

    @property
    def ecfg(self) -> EntityConfig:
        return self.cfg.entity(self.entity)

    def _heartbeat(self) -> None:
        """Refresh this task's claims (see :mod:`bc_jira.sync.claims`)."""

    def _comment_effects(self) -> effects.CommentEffects:
        return effects.CommentEffects(
            store=self.store,
            post=self.jira.comment,
            comments=lambda issue: self.jira.list_comments(issue),
            audit=lambda suffix, eff, reason, sent, response, error: self._audit_effect(
                f"{eff.kind.removesuffix('_comment')}_{suffix}", eff, reason, sent, response, error
            ),
        )

    def _audit_effect(
        self,
        action: str,
        eff: Any,
        reason: str,
        sent: Any = None,
        response: Any = None,
        error: str | None = None,
    ) -> None:
        self.store.audit(
            [
                self.audit_cls(
                    entity=self.entity,
                    bc_id=eff.bc_id,
                    action=action,
                    document_number=(eff.payload or {}).get("document_number"),
                    issue_key=eff.issue_key,
                    reason=reason,
                    sent=sent,
                    response=response,
                    error=error,
                    dag_id=self.run.dag_id,
                    run_id=self.run.run_id,
                    task_id=self.run.task_id,
                    map_index=self.run.map_index,
                    try_number=self.run.try_number,
                )
            ]
        )

    def _link(
        self,
        draft: IssueDraft,
        issue: Mapping[str, Any],
        state: str,
        content_hash: str,
        texts: Texts = (None, None),
    ) -> None:
        self._save_link(draft, str(issue["id"]), issue["key"], state, content_hash, texts)

    def _save_link(
        self,
        draft: IssueDraft,
        issue_id: str | None,
        issue_key: str | None,
        state: str,
        content_hash: str,
        texts: Texts = (None, None),
    ) -> None:
        """Queue a link write; :meth:`_flush_links` writes the queue (in one transaction when it can).
        ``texts``: the hashes of the summary and description last written (``bc_jira.sync.edits``)."""
        self._links_out.append(
            self.link_cls(
                entity=self.entity,
                bc_id=draft.bc_id,
                document_number=draft.document_number,
                issue_id=issue_id,
                issue_key=issue_key,
                content_hash=content_hash,
                bc_last_modified=draft.last_modified,
                state=state,
                updated_at=self.clock(),
                summary_hash=texts[0],
                description_hash=texts[1],
            )
        )

    def _flush_links(self) -> None:
        queued, self._links_out = self._links_out, []
        if not queued:
            return
        bulk = getattr(self.store, "upsert_links", None)
        if callable(bulk):
            bulk(queued)
        else:
            for link in queued:
                self.store.upsert_link(link)

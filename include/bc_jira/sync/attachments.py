"""The vendor's documents: files attached to a BC record go onto its Jira issue, each exactly once.

Jira has no idempotency key for ``POST /issue/{id}/attachments`` and the connector never repeats a POST
whose answer was lost (``bc_jira.http``). So an upload is an *effect with an intent* (``bc_jira_effects``,
like the owed comments of :mod:`bc_jira.sync.effects`):

1. its key is a pure function of (record, issue, BC attachment id), so retries, clears and later runs of a
   changed invoice plan the same key, and a done key costs no call at all;
2. the file is uploaded under a **stable name** that carries the BC attachment id,
   ``<stem> [bc-<attachment id>]<ext>``, so before uploading, the issue's attachments (``fields.attachment``
   of ``POST /issue/bulkfetch``, 100 issues a call, not the lagging search) are read and a file already
   there (an answer lost after Jira stored it, or another state store made it) is recorded, not uploaded;
3. a file over ``attachments.max_bytes`` (or over Jira's own limit: 413), or of a type not in
   ``attachments.allowed_types``, gets one comment with the BC link instead (a comment effect).

:func:`plan_files` and :func:`decide` are pure; :class:`AttachmentSync` executes their answer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira import adf
from bc_jira.entities import has_attachments
from bc_jira.http import ApiError, ClientError, NotFoundError, RateLimited
from bc_jira.mapping import bc_link
from bc_jira.store.schema import LinkState
from bc_jira.sync import effects
from bc_jira.sync.base import RunInfo, SyncError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

log = logging.getLogger(__name__)

UPLOAD_KIND = "attachment"
COMMENT_KIND = "attachment_comment"
PENDING, DONE, FAILED = effects.PENDING, effects.DONE, effects.FAILED
# Link states whose issue exists (a pending create may not; a failed one does not).
_WITH_ISSUE = {
    LinkState.LINKED,
    LinkState.RESOLVING,
    LinkState.RESOLVED,
    LinkState.WRITTEN_BACK,
    LinkState.DONE,
}


@dataclass(frozen=True)
class File:
    """One BC attachment of a record and the issue it belongs on."""

    entity: str
    bc_id: str
    document_number: str | None
    issue_id: str
    issue_key: str | None
    attachment_id: str
    file_name: str
    size: int

    @property
    def jira_name(self) -> str:
        return stable_name(self.file_name, self.attachment_id)

    @property
    def upload_key(self) -> str:
        return effects.effect_key(UPLOAD_KIND, self.entity, self.bc_id, self.issue_id, self.attachment_id)

    @property
    def comment_key(self) -> str:
        return effects.effect_key(COMMENT_KIND, self.entity, self.bc_id, self.issue_id, self.attachment_id)


def stable_name(file_name: str, attachment_id: str) -> str:
    """The name on the Jira issue: ``Invoice 1001 [bc-<id>].pdf`` (the extension kept, so Jira's type and
    preview still work); what a retry looks for after a lost answer."""
    stem, ext = os.path.splitext(file_name.strip() or "attachment")
    return f"{stem} [bc-{attachment_id.lower()}]{ext}"


def refusal(file: File, cfg: Any) -> str | None:
    """Why ``file`` is not uploaded but commented (too big, a type not allowed), or None."""
    att = cfg.attachments
    if file.size > att.max_bytes:
        return f"{_size(file.size)} is over the {_size(att.max_bytes)} limit for attachments"
    if not att.allows(file.file_name):
        return f"its type {att.mime_type(file.file_name)} is not in attachments.allowed_types"
    return None


def plan_files(
    cfg: Any, entity: str, records: Iterable[Mapping[str, Any]], links: Mapping[str, Any]
) -> list[File]:
    """The files of the batch's records whose issue exists, in batch order (pure)."""
    att = cfg.attachments
    if not att.enabled or not has_attachments(entity):
        return []
    out: list[File] = []
    for rec in records:
        link = links.get(rec["id"])
        if link is None or link.issue_id is None or link.state not in _WITH_ISSUE:
            continue
        for row in rec.get(att.source) or []:
            if not row.get("id"):
                continue
            out.append(
                File(
                    entity=entity,
                    bc_id=rec["id"],
                    document_number=rec.get("number"),
                    issue_id=str(link.issue_id),
                    issue_key=link.issue_key,
                    attachment_id=str(row["id"]),
                    file_name=str(row.get("fileName") or "attachment"),
                    size=int(row.get("byteSize") or 0),
                )
            )
    return out


@dataclass(frozen=True)
class Decision:
    file: File
    action: str  # upload | found | comment | done
    reason: str = ""
    jira_id: str | None = None


def decide(
    file: File, upload: Any | None, on_issue: Mapping[str, str] | None, why_not: str | None
) -> Decision:
    """What to do with one file (pure): its upload effect, the issue's attachments (stable name -> Jira id;
    None when not read) and why it may not be uploaded."""
    if upload is not None and upload.state == DONE:
        return Decision(file, "done", jira_id=(upload.result or {}).get("jira_attachment_id"))
    if on_issue is not None and file.jira_name in on_issue:
        return Decision(file, "found", "already on the issue", on_issue[file.jira_name])
    if why_not is not None:
        return Decision(file, "comment", why_not)
    if upload is not None and upload.state == FAILED:
        return Decision(file, "comment", upload.error or "Jira refused the upload")
    return Decision(file, "upload")


class AttachmentJira(Protocol):
    def add_attachment(self, issue: str, file_name: str, data: bytes, mime_type: str) -> dict[str, Any]: ...
    def issue_attachments(self, issue_ids: Sequence[str]) -> Mapping[str, list[dict[str, Any]]]: ...
    def add_comment(self, issue: str, body_adf: Mapping[str, Any]) -> dict[str, Any]: ...
    def iter_comments(self, issue: str, *, newest_first: bool = True) -> Iterable[dict[str, Any]]: ...


class AttachmentBC(Protocol):
    def attachment_content(self, entity_set: str, attachment_id: str) -> bytes: ...


@dataclass
class Counts:
    uploaded: int = 0
    found: int = 0
    already: int = 0
    commented: int = 0
    failed: int = 0
    unconfirmed: int = 0
    bytes: int = 0
    lookups: int = 0  # reads of the issues' attachments (bulkfetch calls, 100 issues each)

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class AttachmentSync:
    """Attach the files of one stored batch (the ``attach`` mapped task); clearing it replays the batch."""

    cfg: Any
    entity: str
    jira: AttachmentJira
    bc: AttachmentBC
    store: Any  # bc_jira.store.StateStore
    run: RunInfo = field(default_factory=RunInfo)
    audit_cls: Any = None
    counts: Counts = field(default_factory=Counts)
    _records: dict[str, Mapping[str, Any]] = field(default_factory=dict)

    def attach(self, records: Sequence[Mapping[str, Any]]) -> Counts:
        self._records = {r["id"]: r for r in records}
        files = plan_files(
            self.cfg, self.entity, records, self.store.get_links(self.entity, list(self._records))
        )
        uploads = {f.upload_key: self.store.put_effect(self._intent(f)) for f in files}
        open_files = [f for f in files if uploads[f.upload_key].state != DONE]
        self.counts.already = len(files) - len(open_files)
        on_issue = self._on_issues(open_files, uploads)
        for f in open_files:
            d = decide(f, uploads[f.upload_key], on_issue.get(f.issue_id), refusal(f, self.cfg))
            self._act(d, uploads[f.upload_key])
        if self.counts.unconfirmed or self.counts.failed:
            raise SyncError(
                f"{self.entity}: {self.counts.unconfirmed} attachment(s) not confirmed and "
                f"{self.counts.failed} not made yet; the retry looks for them on the issue before uploading"
            )
        return self.counts

    # -- reading ----------------------------------------------------------------------------------------
    def _on_issues(self, files: Sequence[File], uploads: Mapping[str, Any]) -> dict[str, dict[str, str]]:
        """Issue id -> {attachment file name: Jira id}, for the issues that may get a file (one bulkfetch per
        100 issues; none when every file is done or goes the comment way)."""
        wanted = [
            f.issue_id
            for f in files
            if refusal(f, self.cfg) is None and uploads[f.upload_key].state != FAILED
        ]
        if not wanted:
            return {}
        issues = list(dict.fromkeys(wanted))
        self.counts.lookups += -(-len(issues) // 100)
        found = self.jira.issue_attachments(issues)
        return {
            issue: {str(a.get("filename")): str(a.get("id")) for a in atts} for issue, atts in found.items()
        }

    def _intent(self, f: File) -> Any:
        from bc_jira.store import Effect

        payload = {"file_name": f.file_name, "jira_name": f.jira_name, "size": f.size}
        payload |= {"attachment_id": f.attachment_id, "document_number": f.document_number}
        return Effect(f.upload_key, UPLOAD_KIND, f.entity, f.bc_id, f.issue_id, f.issue_key, payload)

    # -- acting -----------------------------------------------------------------------------------------
    def _act(self, d: Decision, upload: Any) -> None:
        f = d.file
        if d.action == "found":
            result = {"jira_attachment_id": d.jira_id, "size": f.size, "name": f.jira_name, "found": True}
            self.store.finish_effect(f.upload_key, DONE, result=result)
            self.counts.found += 1
            self._audit(
                "attachment_found",
                f,
                f"{f.jira_name} is already on the issue (an earlier answer was lost, or another run made it)",
                None,
                result,
            )
        elif d.action == "comment":
            if upload.state == PENDING:  # never uploaded: the comment is this file's one effect
                self.store.finish_effect(f.upload_key, FAILED, error=d.reason)
            self._comment(f, d.reason)
        elif d.action == "upload":
            self._upload(f)

    def _upload(self, f: File) -> None:
        mime = self.cfg.attachments.mime_type(f.file_name)
        try:
            data = self.bc.attachment_content(self.cfg.attachments.source, f.attachment_id)
        except NotFoundError as exc:  # deleted in BC since the read: nothing to attach
            self.store.finish_effect(f.upload_key, FAILED, error=f"gone from BC: {exc}")
            self._audit("attachment_failed", f, f"{f.file_name} no longer exists in BC", None, None, str(exc))
            return
        if len(data) > self.cfg.attachments.max_bytes:
            self.store.finish_effect(f.upload_key, FAILED, error="over attachments.max_bytes")
            self._comment(f, f"{_size(len(data))} is over the {_size(self.cfg.attachments.max_bytes)} limit")
            return
        sent = {"file_name": f.jira_name, "size": len(data), "mime_type": mime}
        self.store.effect_attempt(f.upload_key)  # the intent of this very call, before Jira sees it
        try:
            answer = self.jira.add_attachment(f.issue_id, f.jira_name, data, mime)
        except ApiError as exc:
            self._upload_failed(f, exc, sent)
            return
        result = {"jira_attachment_id": str(answer.get("id")), "size": len(data), "name": f.jira_name}
        self.store.finish_effect(f.upload_key, DONE, result=result)
        self.counts.uploaded += 1
        self.counts.bytes += len(data)
        self._audit("attachment", f, f"{f.jira_name} ({_size(len(data))}) attached", sent, result)

    def _upload_failed(self, f: File, exc: ApiError, sent: Mapping[str, Any]) -> None:
        if exc.status == 413:  # over Jira's own limit: the BC link instead
            self.store.finish_effect(f.upload_key, FAILED, error=f"over Jira's attachment size limit ({exc})")
            self._comment(f, "it is over Jira's attachment size limit")
            return
        if effects.certainly_not_made(exc):
            terminal = isinstance(exc, ClientError) and not isinstance(exc, RateLimited)
            self.store.finish_effect(f.upload_key, FAILED if terminal else PENDING, error=str(exc))
            self.counts.failed += 0 if terminal else 1
            why = "Jira refused it; not retried" if terminal else "not made; the retry makes it"
            self._audit("attachment_failed", f, f"{f.jira_name} ({why})", sent, None, str(exc))
            return
        self.store.finish_effect(f.upload_key, PENDING, error=str(exc))
        self.counts.unconfirmed += 1
        self._audit(
            "attachment_unconfirmed",
            f,
            f"{f.jira_name}: answer lost; the retry looks for it on the issue before uploading",
            sent,
            None,
            str(exc),
        )
        log.warning("%s: upload answer lost (%s); will look for %s first", f.issue_key, exc, f.jira_name)

    def _comment(self, f: File, reason: str) -> None:
        record = self._records.get(f.bc_id) or {"number": f.document_number}
        link = bc_link(self.cfg, self.entity, record)
        body = adf.doc(
            adf.paragraph(
                "The vendor's file ",
                adf.text(f.file_name, strong=True),
                f" ({_size(f.size)}) is not attached here: {reason}. ",
                adf.link("Open it in Business Central", link)
                if link
                else "Open the document in Business Central.",
                " (bc-jira)",
            )
        )
        comments = effects.CommentEffects(
            store=self.store,
            post=self.jira.add_comment,
            comments=lambda issue: self.jira.iter_comments(issue, newest_first=True),
            audit=lambda suffix, eff, why, sent, response, error: self._audit(
                f"attachment_{suffix}", f, why, sent, response, error
            ),
        )
        eff = comments.plan(
            f.comment_key,
            kind=COMMENT_KIND,
            entity=f.entity,
            bc_id=f.bc_id,
            issue=f.issue_id,
            issue_key=f.issue_key,
            body=body,
            context={"text": f"{f.file_name} not attached: {reason}", "document_number": f.document_number},
        )
        result = comments.make(eff)
        if result.exists:
            self.counts.commented += 1 if result.state == "made" else 0
        elif result.state == "unconfirmed":
            self.counts.unconfirmed += 1
        elif not result.terminal:
            self.counts.failed += 1

    def _audit(
        self,
        action: str,
        f: File,
        reason: str,
        sent: Any = None,
        response: Any = None,
        error: str | None = None,
    ) -> None:
        from bc_jira.store import AuditRow

        cls = self.audit_cls or AuditRow
        r = self.run
        self.store.audit(
            [
                cls(
                    entity=self.entity,
                    bc_id=f.bc_id,
                    action=action,
                    document_number=f.document_number,
                    issue_key=f.issue_key,
                    reason=reason,
                    sent=sent,
                    response=response,
                    error=error,
                    dag_id=r.dag_id,
                    run_id=r.run_id,
                    task_id=r.task_id,
                    map_index=r.map_index,
                    try_number=r.try_number,
                )
            ]
        )


def _size(n: int) -> str:
    for unit, step in (("MB", 1024 * 1024), ("KB", 1024)):
        if n >= step:
            return f"{n / step:.1f} {unit}"
    return f"{n} bytes"

"""Comments the connector owes, made exactly once, whatever answers are lost.

Jira has no idempotency key for ``POST /issue/{id}/comment``: a comment whose answer was lost after Jira
committed it is indistinguishable from one that never arrived, and posting again makes a second one. So a
comment is an *effect with an intent*, like a create:

1. its key is a pure function of what it is for (kind, record, issue, outcome, episode), so every retry, clear
   or later run plans the same key;
2. the intent is a ``bc_jira_effects`` row written before the call, and ``attempts`` is raised right before
   each call;
3. when a row is still pending with ``attempts > 0`` an earlier call may have reached Jira, so the comment
   list (``GET /issue/{id}/comment``, newest first; not the lagging search) is read for the key's **marker**
   before posting again. The marker is a text node in the comment's ADF (``bc-jira ref <key>``): Jira keeps
   ADF text as sent, and the comment list returns bodies but not comment properties (its ``expand`` takes
   only ``renderedBody``), so a marker in the body is the one-call way to recognise our comment.

Audit reflects what is known: ``<prefix>comment`` once the comment exists (made, or found after a lost
answer), ``<prefix>comment_unconfirmed`` when the answer was lost and the comment may exist,
``<prefix>comment_failed`` when Jira certainly did not make it (4xx, 429/503 after retries).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bc_jira.http import ApiError, AuthError, ClientError, NotFoundError, RateLimited, ServerError
from bc_jira.timeutil import try_parse_ts

log = logging.getLogger(__name__)

PENDING, DONE, FAILED = "pending", "done", "failed"
MARKER_PREFIX = "bc-jira ref "
# Stop reading older comments this long before the intent was written (clocks of Jira and the worker differ).
LOOKUP_SKEW = timedelta(hours=1)

Doc = dict[str, Any]


def effect_key(*parts: Any) -> str:
    """A short stable key for an effect: the same parts always give the same key."""
    raw = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def marker(key: str) -> str:
    return f"{MARKER_PREFIX}{key}"


def with_marker(doc: Doc, key: str) -> Doc:
    """``doc`` with the effect's marker: "(bc-jira)" at the end of the last paragraph becomes
    "(bc-jira ref <key>)"; otherwise the marker is appended as its own text."""
    out = {**doc, "content": [dict(n) for n in doc.get("content") or []]}
    tag = f"({marker(key)})"
    for node in reversed(out["content"]):
        if node.get("type") != "paragraph":
            continue
        inline = [dict(n) for n in node.get("content") or []]
        last = inline[-1] if inline else None
        if (
            last is not None
            and last.get("type") == "text"
            and str(last.get("text", "")).endswith("(bc-jira)")
        ):
            last["text"] = str(last["text"])[: -len("(bc-jira)")] + tag
        else:
            inline.append({"type": "text", "text": f" {tag}"})
        node["content"] = inline
        return out
    out["content"].append({"type": "paragraph", "content": [{"type": "text", "text": tag}]})
    return out


def _texts(node: Any) -> Iterable[str]:
    if isinstance(node, Mapping):
        if node.get("type") == "text" and isinstance(node.get("text"), str):
            yield node["text"]
        for child in node.get("content") or []:
            yield from _texts(child)


def has_marker(comment_body: Any, key: str) -> bool:
    want = marker(key)
    return any(want in t for t in _texts(comment_body))


def _created(comment: Mapping[str, Any]) -> datetime | None:
    """When Jira says the comment was made (``2026-12-01T10:00:00.000+0000``); None when unreadable."""
    return try_parse_ts(comment.get("created"))


def certainly_not_made(exc: ApiError) -> bool:
    """Jira refused the request (4xx) or never processed it (429/503): the comment does not exist."""
    if isinstance(exc, RateLimited | NotFoundError | AuthError | ClientError):
        return True
    return isinstance(exc, ServerError) and exc.status == 503


@dataclass
class CommentResult:
    state: str  # made | found | already | unconfirmed | failed
    comment_id: str | None = None
    error: str | None = None
    terminal: bool = False  # failed for good (Jira refused it: 4xx): retrying cannot help

    @property
    def settled(self) -> bool:
        """Nothing more will happen to this comment: it exists, or Jira refused it for good."""
        return self.exists or self.terminal

    @property
    def exists(self) -> bool:
        return self.state in ("made", "found", "already")


# audit(action_suffix, effect, reason, sent, response, error)
AuditFn = Callable[[str, Any, str, Any, Any, str | None], None]


@dataclass
class CommentEffects:
    """Make one owed comment exactly once. ``post``/``comments`` are the Jira calls; ``audit`` records."""

    store: Any  # bc_jira.store.StateStore
    post: Callable[[str, Doc], Any]  # (issue id or key, ADF) -> the created comment
    comments: Callable[[str], Iterable[Mapping[str, Any]]]  # issue id or key -> comments, newest first
    audit: AuditFn

    def plan(
        self,
        key: str,
        *,
        kind: str,
        entity: str,
        bc_id: str,
        issue: str,
        issue_key: str | None,
        body: Doc,
        context: Mapping[str, Any] | None = None,
    ) -> Any:
        """Write the intent (once per key); returns the stored effect row."""
        from bc_jira.store import Effect

        payload = {"body": with_marker(body, key), **(dict(context) if context else {})}
        return self.store.put_effect(
            Effect(key, kind, entity, bc_id, issue_id=issue, issue_key=issue_key, payload=payload)
        )

    def make(self, effect: Any, *, look_first: bool = False) -> CommentResult:
        """Make the planned comment unless it exists; never twice, even after a lost answer.

        ``look_first``: read the comments even before the first attempt (for rare comments whose key does not
        depend on the state store, so a restored or second store still finds what an earlier one made).
        """
        if effect.state == DONE:
            return CommentResult("already", (effect.result or {}).get("comment_id"))
        if effect.state == FAILED:
            return CommentResult("failed", error=effect.error, terminal=True)
        if effect.attempts > 0 or look_first:
            seen = self._look(effect)
            if seen is not None:
                return seen
        return self._post(effect)

    def _look(self, effect: Any) -> CommentResult | None:
        """The comment found on the issue (an earlier answer lost, or another store made it); None: absent."""
        issue = effect.issue_id or effect.issue_key
        what = str(effect.payload.get("text") or "comment")
        try:
            # a first look (another store may have made it at any time before) reads every comment
            found = self._find(issue, effect, whole_history=not effect.attempts)
        except ApiError as exc:
            self.store.finish_effect(effect.effect_key, PENDING, error=str(exc))
            self.audit(
                "comment_unconfirmed",
                effect,
                "could not read the comments to look for it",
                None,
                None,
                str(exc),
            )
            return CommentResult("unconfirmed", error=str(exc))
        if found is None:
            return None
        cid = str(found.get("id") or "") or None
        self.store.finish_effect(effect.effect_key, DONE, result={"comment_id": cid, "found": True})
        self.audit(
            "comment",
            effect,
            f"{what} (found on the issue: "
            + ("an earlier answer was lost)" if effect.attempts else "made before, by another state store)"),
            None,
            {"id": cid},
            None,
        )
        return CommentResult("found", cid)

    def _post(self, effect: Any) -> CommentResult:
        """Post the comment, its intent recorded first; a lost answer leaves it to be looked for."""
        body = effect.payload["body"]
        issue = effect.issue_id or effect.issue_key
        what = str(effect.payload.get("text") or "comment")
        self.store.effect_attempt(effect.effect_key)  # the intent of this very call, before Jira sees it
        try:
            answer = self.post(issue, body)
        except ApiError as exc:
            if certainly_not_made(exc):
                terminal = isinstance(exc, ClientError | NotFoundError) and not isinstance(exc, RateLimited)
                self.store.finish_effect(effect.effect_key, FAILED if terminal else PENDING, error=str(exc))
                why = "Jira refused it; not retried" if terminal else "not made; a later run makes it"
                self.audit(
                    "comment_failed",
                    effect,
                    f"{what} ({why})",
                    body,
                    None,
                    str(exc),
                )
                log.warning("%s: comment not made (%s): %s", issue, why, exc)
                return CommentResult("failed", error=str(exc), terminal=terminal)
            self.store.finish_effect(effect.effect_key, PENDING, error=str(exc))
            self.audit(
                "comment_unconfirmed",
                effect,
                f"{what} (answer lost: it may exist; a later run looks for it before posting)",
                body,
                None,
                str(exc),
            )
            log.warning("%s: comment answer lost (%s); will look for it before posting again", issue, exc)
            return CommentResult("unconfirmed", error=str(exc))
        cid = str((answer or {}).get("id") or "") or None if isinstance(answer, Mapping) else None
        self.store.finish_effect(effect.effect_key, DONE, result={"comment_id": cid})
        self.audit("comment", effect, what, body, {"id": cid}, None)
        return CommentResult("made", cid)

    def _find(self, issue: str, effect: Any, *, whole_history: bool = False) -> Mapping[str, Any] | None:
        since = (effect.created_at - LOOKUP_SKEW) if effect.created_at and not whole_history else None
        for c in self.comments(issue):
            if has_marker(c.get("body"), effect.effect_key):
                return c
            created = _created(c)
            if since is not None and created is not None and created < since:
                return None  # newest first: everything further is older than our intent
        return None

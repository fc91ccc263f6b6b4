"""The pure parts of owed comments: stable keys, the ADF marker, finding it, certain failures."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from bc_jira import adf
from bc_jira.http import ClientError, NotFoundError, RateLimited, ServerError, TransportError
from bc_jira.sync.effects import (
    CommentEffects,
    certainly_not_made,
    effect_key,
    has_marker,
    marker,
    with_marker,
)


def test_effect_key_is_stable_and_distinguishes_parts() -> None:
    assert effect_key("resolve_comment", "vendors", "v1", "10001", 0) == effect_key(
        "resolve_comment", "vendors", "v1", "10001", 0
    )
    assert effect_key("resolve_comment", "vendors", "v1", "10001", 0) != effect_key(
        "resolve_comment", "vendors", "v1", "10001", 1
    )
    assert effect_key("a", "bc") != effect_key("ab", "c")  # parts are separated, not concatenated
    assert len(effect_key("x")) == 20


def test_marker_replaces_the_bc_jira_tag_or_is_appended() -> None:
    tagged = adf.doc(adf.paragraph("Vendor V1 is no longer blocked.", " (bc-jira)"))
    out = with_marker(tagged, "k1")
    assert out["content"][-1]["content"][-1]["text"] == f" ({marker('k1')})"
    assert tagged["content"][-1]["content"][-1]["text"] == " (bc-jira)"  # the input is not changed
    plain = adf.doc(adf.paragraph(adf.text("Business Central: ", strong=True), "posted"))
    out = with_marker(plain, "k2")
    assert [n["text"] for n in out["content"][0]["content"]][-1] == " (bc-jira ref k2)"
    assert has_marker(out, "k2")
    assert not has_marker(out, "k1")
    assert not has_marker(None, "k2")
    nested = {"type": "doc", "version": 1, "content": [{"type": "panel", "content": [out["content"][0]]}]}
    assert has_marker(nested, "k2")


def test_which_failures_certainly_did_not_make_the_comment() -> None:
    def err(cls: type, status: int | None) -> object:
        return cls("jira", "POST", "https://x/comment", status, None, "m")

    assert certainly_not_made(err(ClientError, 400))
    assert certainly_not_made(err(NotFoundError, 404))
    assert certainly_not_made(err(RateLimited, 429))
    assert certainly_not_made(err(ServerError, 503))
    assert not certainly_not_made(err(ServerError, 500))  # may have been stored before the error
    assert not certainly_not_made(err(TransportError, None))  # lost answer: may exist


class _Store:
    """Just enough of the state store for one effect row."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    def put_effect(self, eff: Any) -> Any:
        self.rows.setdefault(eff.effect_key, dataclasses.replace(eff, created_at=datetime.now(UTC)))
        return self.rows[eff.effect_key]

    def effect_attempt(self, key: str) -> None:
        self.rows[key].attempts += 1

    def finish_effect(self, key: str, state: str, *, result: Any = None, error: str | None = None) -> None:
        self.rows[key].state, self.rows[key].result, self.rows[key].error = state, result, error


def test_a_first_look_reads_the_whole_history_a_retry_only_since_the_intent() -> None:
    """A store restored days later still finds a comment made by the old one; a retry stops early."""
    key = effect_key("duplicate_comment", "vendors", "v1", "10009")
    old = {
        "id": "1",
        "created": (datetime.now(UTC) - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "body": with_marker(adf.doc(adf.paragraph("dup", " (bc-jira)")), key),
    }
    posted: list[Any] = []
    audits: list[str] = []
    fx = CommentEffects(
        store=_Store(),
        post=lambda issue, body: posted.append(body) or {"id": "2"},
        comments=lambda issue: [old],
        audit=lambda suffix, *rest: audits.append(suffix),
    )
    eff = fx.plan(
        key,
        kind="duplicate_comment",
        entity="vendors",
        bc_id="v1",
        issue="10009",
        issue_key="FIN-9",
        body=adf.doc(adf.paragraph("dup", " (bc-jira)")),
    )
    assert fx.make(eff, look_first=True).state == "found"
    assert posted == []
    assert audits == ["comment"]
    other = fx.plan(
        effect_key("x"),
        kind="resolve_comment",
        entity="vendors",
        bc_id="v1",
        issue="10009",
        issue_key="FIN-9",
        body=adf.doc(adf.paragraph("resolved", " (bc-jira)")),
    )
    other.attempts = 1  # an earlier attempt lost its answer: look only since the intent, then post
    assert fx.make(other).state == "made"
    assert len(posted) == 1

"""The pure parts of owed comments: stable keys, the ADF marker, finding it, certain failures."""

from __future__ import annotations

from bc_jira import adf
from bc_jira.effects import certainly_not_made, effect_key, has_marker, marker, with_marker
from bc_jira.http import ClientError, NotFoundError, RateLimited, ServerError, TransportError


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
    assert has_marker(out, "k2") and not has_marker(out, "k1") and not has_marker(None, "k2")
    nested = {"type": "doc", "version": 1, "content": [{"type": "panel", "content": [out["content"][0]]}]}
    assert has_marker(nested, "k2")


def test_which_failures_certainly_did_not_make_the_comment() -> None:
    def err(cls: type, status: int | None) -> object:
        return cls("jira", "POST", "https://x/comment", status, None, "m")

    assert certainly_not_made(err(ClientError, 400)) and certainly_not_made(err(NotFoundError, 404))
    assert certainly_not_made(err(RateLimited, 429)) and certainly_not_made(err(ServerError, 503))
    assert not certainly_not_made(err(ServerError, 500))  # may have been stored before the error
    assert not certainly_not_made(err(TransportError, None))  # lost answer: may exist

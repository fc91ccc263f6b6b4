"""The pure JQL parts: text-query compilation, and the OR-chain index answering like clause by clause."""

from __future__ import annotations

import pytest

from bc_jira_sandbox.jira.jql import (
    compile_text_query,
    index_or_leaves,
    or_leaves,
    parse_jql,
    text_query_matches,
    text_tokens,
)


def _doc(text: str) -> tuple[str, tuple[str, ...], frozenset[str]]:
    low = text.lower()
    toks = text_tokens(low)
    return low, toks, frozenset(toks)


def test_or_leaves_of_a_pure_or_chain_and_none_with_and_or_not() -> None:
    where, _ = parse_jql('f = "a" OR f ~ "b" OR f in ("c", "d")')
    assert sorted(leaf[2] for leaf in or_leaves(where)) == ["=", "in", "~"]
    assert or_leaves(parse_jql('f = "a" OR (f = "b" AND g = "c")')[0]) == []
    assert or_leaves(parse_jql('f = "a" OR NOT f = "b"')[0]) == []


@pytest.mark.parametrize(
    "value",
    [
        "rec-00042-abc",
        "Invoice rec-00042-abc for ACME",
        "rec 00042 abc",
        "abc rec-00042",
        "rec-00043-abc",
        "something else entirely",
        "rec-00042-abc-and-more words here",
    ],
)
def test_or_index_answers_like_each_clause(value: str) -> None:
    """The fast path must give the answer of evaluating every clause: phrases, word groups, prefixes, =."""
    queries = ['"rec-00042-abc"', "rec abc", "acme*", '"rec-00099-abc"', "-acme invoice"]
    leaves = [("leaf", "f", "~", q) for q in queries] + [("leaf", "f", "=", "something else entirely")]
    index = index_or_leaves(leaves, compile_text_query)
    low, toks, tset = _doc(value)
    one_by_one = low == "something else entirely" or any(
        text_query_matches(compile_text_query(q), toks, tset) for q in queries
    )
    assert index.matches(low, toks, tset) is one_by_one


def test_text_query_terms_prefix_prohibited_and_operators() -> None:
    assert compile_text_query("inv*") == (((("prefix", ("inv",)),), ()),)
    assert compile_text_query("-draft paid") == (((("all", ("paid",)),), (("all", ("draft",)),)),)
    assert compile_text_query("a OR b") == (((("all", ("a",)),), ()), ((("all", ("b",)),), ()))
    assert compile_text_query("NOT a b") == (((("all", ("b",)),), (("all", ("a",)),)),)
    assert compile_text_query("*") == ()

"""verify: the JSON depth scan (linear on hostile text) and HS256 JWT checks agreeing with a JWT library."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from bc_jira.edges import verify

CLIENT_SECRET = "atlassian-client-secret"


def test_jwt_claim_check_library_agrees() -> None:
    import jwt as pyjwt

    token = pyjwt.encode({"exp": int(time.time()) + 60}, CLIENT_SECRET, algorithm="HS256")
    assert verify.verify_jwt_hs256(token, CLIENT_SECRET) is not None
    assert verify.verify_jwt_hs256(token, CLIENT_SECRET + "x") is None


def test_depth_scan_ignores_brackets_in_strings_and_allows_real_payloads() -> None:
    assert not verify.json_too_deep(json.dumps({"a": "[[[[[[" * 1000, "b": ['"\\\\[', {"c": [1]}]}))
    assert verify.json_too_deep("[" * 129 + "]" * 129)
    assert not verify.json_too_deep("[" * 128 + "]" * 128)
    nested: Any = "leaf"
    for _ in range(60):
        nested = {"content": [nested]}
    assert verify.parse_json(json.dumps(nested))["content"][0]["content"]
    with pytest.raises(verify.PoisonBody):
        verify.parse_json("{" + '"a":[' * 200 + "1" + "]" * 200 + "}")


@pytest.mark.parametrize(
    "hostile",
    [
        '\\"' * 1_000_000,  # a megabyte of escaped quotes: quadratic for a backtracking string regex
        '"' + "\\" * 2_000_000 + '"',
        '"' + "a" * 2_000_000,  # unterminated string
        "[" * 1_000_000,
    ],
    ids=["escaped-quotes", "backslashes", "unterminated", "open-brackets"],
)
def test_depth_scan_is_linear_on_hostile_text(hostile: str) -> None:
    started = time.perf_counter()
    verify.json_too_deep(hostile)
    assert time.perf_counter() - started < 0.5

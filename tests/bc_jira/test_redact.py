"""Secret scrubbing of URLs and free text."""

from __future__ import annotations

from bc_jira.redact import redact_url


def test_redact_url_strips_userinfo() -> None:
    assert (
        redact_url("https://user:pw@h.test/p?access_token=abc&x=1") == "https://h.test/p?access_token=***&x=1"
    )

"""The Jira hook's upload call (requests-mock): the multipart ``file`` part, the XSRF header, no repeat."""

from __future__ import annotations

from typing import Any

import pytest

from bc_jira.hooks.jira import JiraCloudHook
from bc_jira.hooks.jira_connection import JiraSettings
from bc_jira.http import ApiError, RetryPolicy, ServerError

SITE = "https://acme.atlassian.net"
UPLOAD = f"{SITE}/rest/api/3/issue/FIN-1/attachments"


def _hook() -> JiraCloudHook:
    settings = JiraSettings(auth="basic", site_url=SITE, email="a@example.com", api_token="tok")
    retry = RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0)
    return JiraCloudHook(settings=settings, retry=retry, sleep=lambda s: None)


def test_upload_is_multipart_file_with_the_xsrf_header(requests_mock: Any) -> None:
    m = requests_mock.post(UPLOAD, json=[{"id": "10100", "filename": "a [bc-1].pdf", "size": 5}])
    out = _hook().add_attachment("FIN-1", "a [bc-1].pdf", b"%PDF-", "application/pdf")
    assert out["id"] == "10100"
    req = m.last_request
    assert req.headers["X-Atlassian-Token"] == "no-check"
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    body = req.body
    assert b'name="file"; filename="a [bc-1].pdf"' in body
    assert b"Content-Type: application/pdf" in body
    assert b"%PDF-" in body


def test_an_empty_answer_is_an_error_not_a_success(requests_mock: Any) -> None:
    requests_mock.post(UPLOAD, json=[])  # Jira's answer when no part was named "file"
    with pytest.raises(ApiError) as exc:
        _hook().add_attachment("FIN-1", "a.pdf", b"x", "application/pdf")
    assert exc.value.code == "no_attachment"


def test_a_lost_answer_is_never_posted_again(requests_mock: Any) -> None:
    m = requests_mock.post(UPLOAD, status_code=502, json={"errorMessages": ["bad gateway"]})
    with pytest.raises(ServerError):
        _hook().add_attachment("FIN-1", "a.pdf", b"x", "application/pdf")
    assert m.call_count == 1  # the upload may have been stored: the caller looks for it by name


def test_a_429_is_retried_the_server_did_not_process_it(requests_mock: Any) -> None:
    m = requests_mock.post(
        UPLOAD,
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {"errorMessages": ["slow"]}},
            {"status_code": 200, "json": [{"id": "7", "filename": "a.pdf", "size": 1}]},
        ],
    )
    assert _hook().add_attachment("FIN-1", "a.pdf", b"x", "application/pdf")["id"] == "7"
    assert m.call_count == 2

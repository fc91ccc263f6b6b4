"""A bare HTTP client for the sandbox's Jira REST v3 that checks every answer against the official spec."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from bc_jira_sandbox.openapi import get_validator


def bearer_headers(sandbox: Any) -> dict[str, str]:
    """An OAuth (3LO) access token from the sandbox grant's refresh token, as an Authorization header."""
    c = sandbox.creds
    tok = requests.post(
        f"{sandbox.url}/oauth/token",
        timeout=10,
        json={
            "grant_type": "refresh_token",
            "client_id": c["atlassian_client_id"],
            "client_secret": c["atlassian_client_secret"],
            "refresh_token": c["refresh_token"],
        },
    )
    assert tok.status_code == 200, tok.text
    return {"Authorization": f"Bearer {tok.json()['access_token']}"}


def rest_base(sandbox: Any) -> str:
    """The sandbox Jira's REST v3 root on the Atlassian API gateway (``/ex/jira/{cloudId}/rest/api/3``)."""
    return f"{sandbox.url}/ex/jira/{sandbox.creds['cloud_id']}/rest/api/3"


class SandboxJira:
    """OAuth bearer (the sandbox grant's refresh token), paths relative to ``/rest/api/3``."""

    def __init__(self, sandbox: Any) -> None:
        c = sandbox.creds
        self.headers = bearer_headers(sandbox)
        self.base = rest_base(sandbox)
        self.project_key = c["project_key"]
        self.fields = {f["name"]: f["id"] for f in self.call("GET", "field").json()}

    def call(self, method: str, path: str, json_body: Any = None, **kw: Any) -> requests.Response:
        resp = requests.request(
            method, f"{self.base}/{path}", json=json_body, headers=self.headers, timeout=10, **kw
        )
        v = get_validator()
        url_path = urlsplit(resp.url).path
        if json_body is not None and resp.status_code < 400:
            v.validate_request(method, url_path, json_body)
        v.validate_response(method, url_path, resp.status_code, resp.json() if resp.content else None)
        return resp

    def create(self, summary: str, **fields: Any) -> requests.Response:
        body = {
            "fields": {
                "project": {"key": self.project_key},
                "issuetype": {"name": "Invoice"},
                "summary": summary,
                **fields,
            }
        }
        return self.call("POST", "issue", body)

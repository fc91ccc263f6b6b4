"""Jira basic auth (email + API token): a TokenProvider with nothing to refresh or store."""

from __future__ import annotations

import base64


class BasicAuth:
    """TokenProvider for email + API token (nothing to refresh)."""

    def __init__(self, email: str, api_token: str) -> None:
        self._header = "Basic " + base64.b64encode(f"{email}:{api_token}".encode()).decode()

    def __repr__(self) -> str:
        return "BasicAuth(***)"

    def auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        return {"Authorization": self._header}

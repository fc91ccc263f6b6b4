"""FastAPI dependencies shared by every emulated service: the sandbox behind the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Request

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


def get_sandbox(request: Request) -> Sandbox:
    """The app's :class:`Sandbox` (``app.state.sandbox``, set by ``create_app``); tests may override it."""
    sb: Sandbox = request.app.state.sandbox
    return sb


SANDBOX = Depends(get_sandbox)
"""``sb: Sandbox = SANDBOX``: a route's sandbox (override :func:`get_sandbox` in tests)."""

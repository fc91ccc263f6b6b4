"""Jira Cloud REST v3 emulation (skeleton; filled in next)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


class JiraState:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.issues: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        self.issues = {}

    def seed(self) -> None:
        return None


def router(sb: Sandbox) -> APIRouter:
    return APIRouter(tags=["jira"])

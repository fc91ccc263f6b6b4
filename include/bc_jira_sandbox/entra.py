"""Entra ID emulation (skeleton; token endpoint and OpenID discovery follow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


def router(sb: Sandbox) -> APIRouter:
    return APIRouter(tags=["entra"])

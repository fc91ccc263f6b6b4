"""Business Central API v2.0 emulation (skeleton; entities, OData and subscriptions follow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


class BcState:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.vendors: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        self.vendors, self.invoices, self.orders = {}, {}, {}

    def seed(self, vendors: int = 0, invoices: int = 0, orders: int = 0) -> None:
        return None

    def counts(self) -> dict[str, int]:
        return {"vendors": len(self.vendors), "invoices": len(self.invoices), "orders": len(self.orders)}


def router(sb: Sandbox) -> APIRouter:
    return APIRouter(tags=["business central"])

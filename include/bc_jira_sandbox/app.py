"""The sandbox's FastAPI application: every emulated service plus the ``/_sandbox`` control routes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, FastAPI, HTTPException

from bc_jira_sandbox.core import BULK_CREATE_ORDERS
from bc_jira_sandbox.deps import SANDBOX
from bc_jira_sandbox.middleware import SandboxMiddleware

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox


router = APIRouter(prefix="/_sandbox", tags=["sandbox control"])


def counts(body: dict[str, Any] | None) -> dict[str, int]:
    body = body or {}
    try:
        return {k: int(body[k]) for k in ("vendors", "invoices", "orders", "draft_invoices") if k in body}
    except (TypeError, ValueError) as exc:
        raise HTTPException(
            400, "seed counts must be integers: vendors, invoices, orders, draft_invoices"
        ) from exc


@router.post("/reset")
def reset(body: dict[str, Any] | None = Body(default=None), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """Fresh data; ``companies``: how many BC companies this time (default ``serve --companies``)."""
    seed = counts(body)
    drafts = seed.pop("draft_invoices", 0)
    sb.reset(**seed, companies=_int(body, "companies"))
    if drafts:
        sb.seed(draft_invoices=drafts)
    return {"ok": True, "counts": sb.bc.counts(), "companies": len(sb.bc_companies)}


@router.post("/seed")
def seed(body: dict[str, Any] | None = Body(default=None), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """Add records to one BC company (``company``: id or name, default company 1)."""
    company = (body or {}).get("company")
    sb.seed(**counts(body), company=None if company is None else str(company))
    return {"ok": True, "counts": sb.bc.counts()}


def _int(body: dict[str, Any] | None, key: str) -> int | None:
    if not body or body.get(key) is None:
        return None
    try:
        return int(body[key])
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, f"{key} must be an integer") from exc


@router.post("/faults")
def faults(body: dict[str, Any] = Body(default_factory=dict), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    try:
        return {"rules": sb.faults.configure(body)}
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc


@router.post("/rate_limit")
def rate_limit(body: dict[str, Any] = Body(default_factory=dict), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """Jira's rate limiting: ``{"limit": 50, "window_s": 300, "reason": ..., "retry_after": true}``."""
    try:
        return {"budget": sb.rate_limits.configure(body)}
    except (TypeError, ValueError) as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/stats")
def stats(sb: Sandbox = SANDBOX) -> dict[str, Any]:
    return sb.stats.snapshot()


@router.post("/stats/reset")
def stats_reset(sb: Sandbox = SANDBOX) -> dict[str, Any]:
    sb.stats.reset()
    return {"ok": True}


@router.get("/credentials")
def credentials(sb: Sandbox = SANDBOX) -> dict[str, Any]:
    return {**sb.creds, "base_url": sb.base_url}


@router.post("/clock")
def clock(body: dict[str, Any] = Body(default_factory=dict), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    now = sb.advance_clock(float(body.get("advance_s", 0)))
    return {"now": now.isoformat(), "offset_s": sb.clock_offset_s}


@router.post("/options")
def options(body: dict[str, Any] = Body(default_factory=dict), sb: Sandbox = SANDBOX) -> dict[str, Any]:
    for key in ("latency_ms", "notify_delay_s", "search_lag_s"):
        if key in body:
            setattr(sb.options, key, type(getattr(sb.options, key))(body[key]))
    if "bulk_create_order" in body:
        if body["bulk_create_order"] not in BULK_CREATE_ORDERS:
            raise HTTPException(400, f"bulk_create_order must be one of {', '.join(BULK_CREATE_ORDERS)}")
        sb.options.bulk_create_order = body["bulk_create_order"]
    return sb.public_options()


@router.get("/health")
def health(sb: Sandbox = SANDBOX) -> dict[str, Any]:
    return {"ok": True, "base_url": sb.base_url}


def create_app(sb: Sandbox) -> Any:
    """The ASGI app of ``sb``: the routers of every service (module-level, reaching ``sb`` through
    :func:`~bc_jira_sandbox.deps.get_sandbox`), wrapped in the sandbox middleware (faults, rate limits)."""
    from bc_jira_sandbox import atlassian, entra
    from bc_jira_sandbox.bc import routes as bc_routes
    from bc_jira_sandbox.bc import routes_attachments as bc_attachments
    from bc_jira_sandbox.bc import routes_control as bc_control
    from bc_jira_sandbox.bc import routes_subscriptions as bc_subscriptions
    from bc_jira_sandbox.bc.api import bc_error_handler
    from bc_jira_sandbox.bc.entities import BcError
    from bc_jira_sandbox.jira import routes as jira_routes
    from bc_jira_sandbox.pages import bc_web, jira_board, jira_search

    app = FastAPI(
        title="bc-jira sandbox", description="Local emulator of BC, Entra ID, Atlassian OAuth and Jira"
    )
    app.include_router(router)
    # the pages first: ``/site/browse/...`` must not be taken for a Jira REST path
    for module in (
        jira_board,
        jira_search,
        bc_web,
        entra,
        bc_attachments,
        bc_routes,
        bc_subscriptions,
        bc_control,
        atlassian,
        jira_routes,
    ):
        app.include_router(module.router)
    app.add_exception_handler(BcError, bc_error_handler)
    app.state.sandbox = sb
    return SandboxMiddleware(app, sb)

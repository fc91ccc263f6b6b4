"""The sandbox's FastAPI application: every emulated service plus the ``/_sandbox`` control routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, FastAPI, HTTPException

from bc_jira_sandbox.core import Sandbox, SandboxMiddleware


def control_router(sb: Sandbox) -> APIRouter:
    r = APIRouter(prefix="/_sandbox", tags=["sandbox control"])

    def counts(body: dict[str, Any] | None) -> dict[str, int]:
        body = body or {}
        try:
            return {k: int(body[k]) for k in ("vendors", "invoices", "orders", "draft_invoices") if k in body}
        except (TypeError, ValueError) as exc:
            raise HTTPException(
                400, "seed counts must be integers: vendors, invoices, orders, draft_invoices"
            ) from exc

    @r.post("/reset")
    def reset(body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
        seed = counts(body)
        drafts = seed.pop("draft_invoices", 0)
        sb.reset(**seed)
        if drafts:
            sb.seed(draft_invoices=drafts)
        return {"ok": True, "counts": sb.bc.counts()}

    @r.post("/seed")
    def seed(body: dict[str, Any] | None = Body(default=None)) -> dict[str, Any]:
        sb.seed(**counts(body))
        return {"ok": True, "counts": sb.bc.counts()}

    @r.post("/faults")
    def faults(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        try:
            return {"rules": sb.faults.configure(body)}
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc

    @r.post("/rate_limit")
    def rate_limit(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        """Jira's rate limiting: ``{"limit": 50, "window_s": 300, "reason": ..., "retry_after": true}``."""
        try:
            return {"budget": sb.rate_limits.configure(body)}
        except (TypeError, ValueError) as exc:
            raise HTTPException(400, str(exc)) from exc

    @r.get("/stats")
    def stats() -> dict[str, Any]:
        return sb.stats.snapshot()

    @r.post("/stats/reset")
    def stats_reset() -> dict[str, Any]:
        sb.stats.reset()
        return {"ok": True}

    @r.get("/credentials")
    def credentials() -> dict[str, Any]:
        return {**sb.creds, "base_url": sb.base_url}

    @r.post("/clock")
    def clock(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        now = sb.advance_clock(float(body.get("advance_s", 0)))
        return {"now": now.isoformat(), "offset_s": sb.clock_offset_s}

    @r.post("/options")
    def options(body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:
        for key in ("latency_ms", "notify_delay_s", "search_lag_s"):
            if key in body:
                setattr(sb.options, key, type(getattr(sb.options, key))(body[key]))
        return sb.public_options()

    @r.get("/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "base_url": sb.base_url}

    return r


def create_app(sb: Sandbox) -> Any:
    from bc_jira_sandbox import atlassian, entra
    from bc_jira_sandbox.bc import routes as bc
    from bc_jira_sandbox.jira import routes as jira

    app = FastAPI(
        title="bc-jira sandbox", description="Local emulator of BC, Entra ID, Atlassian OAuth and Jira"
    )
    app.include_router(control_router(sb))
    for module in (entra, bc, atlassian, jira):
        app.include_router(module.router(sb))
    app.state.sandbox = sb
    return SandboxMiddleware(app, sb)

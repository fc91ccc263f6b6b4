"""A BusinessCentralHook aimed at the test sandbox (real MSAL, real HTTP)."""

from __future__ import annotations

from typing import Any

from bc_jira.entra import clear_token_cache
from bc_jira.hooks.business_central import BcSettings, BusinessCentralHook


def sandbox_bc_settings(sandbox: Any, **over: str) -> BcSettings:
    """The sandbox's BC credentials as hook settings (``over`` replaces single fields)."""
    c = sandbox.creds
    base = dict(
        client_id=c["bc_client_id"],
        client_secret=c["bc_client_secret"],
        tenant_id=c["tenant_id"],
        environment=c["environment"],
        company_id=c["company_id"],
        api_url=f"{sandbox.url}/v2.0",
        authority_url=sandbox.url,
        client_state=c["bc_client_state"],
    )
    return BcSettings(**{**base, **over})


def sandbox_bc_hook(sandbox: Any) -> BusinessCentralHook:
    """A fresh hook (token cache cleared: a reset sandbox has new signing keys)."""
    clear_token_cache()
    return BusinessCentralHook(settings=sandbox_bc_settings(sandbox))

"""The HTTP edge shared by the BC route modules: authentication, tenant/environment/company checks, errors.

Every BC route depends on :func:`env_claims` or :func:`company_claims` (FastAPI ``Depends``); a
:class:`BcError` raised anywhere in a route becomes BC's error body through :func:`bc_error_handler`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request

from bc_jira_sandbox import entra
from bc_jira_sandbox.bc import companies
from bc_jira_sandbox.bc.entities import DOCUMENTS, BcError
from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from fastapi.responses import JSONResponse

    from bc_jira_sandbox.bc.state import BcState
    from bc_jira_sandbox.core import Sandbox

ROOT = "/v2.0/{tenant}/{environment}/api/v2.0"
COMPANY = ROOT + "/companies({company_id})"


def bc_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """BC's ``{"error": {"code", "message"}}`` answer of a :class:`BcError` (the app's exception handler)."""
    assert isinstance(exc, BcError)
    return exc.response()


def env_url(sb: Sandbox, tenant: str, environment: str) -> str:
    return f"{sb.base_url}/v2.0/{tenant}/{environment}/api/v2.0"


def parse_key(raw: str) -> str:
    return raw.strip("'").lower()


def env_claims(request: Request, tenant: str, environment: str, sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """The caller's token claims, after BC's checks of the token, its tenant and the environment."""
    auth = request.headers.get("authorization", "")
    www = {
        "WWW-Authenticate": f'Bearer authorization_uri="{sb.base_url}/{sb.creds["tenant_id"]}/oauth2/'
        f'authorize", resource_id="{entra.BC_RESOURCE}"'
    }
    if not auth.lower().startswith("bearer "):
        raise BcError(
            401,
            "Authentication_InvalidCredentials",
            "The server has rejected the client credentials.",
            www,
        )
    claims, why = entra.verify_token(sb, auth[7:].strip())
    if claims is None or claims.get("tid", "").lower() != tenant.lower():
        raise BcError(
            401,
            "Authentication_InvalidCredentials",
            f"The server has rejected the client credentials. ({why or 'wrong tenant'})",
            www,
        )
    if environment != sb.creds["environment"]:
        raise BcError(
            404, "NoEnvironment", f"Environment '{environment}' does not exist for tenant '{tenant}'."
        )
    return claims


def company_state(
    company_id: str, claims: dict[str, Any] = Depends(env_claims), sb: Sandbox = SANDBOX
) -> BcState:
    """The state of the path's company, after :func:`env_claims`: unknown or deleted -> 404
    ``Internal_CompanyNotFound``, no permission there -> 403 (:mod:`bc_jira_sandbox.bc.companies`)."""
    with sb.lock:
        state = companies.for_api(sb, company_id)
        sb.stats.record_company_call(state.company["id"])
    return state


def company_claims(
    claims: dict[str, Any] = Depends(env_claims), state: BcState = Depends(company_state)
) -> dict[str, Any]:
    """:func:`env_claims`, and the company of the path must be one the caller may use."""
    return claims


COMPANY_STATE = Depends(company_state)


def not_found(request: Request) -> BcError:
    return BcError(
        404,
        "BadRequest_NotFound",
        f"No HTTP resource was found that matches the request URI '{request.url}'.",
    )


def document(request: Request, entity: str) -> str:
    """The ``{entity}`` path segment, one of the documents the sandbox serves (404 like BC otherwise)."""
    if entity not in DOCUMENTS:
        raise not_found(request)
    return entity

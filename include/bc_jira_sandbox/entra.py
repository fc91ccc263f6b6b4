"""Entra ID (Azure AD) v2.0 emulation: client-credentials token endpoint and the OpenID discovery MSAL reads.

MSAL's real ``ConfidentialClientApplication`` works against ``{base_url}/{tenant}`` (the hook hands MSAL the
https form and downgrades to http for loopback hosts). Errors carry Entra's shape and AADSTS codes:
unknown tenant -> AADSTS90002, unknown client -> AADSTS700016, wrong secret -> AADSTS7000215 (HTTP 401
invalid_client, as real Entra answers: e.g. OfficeDev/microsoft-365-agents-toolkit#8621, keycloak#31294),
unknown resource -> AADSTS500011. Tokens are HS256 JWTs the BC module verifies
(signature, audience, tenant, expiry against the sandbox clock).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

TOKEN_TTL_S = 3599
BC_RESOURCE = "https://api.businesscentral.dynamics.com"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(sb: Sandbox) -> bytes:
    return hashlib.sha256(f"entra-signing:{sb.creds['tenant_id']}:{sb.options.seed}".encode()).digest()


def resources(sb: Sandbox) -> set[str]:
    """Audiences this sandbox accepts: the real BC resource id and the sandbox origin."""
    return {BC_RESOURCE, sb.base_url.rstrip("/")}


def issue_token(sb: Sandbox, audience: str, ttl_s: int = TOKEN_TTL_S) -> tuple[str, int]:
    now = int(sb.now().timestamp())
    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{sb.creds['tenant_id']}/",
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "appid": sb.creds["bc_client_id"],
        "tid": sb.creds["tenant_id"],
        "roles": ["API.ReadWrite.All"],
        "ver": "1.0",
        "oid": str(uuid.UUID(hashlib.md5(sb.creds["bc_client_id"].encode()).hexdigest())),
        "uti": _b64(uuid.uuid4().bytes),
    }
    head = _b64(json.dumps({"typ": "JWT", "alg": "HS256", "kid": "sandbox"}).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = _b64(hmac.new(_key(sb), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}", ttl_s


def verify_token(sb: Sandbox, token: str) -> tuple[dict[str, Any] | None, str]:
    """(claims, "") when valid, else (None, reason)."""
    try:
        head, body, sig = token.split(".")
        expected = _b64(hmac.new(_key(sb), f"{head}.{body}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(sig, expected):
            return None, "invalid signature"
        claims = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError):
        return None, "malformed token"
    if claims.get("exp", 0) <= sb.now().timestamp():
        return None, "token expired"
    if claims.get("aud") not in resources(sb):
        return None, "invalid audience"
    return claims, ""


def _error(sb: Sandbox, status: int, error: str, code: int, description: str) -> JSONResponse:
    now = sb.now()
    trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
    text = (
        f"AADSTS{code}: {description}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\n"
        f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
    )
    return JSONResponse(
        status_code=status,
        content={
            "error": error,
            "error_description": text,
            "error_codes": [code],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": corr,
            "error_uri": f"{sb.base_url}/error?code={code}",
        },
    )


def _known_tenant(sb: Sandbox, tenant: str) -> bool:
    return tenant.lower() in {sb.creds["tenant_id"].lower(), "sandbox.onmicrosoft.com"}


def _tenant_not_found(sb: Sandbox, tenant: str) -> JSONResponse:
    return _error(
        sb,
        400,
        "invalid_request",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may "
        "happen if there are no active subscriptions for the tenant.",
    )


router = APIRouter(tags=["entra"])


@router.get("/common/discovery/instance")
def instance_discovery(request: Request, sb: Sandbox = SANDBOX) -> dict[str, Any]:
    host = request.url.netloc
    return {
        "tenant_discovery_endpoint": f"{sb.base_url}/common/v2.0/.well-known/openid-configuration",
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
    }


@router.get("/{tenant}/v2.0/.well-known/openid-configuration")
def openid_configuration(tenant: str, sb: Sandbox = SANDBOX) -> Any:
    if not _known_tenant(sb, tenant):
        return _tenant_not_found(sb, tenant)
    tid = sb.creds["tenant_id"]
    root = f"{sb.base_url}/{tid}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{sb.base_url}/{tid}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{sb.base_url}/{tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{sb.base_url}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver", "oid"],
        "kerberos_endpoint": f"{root}/kerberos",
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


@router.get("/{tenant}/discovery/v2.0/keys")
def keys(tenant: str, sb: Sandbox = SANDBOX) -> dict[str, Any]:
    return {"keys": []}  # HS256 sandbox tokens: nothing public to verify with


@router.post("/{tenant}/oauth2/v2.0/token")
async def token(tenant: str, request: Request, sb: Sandbox = SANDBOX) -> Any:
    form = await request.form()
    if not _known_tenant(sb, tenant):
        return _tenant_not_found(sb, tenant)
    grant = form.get("grant_type")
    if grant != "client_credentials":
        return _error(
            sb,
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type "
            f"'{grant}'. This sandbox supports client_credentials.",
        )
    client_id = str(form.get("client_id") or "")
    secret = str(form.get("client_secret") or "")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("basic ") and not client_id:
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except ValueError:
            client_id = ""
    if not client_id:
        return _error(
            sb,
            400,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
    if client_id != sb.creds["bc_client_id"]:
        return _error(
            sb,
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{sb.creds['tenant_id']}'. This can happen if the application has not been "
            "installed by the administrator of the tenant or consented to by any user in "
            "the tenant.",
        )
    if not secret:
        return _error(
            sb,
            401,
            "invalid_client",
            7000216,
            "'client_assertion', 'client_secret' or 'request' is required for the "
            "'client_credentials' grant type.",
        )
    if not hmac.compare_digest(secret.encode(), sb.creds["bc_client_secret"].encode()):
        return _error(
            sb,
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is "
            f"the client secret value, not the client secret ID, for a secret added to app "
            f"'{client_id}'.",
        )
    scopes = str(form.get("scope") or "").split()
    resource = next((s[: -len("/.default")] for s in scopes if s.endswith("/.default")), None)
    if resource is None:
        return _error(
            sb,
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {' '.join(scopes) or '(none)'} is not valid. Client "
            "credential flows must have a scope value with /.default suffixed to the resource "
            "identifier (application ID URI).",
        )
    if resource.rstrip("/") not in resources(sb):
        return _error(
            sb,
            400,
            "invalid_resource",
            500011,
            f"The resource principal named {resource} was not found in the tenant named "
            f"{sb.creds['tenant_id']}.",
        )
    access, ttl = issue_token(sb, resource.rstrip("/"))
    sb.stats.bump("entra.token")
    return {"token_type": "Bearer", "expires_in": ttl, "ext_expires_in": ttl, "access_token": access}

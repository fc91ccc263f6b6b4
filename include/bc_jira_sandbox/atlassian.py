"""Atlassian OAuth 2.0 (3LO) emulation: /authorize, /oauth/token, /oauth/token/accessible-resources.

Behaves like auth.atlassian.com (https://developer.atlassian.com/cloud/oauth/getting-started/): auto-consent,
rotating refresh tokens (every refresh returns a new one; the old one keeps working for a reuse leeway, then
reusing it revokes the whole grant, like Auth0; the access token issued with a rotated refresh token is
revoked after the same leeway), a refresh token unused for 90 days expires, every grant expires 365 days after
the consent however often it is refreshed (both on the sandbox clock), 1-hour access tokens,
accessible-resources listing the one sandbox site. Its state lives in ``sb.jira.oauth`` (an
``AtlassianState``) so ``--data`` persistence keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from bc_jira_sandbox.deps import SANDBOX

if TYPE_CHECKING:
    from bc_jira_sandbox.core import Sandbox

ACCESS_TTL_S = 3600
CODE_TTL_S = 600
REUSE_LEEWAY_S = 600.0  # Atlassian: "The leeway interval is 10 minutes."
# Atlassian, "Updated: 31 January 2022 - Action required - Deprecating persistent refresh tokens"
# (https://community.developer.atlassian.com/t/updated-31-january-2022-action-required-deprecating-persistent-refresh-tokens/54172):
# "Rotating refresh tokens expire after 90 days of user inactivity. Each time a new rotating refresh token is
# used, the inactive expiry time is reset to 90 days." and "All tokens have an absolute expiry time of 365
# days. After a year, users must re-consent ... The absolute expiry time persists between token refreshes and
# cannot be reduced, or removed." Staff confirmation: .../t/refresh-token-expire-after-36000-seconds/60806/2.
IDLE_EXPIRY_S = 90 * 86400.0
ABSOLUTE_EXPIRY_S = 365 * 86400.0
# The answer to an expired or revoked token (from
# https://nango.dev/blog/jira-oauth-refresh-token-invalid-grant).
EXPIRED_OR_REVOKED = "Token has been expired or revoked."
GRANTED_SCOPES = [
    "read:jira-work",
    "write:jira-work",
    "read:jira-user",
    "manage:jira-webhook",
    "manage:jira-configuration",
    "offline_access",
]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class AtlassianState:
    """Grants, refresh-token families, access tokens and authorization codes (picklable)."""

    def __init__(self) -> None:
        self.grants: dict[str, dict[str, Any]] = {}
        self.refresh_tokens: dict[str, dict[str, Any]] = {}  # token -> {grant, issued, superseded_at}
        self.access_tokens: dict[str, dict[str, Any]] = {}  # token -> {grant, expires_at, scopes}
        self.codes: dict[str, dict[str, Any]] = {}
        self.reuse_leeway_s = REUSE_LEEWAY_S
        self.idle_expiry_s = IDLE_EXPIRY_S
        self.absolute_expiry_s = ABSOLUTE_EXPIRY_S
        self._n = 0

    def next_id(self) -> int:
        self._n += 1
        return self._n


def reset(sb: Sandbox) -> AtlassianState:
    """Fresh OAuth state with one pre-consented grant whose first refresh token goes to ``sb.creds``."""
    st = AtlassianState()
    # Deterministic per seed, so the credentials printed by airflow-env stay valid across resets.
    first = "rt1." + hashlib.sha256(f"{sb.creds['atlassian_client_secret']}:grant0".encode()).hexdigest()
    grant = {"id": "grant0", "revoked": False, "scopes": list(GRANTED_SCOPES), "created": _now(sb)}
    st.grants["grant0"] = grant
    st.refresh_tokens[first] = {"grant": "grant0", "issued": _now(sb), "superseded_at": None}
    sb.creds["refresh_token"] = first
    return st


def _now(sb: Sandbox) -> float:
    return sb.now().timestamp()


def _state(sb: Sandbox) -> AtlassianState:
    return sb.jira.oauth


def _new_access_token(sb: Sandbox, grant_id: str, scopes: list[str]) -> tuple[str, int]:
    """A JWT-shaped opaque token (Atlassian's are JWTs); only the sandbox can tell whether it is valid."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(
        json.dumps(
            {"sub": sb.creds["atlassian_client_id"], "grant": grant_id, "jti": secrets.token_hex(8)}
        ).encode()
    )
    token = f"{header}.{body}.{_b64(secrets.token_bytes(32))}"
    _state(sb).access_tokens[token] = {
        "grant": grant_id,
        "expires_at": _now(sb) + ACCESS_TTL_S,
        "scopes": scopes,
    }
    return token, ACCESS_TTL_S


def _token_response(sb: Sandbox, grant: dict[str, Any]) -> dict[str, Any]:
    st = _state(sb)
    access, ttl = _new_access_token(sb, grant["id"], grant["scopes"])
    out: dict[str, Any] = {
        "access_token": access,
        "expires_in": ttl,
        "token_type": "Bearer",
        "scope": " ".join(grant["scopes"]),
    }
    if "offline_access" in grant["scopes"]:
        refresh = f"rt{st.next_id()}." + secrets.token_urlsafe(48)
        st.refresh_tokens[refresh] = {
            "grant": grant["id"],
            "issued": _now(sb),
            "superseded_at": None,
            "access_token": access,  # its companion: revoked after the leeway once this one is rotated
        }
        out["refresh_token"] = refresh
    return out


def _expired(st: AtlassianState, grant: dict[str, Any], rec: dict[str, Any], now: float) -> str | None:
    """``"absolute"`` (365 days since the consent), ``"idle"`` (this token unused for 90 days) or None."""
    if now - float(grant["created"]) >= getattr(st, "absolute_expiry_s", ABSOLUTE_EXPIRY_S):
        return "absolute"
    if now - float(rec["issued"]) >= getattr(st, "idle_expiry_s", IDLE_EXPIRY_S):
        return "idle"
    return None


def _revoke(sb: Sandbox, grant_id: str) -> None:
    st = _state(sb)
    st.grants[grant_id]["revoked"] = True
    for tok in [t for t, v in st.access_tokens.items() if v["grant"] == grant_id]:
        del st.access_tokens[tok]


def check_access_token(sb: Sandbox, authorization: str | None) -> dict[str, Any] | None:
    """The access-token record for a ``Bearer`` header when valid (known, unexpired, grant alive)."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    st = _state(sb)
    rec = st.access_tokens.get(authorization[7:].strip())
    if rec is None or rec["expires_at"] <= _now(sb) or st.grants[rec["grant"]]["revoked"]:
        return None
    return rec


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _redirect_allowed(sb: Sandbox, redirect_uri: str) -> bool:
    """The registered callback, or any loopback callback (local Airflow instances on any port)."""
    if redirect_uri == sb.creds["redirect_uri"]:
        return True
    parts = urlsplit(redirect_uri)
    return parts.scheme in ("http", "https") and parts.hostname in ("localhost", "127.0.0.1")


router = APIRouter(tags=["atlassian"])


@router.get("/authorize")
def authorize(request: Request, sb: Sandbox = SANDBOX) -> Response:
    q = request.query_params
    if q.get("client_id") != sb.creds["atlassian_client_id"]:
        return Response(
            "Invalid client_id: this app does not exist.", status_code=400, media_type="text/plain"
        )
    redirect_uri = q.get("redirect_uri") or ""
    if not _redirect_allowed(sb, redirect_uri):
        return Response(
            "The redirect_uri does not match the app's callback URL.",
            status_code=400,
            media_type="text/plain",
        )
    if q.get("response_type") != "code" or not q.get("scope"):
        return Response(
            "response_type=code and scope are required.", status_code=400, media_type="text/plain"
        )
    requested = q.get("scope", "").split()
    scopes = [s for s in requested if s in GRANTED_SCOPES]
    with sb.lock:
        st = _state(sb)
        grant_id = f"grant{st.next_id()}"
        st.grants[grant_id] = {
            "id": grant_id,
            "revoked": False,
            "scopes": scopes,
            "created": _now(sb),
            "audience": q.get("audience"),
        }
        code = secrets.token_urlsafe(24)
        st.codes[code] = {
            "grant": grant_id,
            "redirect_uri": redirect_uri,
            "expires_at": _now(sb) + CODE_TTL_S,
        }
        sb.mark_dirty()
    params = {"code": code}
    if q.get("state") is not None:
        params["state"] = q["state"]
    sep = "&" if urlsplit(redirect_uri).query else "?"
    return RedirectResponse(f"{redirect_uri}{sep}{urlencode(params)}", status_code=302)


@router.post("/oauth/token")
async def token(request: Request, sb: Sandbox = SANDBOX) -> JSONResponse:
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    try:
        if "application/x-www-form-urlencoded" in ctype:
            body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        else:
            body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        return _oauth_error(400, "invalid_request", "Malformed request body.")
    grant_type = body.get("grant_type")
    if grant_type == "refresh_token":
        sb.stats.bump("atlassian.token.refresh")
    elif grant_type == "authorization_code":
        sb.stats.bump("atlassian.token.code")
    # The client is authenticated before any code or refresh token is looked at, so a wrong client secret
    # spends nothing: RFC 6749 section 6 (authenticate the client, validate the refresh token, then MAY revoke
    # the old one "after issuing a new refresh token") and Atlassian's refresh-token page ("If successful, ...
    # the refresh token you used for the request is disabled",
    # https://developer.atlassian.com/cloud/oauth/getting-started/refresh-tokens). auth.atlassian.com (Auth0)
    # answers a wrong secret 401 access_denied "Unauthorized" (auth0/node-auth0#134,
    # jsarafajr/passport-atlassian-oauth2#1 "TokenError: Unauthorized").
    if (
        body.get("client_id") != sb.creds["atlassian_client_id"]
        or body.get("client_secret") != sb.creds["atlassian_client_secret"]
    ):
        return _oauth_error(401, "access_denied", "Unauthorized")
    with sb.lock:
        if grant_type == "authorization_code":
            return _code_grant(sb, body)
        if grant_type == "refresh_token":
            return _refresh_grant(sb, body)
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {grant_type}")


def _code_grant(sb: Sandbox, body: dict[str, Any]) -> JSONResponse:
    """``grant_type=authorization_code``: a code is good once, before it expires, for its redirect_uri."""
    st = _state(sb)
    rec = st.codes.pop(str(body.get("code")), None)
    if rec is None or rec["expires_at"] <= _now(sb):
        return _oauth_error(403, "invalid_grant", "Invalid authorization code")
    if body.get("redirect_uri") != rec["redirect_uri"]:
        return _oauth_error(403, "invalid_grant", "redirect_uri does not match")
    grant = st.grants[rec["grant"]]
    sb.mark_dirty()
    return JSONResponse(_token_response(sb, grant))


def _refresh_grant(sb: Sandbox, body: dict[str, Any]) -> JSONResponse:
    """``grant_type=refresh_token`` with rotation: a rotated token is reusable within the leeway only."""
    st = _state(sb)
    now = _now(sb)
    rec = st.refresh_tokens.get(str(body.get("refresh_token")))
    if rec is None:
        return _oauth_error(403, "invalid_grant", "Unknown or invalid refresh token.")
    grant = st.grants[rec["grant"]]
    if grant["revoked"]:
        return _oauth_error(403, "invalid_grant", EXPIRED_OR_REVOKED)
    why = _expired(st, grant, rec, now)
    if why:
        sb.stats.bump(f"atlassian.token.expired_{why}")
        return _oauth_error(403, "invalid_grant", EXPIRED_OR_REVOKED)
    if rec["superseded_at"] is not None and now - rec["superseded_at"] > st.reuse_leeway_s:
        # Reuse of a rotated token outside the leeway: the whole family dies (re-consent needed).
        _revoke(sb, grant["id"])
        sb.stats.bump("atlassian.grant.revoked")
        sb.mark_dirty()
        return _oauth_error(403, "invalid_grant", "Unknown or invalid refresh token.")
    if rec["superseded_at"] is None:
        rec["superseded_at"] = now
        # Atlassian staff (community t/83103): on a refresh "the old access and refresh tokens will enter
        # a 10-minutes grace period ... before they are marked as revoked".
        companion = st.access_tokens.get(rec.get("access_token") or "")
        if companion is not None:
            companion["expires_at"] = min(companion["expires_at"], now + st.reuse_leeway_s)
    else:
        sb.stats.bump("atlassian.token.reuse_in_leeway")
    sb.mark_dirty()
    return JSONResponse(_token_response(sb, grant))


@router.get("/oauth/token/accessible-resources")
def accessible_resources(request: Request, sb: Sandbox = SANDBOX) -> JSONResponse:
    with sb.lock:
        rec = check_access_token(sb, request.headers.get("authorization"))
    if rec is None:
        return JSONResponse({"code": 401, "message": "Unauthorized"}, status_code=401)
    return JSONResponse(
        [
            {
                "id": sb.creds["cloud_id"],
                "name": sb.creds.get("site_name", "sandbox"),
                "url": sb.creds["site_url"],
                "scopes": [s for s in rec["scopes"] if s != "offline_access"],
                "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png",
            }
        ]
    )


@router.post("/_sandbox/atlassian/options")
def options(body: dict[str, Any], sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """Test knobs: ``reuse_leeway_s`` (600), ``idle_expiry_s`` (90 d), ``absolute_expiry_s`` (365 d)."""
    keys = ("reuse_leeway_s", "idle_expiry_s", "absolute_expiry_s")
    with sb.lock:
        st = _state(sb)
        for key in keys:
            if key in body:
                setattr(st, key, float(body[key]))
        return {key: getattr(st, key, None) for key in keys}


@router.post("/_sandbox/atlassian/revoke")
def revoke(sb: Sandbox = SANDBOX) -> dict[str, Any]:
    """Test knob: revoke every grant, as a user removing the app would."""
    with sb.lock:
        for gid in list(_state(sb).grants):
            _revoke(sb, gid)
        sb.mark_dirty()
    return {"ok": True}

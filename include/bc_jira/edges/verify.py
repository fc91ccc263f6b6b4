"""Checking what arrives before anything is staged: JSON nesting depth, Jira's HMAC signature, app JWTs.

Pure functions of bytes and secrets (constant-time comparisons), so the intake's answers are unit-testable.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from typing import Any

# Deeper than any genuine payload (BC: 3 levels; a Jira issue with ADF fields: a few dozen), far below the
# depth at which json.loads raises RecursionError (which used to surface as 503: "retry this poison body").
MAX_JSON_DEPTH = 128
JWT_LEEWAY_S = 60


class PoisonBody(ValueError):
    """A body no genuine sender produces (too deeply nested); answered 400, never retried."""


_JSON_TOKEN = re.compile(r'["\[\]{}]')
# The rest of a string after its opening quote, anchored and possessive (no backtracking): linear time even
# for hostile input such as a megabyte of ``\"`` pairs.
_JSON_STRING_REST = re.compile(r'(?:[^"\\]++|\\.)*+"', re.DOTALL)


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``text`` nests arrays/objects deeper than ``limit`` (brackets inside strings ignored).

    Checked before parsing so a hostile body never reaches the recursive decoder. One pass; an unterminated
    string ends the scan (the text is not JSON, and the parser says so).
    """
    depth, pos = 0, 0
    while (m := _JSON_TOKEN.search(text, pos)) is not None:
        char, pos = m.group(), m.end()
        if char == '"':
            rest = _JSON_STRING_REST.match(text, pos)
            if rest is None:
                return False
            pos = rest.end()
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


def parse_json(text: str, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with a depth limit: :class:`PoisonBody` when too deep, ``ValueError`` when not JSON."""
    if json_too_deep(text, limit):
        raise PoisonBody(f"body nests JSON deeper than {limit} levels")
    try:
        return json.loads(text)
    except RecursionError:  # belt and braces: the scan above should make this unreachable
        raise PoisonBody(f"body nests JSON deeper than {limit} levels") from None


def verify_hub_signature(body: bytes, header: str | None, secret: str | None) -> bool:
    """``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``, compared in constant time."""
    if not header or not secret:
        return False
    method, _, digest = header.strip().partition("=")
    if method.strip().lower() != "sha256" or not digest:
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), digest.strip().lower().encode())


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_jwt_hs256(
    token: str | None, secret: str | None, *, now: float | None = None, leeway: float = JWT_LEEWAY_S
) -> dict[str, Any] | None:
    """Claims of an HS256 JWT signed with ``secret`` (Jira's bearer token for app webhooks), else None.

    Signature, ``alg`` (HS256 only: never ``none``), ``exp`` (required), and ``nbf`` / ``iat`` when present
    (not in the future beyond ``leeway``) are checked; no ``qsh``, ``iss`` or ``aud``: Atlassian documents no
    claim set for OAuth 2.0 app webhooks (https://developer.atlassian.com/cloud/jira/platform/webhooks), so
    other claims are returned for logging, not enforced.
    """
    if not token or not secret:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
        signature = _b64url(parts[2])
    except (ValueError, TypeError):
        return None
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
        return None
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return None
    now = time.time() if now is None else now
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > float(exp) + leeway:
        return None
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and now + leeway < float(nbf):
        return None
    iat = claims.get("iat")  # optional; when present, a token issued in the future is not Jira's
    if iat is not None and (not isinstance(iat, int | float) or now + leeway < float(iat)):
        return None
    return claims

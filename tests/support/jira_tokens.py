"""Webhook credentials as Jira sends them: HMAC ``X-Hub-Signature`` (admin webhooks) and the HS256 bearer JWT
(webhooks an OAuth 2.0 app registered), plus deliberately bad tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims: dict[str, Any], secret: str, alg: str = "HS256", signature: bool = True) -> str:
    head = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    if not signature:
        return f"{head}.{body}."
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


def fresh_claims(ttl: int = 180) -> dict[str, int]:
    now = int(time.time())
    return {"iat": now, "exp": now + ttl}


def hub_signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

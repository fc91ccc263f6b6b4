"""Entra ID client-credentials tokens for Business Central, through MSAL.

One ``ConfidentialClientApplication`` per process and principal, so MSAL's in-memory cache reuses a token
until near expiry. A local emulator on plain ``http://127.0.0.1`` is supported by presenting MSAL the https
form of its URLs (MSAL refuses http authorities); any other http authority is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import threading
from typing import Any, Protocol
from urllib.parse import urlsplit

import requests

from bc_jira.http import ApiError, AuthError, TransportError
from bc_jira.redact import redact_text


class ClientCredentials(Protocol):
    """What MSAL needs of a connection (``BcSettings`` has it)."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str: ...

    @property
    def authority(self) -> str: ...

    @property
    def scope(self) -> str: ...


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _LoopbackHttpClient:
    """MSAL only accepts https authorities. For a local emulator on http://127.0.0.1 we hand MSAL the
    https form of the authority and downgrade those URLs here; any other host is left untouched."""

    def __init__(self, http_origin: str, timeout: float) -> None:
        self.session = requests.Session()
        self._http = http_origin.rstrip("/")
        self._https = "https://" + self._http.split("://", 1)[1]
        self.timeout = timeout

    def _fix(self, url: str) -> str:
        return self._http + url[len(self._https) :] if url.startswith(self._https) else url

    def get(self, url: str, params: Any = None, headers: Any = None, **kw: Any) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        resp = self.session.get(self._fix(url), params=params, headers=headers, **kw)
        if resp.status_code == 200 and url.endswith("/.well-known/openid-configuration"):
            # MSAL also insists on https endpoints in the discovery document: present them as https too.
            resp._content = resp.content.replace(f'"{self._http}'.encode(), f'"{self._https}'.encode())
        return resp

    def post(
        self, url: str, params: Any = None, data: Any = None, headers: Any = None, **kw: Any
    ) -> requests.Response:
        kw.setdefault("timeout", self.timeout)
        return self.session.post(self._fix(url), params=params, data=data, headers=headers, **kw)

    def close(self) -> None:
        self.session.close()


_APPS: dict[tuple[str, str, str], Any] = {}
_APPS_LOCK = threading.Lock()


def _entra_error(
    settings: ClientCredentials, code: str | None, message: str, *, transport: bool = False
) -> ApiError:
    cls = TransportError if transport else AuthError
    url = f"{settings.authority}/oauth2/v2.0/token"
    return cls("entra", "POST", url, None, code, redact_text(message, (settings.client_secret,)))


class MsalTokenProvider:
    """Client-credentials tokens from MSAL, one ConfidentialClientApplication per process and principal,
    so its in-memory cache reuses a token until near expiry (MSAL refreshes when < 5 min are left)."""

    def __init__(self, settings: ClientCredentials, timeout: float = 30.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def _app(self) -> Any:
        import msal

        s = self.settings
        key = (s.authority, s.client_id, hashlib.sha256(s.client_secret.encode()).hexdigest())
        with _APPS_LOCK:
            app = _APPS.get(key)
            if app is not None:
                return app
            parts = urlsplit(s.authority)
            kwargs: dict[str, Any] = {}
            authority = s.authority
            if parts.scheme == "http":
                if not _is_loopback(parts.hostname):
                    raise _entra_error(
                        s,
                        "insecure_authority",
                        "authority_url must be https (plain http only for a local emulator)",
                    )
                kwargs["http_client"] = _LoopbackHttpClient(f"http://{parts.netloc}", self.timeout)
                authority = "https://" + s.authority.split("://", 1)[1]
            from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS

            if (parts.hostname or "") not in WELL_KNOWN_AUTHORITY_HOSTS:
                kwargs.update(validate_authority=False, instance_discovery=False)
            try:
                app = msal.ConfidentialClientApplication(
                    s.client_id,
                    client_credential=s.client_secret,
                    authority=authority,
                    timeout=self.timeout,
                    **kwargs,
                )
            except ValueError as exc:  # tenant discovery failed (unknown tenant, bad authority)
                text = f"{exc} {exc.__context__ or ''}"
                m = re.search(r"AADSTS\d+[^\"]*", text)
                code = "invalid_tenant" if m and m.group(0).startswith("AADSTS90002") else "invalid_authority"
                raise _entra_error(s, code, m.group(0) if m else str(exc)) from None
            except requests.RequestException as exc:
                raise _entra_error(
                    s, type(exc).__name__, "cannot reach the Entra authority", transport=True
                ) from None
            _APPS[key] = app
            return app

    def token(self, force_refresh: bool = False) -> str:
        app = self._app()
        if force_refresh:  # acquire_token_for_client has no force_refresh: drop cached access tokens
            cache = app.token_cache
            for at in list(cache.search(cache.CredentialType.ACCESS_TOKEN)):
                cache.remove_at(at)
        try:
            result = app.acquire_token_for_client(scopes=[self.settings.scope])
        except requests.RequestException as exc:
            raise _entra_error(
                self.settings, type(exc).__name__, "cannot reach the Entra token endpoint", transport=True
            ) from None
        if "access_token" not in result:
            raise _entra_error(self.settings, result.get("error"), str(result.get("error_description", "")))
        return result["access_token"]

    def auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(force_refresh)}"}


def clear_token_cache() -> None:
    """Forget every MSAL application (tests; credential rotation)."""
    with _APPS_LOCK:
        _APPS.clear()

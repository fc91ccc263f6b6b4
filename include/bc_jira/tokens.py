"""Encrypted token storage, the single-refresher lock, and the Atlassian OAuth 2.0 (3LO) exchanges.

Why this exists: Atlassian rotates refresh tokens and revokes the whole grant when an invalidated one is
reused outside a short leeway. So the refresh token lives in ONE place (the state store, encrypted), only
one process refreshes at a time (``StateStore.token_lock``), and every waiter re-reads after the lock so it
uses the token its neighbour just got instead of presenting an already-rotated one.

No token or key ever appears in a log line, an exception message or a ``repr``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from bc_jira.http import ApiClient, ApiError, AuthError, RetryPolicy
from bc_jira.token_cipher import TokenCipher, get_cipher

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    import requests

    from bc_jira.store import StateStore, TokenTxn

log = logging.getLogger(__name__)

DEFAULT_AUTH_URL = "https://auth.atlassian.com"
DEFAULT_API_URL = "https://api.atlassian.com"
# Classic scopes the connector needs; offline_access is what yields a refresh token:
# https://developer.atlassian.com/cloud/jira/platform/scopes-for-connect-and-oauth-2-3LO-apps/
DEFAULT_SCOPES: tuple[str, ...] = (
    "read:jira-work",
    "write:jira-work",
    "read:jira-user",
    "manage:jira-webhook",
    "offline_access",
)
MIN_TTL_S = 60.0
# Atlassian ends every grant 365 days after the consent, however often it is refreshed, and a refresh token
# unused for 90 days. Warn 30 days ahead. https://community.developer.atlassian.com/t/54172 and
# https://community.developer.atlassian.com/t/refresh-token-expire-after-36000-seconds/60806/2
CONSENT_TTL_S = 365 * 86400.0
CONSENT_WARN_S = 30 * 86400.0
CONSENT_ROUTE = "/bc-jira/jira/oauth/start"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def consent_expires_at(meta: Mapping[str, Any] | None) -> float | None:
    """When Atlassian ends the grant: ``connected_at`` (the consent) + 365 days; None when unknown.

    ``connected_at`` is set by the OAuth callback; for a grant bootstrapped from the connection's
    ``refresh_token`` extra it is the first exchange (``consent_estimated``: the real consent was earlier).
    """
    at = (meta or {}).get("connected_at")
    try:
        return float(at) + CONSENT_TTL_S if at is not None else None
    except (TypeError, ValueError):
        return None


def consent_problem(meta: Mapping[str, Any] | None, now: float) -> str | None:
    """A sentence for logs and health when the consent ends within 30 days (or ended); else None."""
    ends = consent_expires_at(meta)
    if ends is None or ends - now > CONSENT_WARN_S:
        return None
    how = f"an Airflow user must consent again through {CONSENT_ROUTE}"
    estimated = (
        " (estimated from the first use of the bootstrap token)"
        if (meta or {}).get("consent_estimated")
        else ""
    )
    if ends <= now:
        return f"the Jira consent expired on {_utc(ends)}{estimated}: Atlassian's 365-day limit; {how}"
    return (
        f"the Jira consent expires on {_utc(ends)}{estimated} (Atlassian ends every grant 365 days after the "
        f"consent, however often it is refreshed): {how} before then"
    )


def refresh_failure(exc: ApiError, now: float) -> dict[str, Any]:
    """What the store records about a refused refresh (health shows it); the message never holds a token."""
    return {"at": now, "status": exc.status, "code": exc.code, "message": exc.message[:300]}


# -- Atlassian OAuth exchanges -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenSet:
    """An Atlassian token response; ``repr`` never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: float
    scope: str = ""

    @classmethod
    def from_response(cls, body: dict[str, Any], now: float | None = None) -> TokenSet:
        now = time.time() if now is None else now
        return cls(
            access_token=body["access_token"],
            refresh_token=body.get("refresh_token"),
            expires_at=now + float(body.get("expires_in") or 3600),
            scope=body.get("scope", ""),
        )


class SiteNotAccessible(ApiError):
    """The grant does not cover the configured site (it is not in accessible-resources)."""


def _norm_site(url: str) -> str:
    parts = urlsplit(url.strip() if "://" in url else f"https://{url.strip()}")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class AtlassianOAuth:
    """Authorization URL, code exchange, refresh (rotating) and accessible-resources against Atlassian."""

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        auth_url: str = DEFAULT_AUTH_URL,
        api_url: str = DEFAULT_API_URL,
        redirect_uri: str | None = None,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (10.0, 30.0),
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.auth_url = auth_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self.redirect_uri = redirect_uri
        self.scopes = tuple(scopes)
        retry = retry or RetryPolicy(max_attempts=3)
        self._auth = ApiClient("atlassian", self.auth_url, session=session, retry=retry, timeout=timeout)
        self._api = ApiClient("atlassian", self.api_url, session=session, retry=retry, timeout=timeout)

    def __repr__(self) -> str:
        return f"AtlassianOAuth(client_id={self.client_id!r}, auth_url={self.auth_url!r})"

    def authorization_url(
        self, state: str, *, scopes: Sequence[str] | None = None, redirect_uri: str | None = None
    ) -> str:
        """The consent URL: audience api.atlassian.com, offline_access always included, prompt=consent."""
        wanted = list(scopes or self.scopes)
        if "offline_access" not in wanted:
            wanted.append("offline_access")
        redirect = redirect_uri or self.redirect_uri
        if not redirect:
            raise ValueError(
                "redirect_uri is required for the authorization URL (connection extra redirect_uri)"
            )
        query = urlencode(
            {
                "audience": "api.atlassian.com",
                "client_id": self.client_id,
                "scope": " ".join(wanted),
                "redirect_uri": redirect,
                "state": state,
                "response_type": "code",
                "prompt": "consent",
            },
            quote_via=quote,
        )
        return f"{self.auth_url}/authorize?{query}"

    def _token(self, body: dict[str, Any]) -> TokenSet:
        # A token POST is not safe to repeat blindly (a refresh rotates the token): retry_unsafe stays False.
        resp = self._auth.post_json(
            "/oauth/token", json={**body, "client_id": self.client_id, "client_secret": self._client_secret}
        )
        if not isinstance(resp, dict) or "access_token" not in resp:
            raise ApiError(
                "atlassian",
                "POST",
                f"{self.auth_url}/oauth/token",
                200,
                "invalid_response",
                "token endpoint answered without an access_token",
            )
        return TokenSet.from_response(resp)

    def exchange_code(self, code: str, redirect_uri: str | None = None) -> TokenSet:
        redirect = redirect_uri or self.redirect_uri
        return self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect})

    def refresh(self, refresh_token: str) -> TokenSet:
        """Refresh; the answer carries a NEW refresh token and the old one dies (after a short leeway)."""
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def accessible_resources(self, access_token: str) -> list[dict[str, Any]]:
        return (
            self._api.get_json(
                "/oauth/token/accessible-resources", headers={"Authorization": f"Bearer {access_token}"}
            )
            or []
        )

    def resolve_cloud_id(self, access_token: str, site_url: str) -> str:
        """The cloudId of ``site_url``; never the first entry by accident (the list has no order)."""
        resources = self.accessible_resources(access_token)
        want = _norm_site(site_url)
        for res in resources:
            if _norm_site(str(res.get("url", ""))) == want:
                return str(res["id"])
        available = ", ".join(sorted(str(r.get("url")) for r in resources)) or "none"
        raise SiteNotAccessible(
            "atlassian",
            "GET",
            f"{self.api_url}/oauth/token/accessible-resources",
            200,
            "site_not_accessible",
            f"the OAuth grant has no access to {want}; sites available to it: {available}. Fix the "
            "connection's site_url or consent again choosing that site",
        )


# -- the token provider --------------------------------------------------------------------------------------


class _Cached:
    __slots__ = ("access_token", "consent_expires_at", "expires_at", "meta")

    def __init__(self, access_token: str, expires_at: float, meta: Mapping[str, Any] | None = None) -> None:
        self.access_token = access_token
        self.expires_at = expires_at
        self.meta = dict(meta or {})
        self.consent_expires_at = consent_expires_at(self.meta)


class JiraTokenProvider:
    """TokenProvider for Atlassian OAuth: encrypted tokens in the state store, one refresher at a time.

    ``auth_header()`` answers from a per-process cache, else from the store, else refreshes under
    ``store.token_lock(name)``; after taking the lock it re-reads the row and uses a neighbour's fresh token
    when there is one. The new refresh token is saved in the same transaction as the access token.
    """

    _process_cache: dict[tuple[str, str], _Cached] = {}
    _process_locks: dict[tuple[str, str], threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(
        self,
        store: StateStore | Callable[[], StateStore],
        oauth: AtlassianOAuth,
        name: str,
        *,
        bootstrap_refresh_token: str | None = None,
        cipher: TokenCipher | None = None,
        min_ttl_s: float = MIN_TTL_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store_arg = store
        self.oauth = oauth
        self.name = name
        self._bootstrap = bootstrap_refresh_token or None
        self._cipher = cipher
        self.min_ttl_s = min_ttl_s
        self.clock = clock
        self.refreshes = 0  # refreshes done by this instance (tests, logs)
        self._consent_warned = False

    def __repr__(self) -> str:
        return f"JiraTokenProvider(name={self.name!r})"

    # -- plumbing --------------------------------------------------------------------------------------------
    @property
    def store(self) -> StateStore:
        if callable(self._store_arg) and not hasattr(self._store_arg, "token_lock"):
            self._store_arg = self._store_arg()
        return self._store_arg  # type: ignore[return-value]

    @property
    def cipher(self) -> TokenCipher:
        return self._cipher or get_cipher()

    def _key(self) -> tuple[str, str]:
        store = self.store
        ident = str(
            getattr(store, "url", None) or getattr(store, "engine", None) and store.engine.url or id(store)
        )
        return ident, self.name

    def _local_lock(self) -> threading.Lock:
        with self._guard:
            return self._process_locks.setdefault(self._key(), threading.Lock())

    def _fresh(self, expires_at: float | None) -> bool:
        return expires_at is not None and expires_at - self.clock() > self.min_ttl_s

    def _from_row(self, row: Any) -> _Cached | None:
        if row is None or not row.access_token_enc or not self._fresh(row.expires_at):
            return None
        return _Cached(self.cipher.decrypt(row.access_token_enc), float(row.expires_at), row.meta)

    def clear_cache(self) -> None:
        self._process_cache.pop(self._key(), None)

    # -- TokenProvider ---------------------------------------------------------------------------------------
    def auth_header(self, force_refresh: bool = False) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token(force_refresh=force_refresh)}"}

    def access_token(self, force_refresh: bool = False) -> str:
        got = self._token(force_refresh)
        self._warn_consent(got)
        return got.access_token

    def _warn_consent(self, got: _Cached) -> None:
        """Once per provider (i.e. per task): warn in the task log in the 30 days before the consent ends."""
        if self._consent_warned or got.consent_expires_at is None:
            return
        problem = consent_problem(got.meta, self.clock())
        if problem:
            self._consent_warned = True
            log.warning("jira token %s: %s", self.name, problem)

    def _token(self, force_refresh: bool) -> _Cached:
        key = self._key()
        cached = self._process_cache.get(key)
        if not force_refresh and cached is not None and self._fresh(cached.expires_at):
            return cached
        rejected = cached.access_token if (force_refresh and cached is not None) else None
        with self._local_lock():  # one thread per process queues on the cross-process lock
            cached = self._process_cache.get(key)  # another thread of this process may have refreshed
            if (
                cached is not None
                and self._fresh(cached.expires_at)
                and (not force_refresh or cached.access_token != rejected)
            ):
                return cached
            if not force_refresh:
                got = self._from_row(self.store.get_token(self.name))
                if got is not None:
                    self._process_cache[key] = got
                    return got
            got = self._refresh_locked(rejected, force_refresh)
            self._process_cache[key] = got
            return got

    def _refresh_locked(self, rejected: str | None, force: bool) -> _Cached:
        with self.store.token_lock(self.name) as txn:
            got = self._refresh_in(txn, rejected, force)
        # A refused refresh was recorded in the row (committed above, so health sees it): now raise.
        if isinstance(got, AuthError):
            raise got from None
        return got

    def refresh_now(self) -> None:
        """Refresh under the lock even when the stored token is fresh, saved as any refresh: the Test button's
        proof of the typed client id/secret. A 401 (those, not the grant) leaves the row as it was."""
        with self._local_lock(), self.store.token_lock(self.name) as txn:
            held = txn.row.access_token_enc if txn.row is not None else None
            got = self._refresh_in(txn, self.cipher.decrypt(held) if held else "", True, record_401=False)
        if isinstance(got, AuthError):
            raise got from None
        self._process_cache[self._key()] = got

    def _refresh_in(
        self, txn: TokenTxn, rejected: str | None, force: bool, *, record_401: bool = True
    ) -> _Cached | AuthError:
        """Inside the lock: a neighbour's token, else one refresh; a refusal is saved and returned."""
        row = txn.row
        current = self._from_row(row)
        # A neighbour refreshed while we waited (or, when forced, the store holds a different token
        # than the one the API just rejected): use theirs, never rotate twice.
        if current is not None and (not force or current.access_token != rejected):
            log.debug("jira token %s: using the token a neighbour refreshed", self.name)
            return current
        # Resolve the cipher first: a refresh token spent at Atlassian that we then cannot save is lost,
        # and reusing its predecessor later revokes the whole grant.
        cipher = self.cipher
        stored = cipher.decrypt(row.refresh_token_enc) if row and row.refresh_token_enc else None
        # Once the store holds a refresh token it is the only one used: the connection extra is a one-time
        # bootstrap, rotated away by its first exchange (reusing it later would revoke the grant).
        refresh_token = stored or self._bootstrap
        if not refresh_token:
            raise AuthError(
                "atlassian",
                "POST",
                f"{self.oauth.auth_url}/oauth/token",
                None,
                "no_refresh_token",
                f"no refresh token stored under {self.name!r}: connect Jira once through "
                f"{CONSENT_ROUTE} or set the connection extra refresh_token",
            )
        meta = dict(row.meta) if row is not None and row.meta else {}
        try:
            tokens = self.oauth.refresh(refresh_token)
        except AuthError as exc:
            return exc if exc.status == 401 and not record_401 else self._refused(txn, exc, meta)
        self.refreshes += 1
        new_refresh = tokens.refresh_token or refresh_token
        now = self.clock()
        meta["refreshed_at"] = now
        meta["client_id"] = self.oauth.client_id
        meta.pop("last_refresh_error", None)
        if stored is None:
            log.info(
                "jira token %s: the connection's bootstrap refresh token was exchanged; from now on only "
                "the state store's rotating token is used",
                self.name,
            )
            if "connected_at" not in meta:  # the consent happened earlier; this is the best we know
                meta["connected_at"] = now
                meta["consent_estimated"] = True
        txn.save(cipher.encrypt(new_refresh), cipher.encrypt(tokens.access_token), tokens.expires_at, meta)
        log.info("jira token %s refreshed; valid until %s", self.name, _utc(tokens.expires_at))
        return _Cached(tokens.access_token, tokens.expires_at, meta)

    def _refused(self, txn: TokenTxn, exc: AuthError, meta: dict[str, Any]) -> AuthError:
        """Record a refused refresh in the row (tokens kept as they are); the error to raise after commit."""
        row = txn.row
        meta["last_refresh_error"] = refresh_failure(exc, self.clock())
        txn.save(
            row.refresh_token_enc if row else None,
            row.access_token_enc if row else None,
            row.expires_at if row else None,
            meta,
        )
        log.error("jira token %s: refresh refused (%s %s)", self.name, exc.status, exc.code)
        if exc.code not in ("invalid_grant", "unauthorized_client"):
            return exc
        ended = consent_problem(meta, self.clock()) if self._consent_over(meta) else None
        why = ended or "the stored Jira refresh token was revoked or expired"
        message = f"{exc.message} — {why}; consent again through {CONSENT_ROUTE}"
        return AuthError(exc.service, exc.method, exc.url, exc.status, exc.code, message)

    def _consent_over(self, meta: Mapping[str, Any]) -> bool:
        ends = consent_expires_at(meta)
        return ends is not None and ends <= self.clock()

    # -- writes outside refresh ------------------------------------------------------------------------------
    def store_tokens(self, tokens: TokenSet, meta: dict[str, Any] | None = None) -> None:
        """Save a fresh consent (the OAuth callback) encrypted; replaces whatever grant was stored."""
        if not tokens.refresh_token:
            raise ValueError("the token response has no refresh_token: add offline_access to the scopes")
        with self.store.token_lock(self.name) as txn:
            merged = {**(txn.row.meta if txn.row is not None and txn.row.meta else {}), **(meta or {})}
            # A consent starts a new 365-day grant and clears the record of an earlier refused refresh.
            merged["connected_at"] = (meta or {}).get("connected_at") or self.clock()
            merged["client_id"] = self.oauth.client_id
            for stale in ("consent_estimated", "last_refresh_error"):
                merged.pop(stale, None)
            txn.save(
                self.cipher.encrypt(tokens.refresh_token),
                self.cipher.encrypt(tokens.access_token),
                tokens.expires_at,
                merged,
            )
        self._process_cache[self._key()] = _Cached(tokens.access_token, tokens.expires_at, merged)

    def get_meta(self) -> dict[str, Any]:
        row = self.store.get_token(self.name)
        return dict(row.meta) if row is not None and row.meta else {}

    def update_meta(self, **values: Any) -> None:
        """Merge values (e.g. the resolved cloudId) into the token row's meta; tokens are kept as they are."""
        with self.store.token_lock(self.name) as txn:
            row = txn.row
            if row is None:
                return
            txn.save(
                row.refresh_token_enc, row.access_token_enc, row.expires_at, {**(row.meta or {}), **values}
            )

    def reencrypt(self) -> bool:
        """Re-encrypt the stored tokens with the newest key (key rotation); True when a row was rewritten."""
        with self.store.token_lock(self.name) as txn:
            row = txn.row
            if row is None:
                return False
            txn.save(
                self.cipher.rotate(row.refresh_token_enc) if row.refresh_token_enc else None,
                self.cipher.rotate(row.access_token_enc) if row.access_token_enc else None,
                row.expires_at,
                row.meta or {},
            )
            return True

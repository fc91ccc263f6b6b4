"""The ``jira_cloud`` connection: what it says (``JiraSettings``), which stored grant a test may use, and
what the Test button tells the user when a check fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bc_jira.failfast import ConnectionConfigError
from bc_jira.http import ApiError, AuthError, NotFoundError, TransportError
from bc_jira.token_cipher import TokenCryptoError
from bc_jira.tokens import CONSENT_ROUTE, DEFAULT_API_URL, DEFAULT_AUTH_URL, SiteNotAccessible

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from bc_jira.store import TokenRow
    from bc_jira.tokens import AtlassianOAuth, JiraTokenProvider


@dataclass(frozen=True)
class JiraSettings:
    """What the connection says; ``repr`` never shows a secret."""

    auth: str  # "oauth2" | "basic"
    site_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri: str | None = None
    auth_url: str = DEFAULT_AUTH_URL
    api_url: str = DEFAULT_API_URL
    refresh_token: str | None = field(default=None, repr=False)
    email: str | None = None
    api_token: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)


def _missing(fields: tuple[tuple[str, object], ...]) -> list[str]:
    return [name for name, value in fields if not value]


def settings_from_connection(
    conn_id: str, host: str | None, login: str | None, password: str | None, extra: Mapping[str, Any]
) -> JiraSettings:
    """``JiraSettings`` from a connection's fields (``extra.auth``: ``oauth2``, the default, or ``basic``).

    Raises ``ValueError`` naming every missing field, or an unknown ``auth``.
    """
    auth = str(extra.get("auth") or "oauth2").lower()
    if auth == "basic":
        return _basic_settings(conn_id, host, login, password, extra)
    if auth != "oauth2":
        raise ConnectionConfigError(
            f"connection {conn_id!r}: extra.auth must be 'oauth2' or 'basic', not {auth!r}"
        )
    site = extra.get("site_url")
    missing = _missing(
        (("login (client id)", login), ("password (client secret)", password), ("extra.site_url", site))
    )
    if missing:
        raise ConnectionConfigError(f"connection {conn_id!r} (auth=oauth2) is missing {', '.join(missing)}")
    return JiraSettings(
        auth="oauth2",
        site_url=str(site).rstrip("/"),
        client_id=login,
        client_secret=password,
        redirect_uri=extra.get("redirect_uri"),
        auth_url=(extra.get("auth_url") or DEFAULT_AUTH_URL).rstrip("/"),
        api_url=(extra.get("api_url") or DEFAULT_API_URL).rstrip("/"),
        refresh_token=extra.get("refresh_token") or None,
        webhook_secret=extra.get("webhook_secret"),
    )


def _basic_settings(
    conn_id: str, host: str | None, login: str | None, password: str | None, extra: Mapping[str, Any]
) -> JiraSettings:
    """Basic auth reads its own fields (``extra.email``, ``extra.api_token``, ``extra.site_url``, as the form
    shows them); ``login``, ``password`` and ``host`` are still read when those are empty (older
    connections)."""
    site = extra.get("site_url") or host
    email = extra.get("email") or login
    token = extra.get("api_token") or password
    missing = _missing(
        (("extra.site_url (site URL)", site), ("extra.email", email), ("extra.api_token (API token)", token))
    )
    if missing or not site:
        raise ConnectionConfigError(f"connection {conn_id!r} (auth=basic) is missing {', '.join(missing)}")
    site = str(site)
    if "://" not in site:
        site = f"https://{site}"
    return JiraSettings(
        auth="basic",
        site_url=site.rstrip("/"),
        email=email,
        api_token=token,
        webhook_secret=extra.get("webhook_secret"),
    )


def site_cloud_id(provider: JiraTokenProvider, oauth: AtlassianOAuth, site_url: str) -> str:
    """The site's cloudId: cached in the token row's meta, else resolved via accessible-resources."""
    meta = provider.get_meta()
    if meta.get("cloud_id") and str(meta.get("site_url", "")).lower() == site_url.lower():
        return str(meta["cloud_id"])
    cloud_id = oauth.resolve_cloud_id(provider.access_token(), site_url)
    provider.update_meta(cloud_id=cloud_id, site_url=site_url)
    return cloud_id


class TokenRows(Protocol):
    """The part of the state store a connection test reads (``StateStore.list_tokens``)."""

    def list_tokens(self, prefix: str = "") -> Sequence[TokenRow]: ...


def grant_for_test(store: TokenRows, own_name: str, s: JiraSettings) -> tuple[str | None, str]:
    """:func:`choose_test_grant` over the store's rows; an unreachable store is a reason, not a crash."""
    try:
        rows = store.list_tokens("jira:")
    except Exception as exc:  # noqa: BLE001 - report, do not crash the test button
        return None, f"The connector's state store is not reachable ({type(exc).__name__}): check bc_jira_db"
    return choose_test_grant(own_name, rows, s.client_id, s.site_url, has_bootstrap=bool(s.refresh_token))


def choose_test_grant(
    own_name: str,
    rows: Sequence[TokenRow],
    client_id: str | None,
    site_url: str,
    *,
    has_bootstrap: bool,
) -> tuple[str | None, str]:
    """Which stored token row a connection test may use: ``(name, "")``, or ``(None, why not)``.

    Airflow's Test button runs ``test_connection`` on a copy of the connection under a random id, so the
    hook's own row (``jira:<conn_id>``) is usually not the DAGs' row. Spending the bootstrap refresh token
    there would rotate it away from the DAGs, and Atlassian revokes the whole grant when a rotated token is
    used again (https://community.developer.atlassian.com/t/54172). So: the own row if it holds a grant,
    else the one stored grant of the same OAuth client and site, else nothing (the test refuses, and says
    what to do).
    """
    by_name = {r.name: r for r in rows}
    own = by_name.get(own_name)
    if own is not None and (own.refresh_token_enc or own.access_token_enc):
        return own_name, ""
    failure = (own.meta or {}).get("last_refresh_error") if own is not None else None
    if failure:
        return None, (
            f"The last Jira token refresh was refused ({failure.get('code')}: {failure.get('message')}): "
            f"an Airflow user must consent again through {CONSENT_ROUTE}"
        )
    site = site_url.rstrip("/").lower()
    same = [
        r.name
        for r in rows
        if r.refresh_token_enc
        and str((r.meta or {}).get("site_url", "")).rstrip("/").lower() == site
        and (r.meta or {}).get("client_id") in (None, client_id)
    ]
    if len(same) == 1:
        return same[0], ""
    if len(same) > 1:
        return None, (
            f"Not tested: several stored Jira grants match {site_url} ({', '.join(same)}); test from a task "
            "that uses the connection (e.g. run bc_jira_connect)"
        )
    if not has_bootstrap:
        return None, (
            "Not tested yet: no Jira grant is stored. An Airflow user must consent once: open "
            f"{CONSENT_ROUTE} on this Airflow, then click Test again"
        )
    return None, (
        "Not tested yet: no Jira grant is stored. Trigger the bc_jira_connect DAG once (it exchanges the "
        f"bootstrap refresh token), or consent through {CONSENT_ROUTE}, then click Test again. Test never "
        "spends the bootstrap token itself: Atlassian rotates it on use and revokes the grant when the old "
        "one is used again"
    )


def explain_failure(exc: ApiError | TokenCryptoError, s: JiraSettings) -> str:
    """The Test button's sentence for a failed check: what is wrong and what to do."""
    if isinstance(exc, SiteNotAccessible):
        return f"No access to the Jira site: {exc.message}"
    if isinstance(exc, TokenCryptoError):
        return str(exc)
    if isinstance(exc, AuthError):
        return _explain_auth(exc, s)
    if isinstance(exc, TransportError):
        return f"Cannot reach {exc.url.split('?')[0]}: {exc.code}"
    if isinstance(exc, NotFoundError):
        return f"Jira API not found at {s.site_url} ({exc.path}): check the site URL"
    return f"Jira call failed: {exc}"


def _explain_auth(exc: AuthError, s: JiraSettings) -> str:
    if exc.service == "atlassian":
        if exc.code in ("access_denied", "unauthorized_client", "invalid_client") and exc.status == 401:
            return (
                f"Atlassian rejected the OAuth client id/secret (client id {s.client_id}): the "
                "connection password (client secret) is wrong or was rotated in the developer console"
            )
        if exc.code == "invalid_grant":
            return (
                "The Jira refresh token was revoked or expired (invalid_grant): consent again through "
                "/bc-jira/jira/oauth/start (a reused rotated token revokes the whole grant)"
            )
        if exc.code == "no_refresh_token":
            return exc.message
        return f"Atlassian token request failed: {exc.code}: {exc.message}"
    if s.auth == "basic":
        return (
            f"Jira rejected the email/API token for {s.email} at {s.site_url} ({exc.status}): create a "
            "new API token at id.atlassian.com and put it in the connection password"
        )
    return (
        f"Jira refused the OAuth access token ({exc.status} {exc.code}: {exc.message}): check the app's "
        "scopes (read:jira-work write:jira-work read:jira-user manage:jira-webhook offline_access)"
    )

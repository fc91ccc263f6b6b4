"""The ``jira_cloud`` connection: what it says (``JiraSettings``) and which stored grant a test may use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bc_jira.tokens import CONSENT_ROUTE, DEFAULT_API_URL, DEFAULT_AUTH_URL

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bc_jira.store import TokenRow


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
    used again (jira-api.md 1.3). So: the own row if it holds a grant, else the one stored grant of the same
    OAuth client and site, else nothing (the test refuses, and says what to do).
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
        return None, f"No Jira grant is stored yet: an Airflow user must consent once through {CONSENT_ROUTE}"
    return None, (
        "Not tested: no Jira grant is stored yet. The connection's refresh_token is a one-time bootstrap "
        "that the first task exchanges under the connector's single-refresher lock; a test does not spend "
        "it, because Atlassian rotates it on use and revokes the grant when the old one is used again. Run "
        f"the bc_jira_connect DAG (or consent through {CONSENT_ROUTE}), then test again"
    )

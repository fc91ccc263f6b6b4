"""The shared secrets the intake checks deliveries against, read from the Airflow connections (server side).

``client_state`` (``bc_default`` extra), ``webhook_secret`` and the OAuth client secret (``jira_default``),
read through ``bc_jira.airflow_conn`` so an unreadable connection fails closed (503), never open.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secrets:
    """The shared secrets the intake checks against; ``repr`` shows none of them."""

    client_state: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    jira_client_secret: str | None = field(default=None, repr=False)


_secrets_cache: dict[tuple[str, str], tuple[float, Secrets]] = {}
_secrets_lock = threading.Lock()
SECRETS_TTL_S = 30.0


def secrets_from_airflow(bc_conn_id: str = "bc_default", jira_conn_id: str = "jira_default") -> Secrets:
    """client_state (bc_default extra), webhook_secret and the OAuth client secret (jira_default).

    Cached for ``SECRETS_TTL_S`` so a burst of deliveries does not read the connection each time, while a
    rotated secret is picked up within half a minute.
    """
    key = (bc_conn_id, jira_conn_id)
    with _secrets_lock:
        hit = _secrets_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < SECRETS_TTL_S:
            return hit[1]
    # None only when not defined; unreadable -> ConnectionUnavailable (fail closed: the route answers 503
    # and stages nothing unverified)
    from bc_jira.airflow_conn import get_connection

    bc = get_connection(bc_conn_id)
    jira = get_connection(jira_conn_id)
    bc_extra = (bc.extra_dejson or {}) if bc is not None else {}
    jira_extra = (jira.extra_dejson or {}) if jira is not None else {}
    oauth = (jira_extra.get("auth") or "oauth2").lower() == "oauth2"
    found = Secrets(
        client_state=bc_extra.get("client_state") or None,
        webhook_secret=jira_extra.get("webhook_secret") or None,
        jira_client_secret=(jira.password or None) if (jira is not None and oauth) else None,
    )
    with _secrets_lock:
        _secrets_cache[key] = (time.monotonic(), found)
    return found


def clear_secrets_cache() -> None:
    with _secrets_lock:
        _secrets_cache.clear()

"""The health route's report: state store reachable, Jira token freshness, edge expiry, event backlog, and
per company (``companies``): its watermarks' age, its subscriptions' expiry, its last error.

Pure apart from reading the store: each section is decided by a small function from the stored rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from bc_jira import timeutil
from bc_jira.edges.intake import BC_ENTITIES, KIND_JIRA_TRANSITION, bc_kind
from bc_jira.edges.webhooks import ADMIN_DELIVERIES, APP_DELIVERIES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

    from bc_jira.edges.protocols import HealthStore, StoredToken

BC_WARN_LEFT = timedelta(hours=24)
JIRA_WARN_LEFT = timedelta(days=7)
REFRESH_TOKEN_WARN_AGE = timedelta(days=75)  # Atlassian expires a refresh token unused for 90 days


def _iso(dt: datetime | None) -> str | None:
    return timeutil.iso(dt) if dt else None


def _left(expiration: Any, t: datetime) -> tuple[datetime | None, float | None]:
    exp = timeutil.try_parse_ts(expiration)
    return exp, ((exp - t).total_seconds() if exp else None)


def jira_token_health(token: StoredToken | None, t: datetime) -> tuple[dict[str, Any], list[str]]:
    """The health route's Jira token section and its problems (pure: decides from the stored row only).

    Problems: a refresh Atlassian refused (revoked grant, expired token, wrong client secret), the 365-day
    consent ending within 30 days or over, and a refresh token idle for 75 of its 90 days.
    """
    from bc_jira.tokens import CONSENT_ROUTE, consent_expires_at, consent_problem

    if token is None:
        return {"present": False}, []
    meta = token.meta or {}
    refreshed = token.updated_at
    ends = consent_expires_at(meta)
    failure = meta.get("last_refresh_error") or None
    section = {
        "present": True,
        "has_refresh_token": bool(token.refresh_token_enc),
        "access_token_valid_s": int(token.expires_at - time.time()) if token.expires_at else None,
        "last_saved": _iso(refreshed),
        "cloud_id": meta.get("cloud_id"),
        "consent_expires_at": _iso(datetime.fromtimestamp(ends, UTC)) if ends is not None else None,
        "consent_estimated": bool(meta.get("consent_estimated")),
        "last_refresh_error": failure,
    }
    problems: list[str] = []
    if failure:
        at = _iso(datetime.fromtimestamp(float(failure.get("at") or 0), UTC))
        problems.append(
            f"Jira token refresh refused at {at} ({failure.get('status')} {failure.get('code')}: "
            f"{failure.get('message')}): every Jira call fails until an Airflow user consents again through "
            f"{CONSENT_ROUTE} (or fixes the client secret when the code is access_denied/invalid_client)"
        )
    consent = consent_problem(meta, t.timestamp())
    if consent:
        problems.append(consent[0].upper() + consent[1:])
    if refreshed and t - refreshed > REFRESH_TOKEN_WARN_AGE:
        problems.append(f"Jira refresh token unused since {_iso(refreshed)} (expires after 90 days idle)")
    return section, problems


def subscriptions_health(
    rows: Iterable[Mapping[str, Any]], t: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """The BC subscriptions section: expiry per entity (and company); a problem when under a day (or
    unknown), naming the company when the row has one."""
    subs, problems = [], []
    for s in rows:
        exp, left = _left(s.get("expiration"), t)
        subs.append(
            {
                "entity": s.get("entity"),
                "subscription_id": s.get("subscription_id"),
                "expires": _iso(exp),
                "left_s": int(left) if left is not None else None,
                "last_action": s.get("last_action"),
                "last_error": s.get("last_error"),
                "company": s.get("company") or "",
            }
        )
        if left is None or left < BC_WARN_LEFT.total_seconds():
            who = f" ({s['company_name']})" if s.get("company_name") else ""
            problems.append(f"BC subscription for {s.get('entity')}{who} expires {_iso(exp) or 'unknown'}")
    return subs, problems


def webhooks_health(rows: Iterable[Mapping[str, Any]], t: datetime) -> tuple[dict[str, Any], list[str]]:
    """The Jira webhook sections: REST webhooks' expiry (a problem under a week), deliveries per kind."""
    report: dict[str, Any] = {}
    hooks, problems = [], []
    for w in rows:
        if w.get("name") == ADMIN_DELIVERIES:
            report["jira_admin_webhook"] = {"last_delivery_at": w.get("last_delivery_at")}
            continue
        if w.get("name") == APP_DELIVERIES:
            report["jira_app_webhook"] = {"last_delivery_at": w.get("last_delivery_at")}
            continue
        exp, left = _left(w.get("expiration"), t)
        hooks.append(
            {
                "name": w.get("name"),
                "ids": w.get("ids"),
                "expires": _iso(exp),
                "left_s": int(left) if left is not None else None,
                "last_error": w.get("last_error"),
            }
        )
        if left is None or left < JIRA_WARN_LEFT.total_seconds():
            problems.append(f"Jira webhook {w.get('name')} expires {_iso(exp) or 'unknown'}")
    report["jira_webhooks"] = hooks
    return report, problems


def health_report(
    store: HealthStore,
    *,
    now: Callable[[], datetime] = timeutil.now,
    jira_token_name: str = "jira:jira_default",
    companies: Sequence[CompanyInfo] | None = None,
    watermark: Callable[[str], str | None] = lambda key: None,
) -> dict[str, Any]:
    """State store reachable, Jira token freshness, subscription/webhook expiry, event backlog, per company.

    ``companies``: the configured ones (None: the ones the subscription rows name, else the connection's
    own); ``watermark(variable key)``: a watermark Variable's value.
    """
    report: dict[str, Any] = {"ok": True, "problems": []}
    problems: list[str] = report["problems"]
    try:
        store.ping()
        report["store"] = {"ok": True, "where": store.describe() if hasattr(store, "describe") else None}
    except Exception as exc:  # noqa: BLE001 - any failure of the store is the report, not a crash
        report.update(ok=False, store={"ok": False, "error": type(exc).__name__})
        problems.append("state store unreachable")
        return report
    t = now()
    report["jira_token"], token_problems = jira_token_health(store.get_token(jira_token_name), t)
    rows = store.list_subscriptions()
    report["bc_subscriptions"], sub_problems = subscriptions_health(rows, t)
    hooks, hook_problems = webhooks_health(store.list_webhooks(), t)
    report.update(hooks)
    problems.extend(token_problems + sub_problems + hook_problems)
    kinds = [KIND_JIRA_TRANSITION, *(bc_kind(e) for e in BC_ENTITIES.values())]
    report["pending_events"] = {k: store.count_pending(k) for k in kinds}
    infos = list(companies) if companies is not None else companies_of_rows(rows)
    report["companies"] = []
    for info in infos:
        errors = store.latest_per_record(errors_only=True, company=info.key, limit=1)
        section = company_health(
            info, rows, {e: watermark(k) for e, k in (info.watermarks or {}).items()}, errors, t
        )
        report["companies"].append(section)
    report["ok"] = not problems
    worst = max((_RANK[c["status"]] for c in report["companies"]), default=0)
    report["status"] = _STATUS[max(worst, 1 if problems else 0)]
    return report


# -- per company ------------------------------------------------------------------------------------------

_STATUS = ("ok", "warn", "error")
_RANK = {s: i for i, s in enumerate(_STATUS)}


@dataclass(frozen=True)
class CompanyInfo:
    """What the report needs of a company: its store key, GUID, names, watermark Variable per entity."""

    key: str  # the store key ("": the default company)
    company_id: str
    name: str = ""
    connection: str = "bc_default"
    watermarks: Mapping[str, str] | None = None  # entity -> Variable key
    ident: str = ""  # the 8-hex company key (labels, the audit page's filter); the default company's too

    def __post_init__(self) -> None:
        if self.watermarks is None:
            from bc_jira.config.companies import watermark_key
            from bc_jira.entities import ENTITIES

            object.__setattr__(self, "watermarks", {e: watermark_key(e, self.key) for e in ENTITIES})


def companies_of_rows(rows: Iterable[Mapping[str, Any]]) -> list[CompanyInfo]:
    """Without the config: the companies the subscription rows name (rows from before: the default one)."""
    seen: dict[str, CompanyInfo] = {}
    for r in rows:
        key = str(r.get("company") or "")
        seen.setdefault(
            key,
            CompanyInfo(
                key,
                str(r.get("company_id") or ""),
                str(r.get("company_name") or ""),
                r.get("connection") or "",
            ),
        )
    return list(seen.values()) or [CompanyInfo("", "")]


def _watermarks(values: Mapping[str, str | None], t: datetime) -> dict[str, dict[str, Any]]:
    out = {}
    for entity, value in values.items():
        at = timeutil.try_parse_ts(value) if value else None
        out[entity] = {"value": value, "age_s": int((t - at).total_seconds()) if at else None}
    return out


def _last_error(errors: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    if not errors:
        return None
    e = errors[0]
    at = e.get("at")
    return {
        "at": timeutil.iso(at) if isinstance(at, datetime) else at,
        "entity": e.get("entity"),
        "bc_id": e.get("bc_id"),
        "document_number": e.get("document_number"),
        "action": e.get("action"),
        "error": str(e.get("error") or "")[:300],
    }


def company_health(
    info: CompanyInfo,
    rows: Iterable[Mapping[str, Any]],
    watermarks: Mapping[str, str | None],
    errors: Sequence[Mapping[str, Any]],
    t: datetime,
) -> dict[str, Any]:
    """One company's section (pure): ``error`` when a subscription failed or is about to lapse, ``warn``
    when a record's last action failed (``last_error``: the newest such), else ``ok``. Watermark ages are
    reported, not judged: a quiet company keeps an old watermark. The report's ``status`` is the worst
    company's (its ``ok`` stays what it was: no problem with the store, token or edges)."""
    mine = [r for r in rows if str(r.get("company") or "") == info.key]
    subs, problems = subscriptions_health(mine, t)
    failing = [s for s in subs if s["last_error"]]
    problems += [f"BC subscription for {s['entity']} failed: {s['last_error']}" for s in failing]
    last = _last_error(errors)
    status = "error" if problems else ("warn" if last else "ok")
    if last:
        problems.append(f"{last['entity']} {last['document_number'] or last['bc_id']}: {last['error']}")
    return {
        "name": info.name or info.key or "default",
        "key": info.key,
        "company_id": info.company_id,
        "connection": info.connection,
        "status": status,
        "watermarks": _watermarks(watermarks, t),
        "bc_subscriptions": subs,
        "last_error": last,
        "problems": problems,
    }

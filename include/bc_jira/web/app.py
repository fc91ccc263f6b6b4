"""The connector's web app (mounted by the plugin under ``/bc-jira``): webhook intake, Jira OAuth, health.

Thin on purpose: verification and staging live in ``bc_jira.edges.intake``, token handling in
``bc_jira.tokens``, health in ``bc_jira.edges.health``. Airflow applies no auth to plugin apps, so the
webhook routes check their own shared secrets (BC ``clientState``, Jira HMAC / app JWT) and the OAuth start
route requires a logged-in Airflow user (cookie or bearer token). Blocking work (state store, connections)
runs in the threadpool.

FastAPI's own idiom: module-level routers, collaborators as dependencies (``get_store_factory``,
``get_secrets_factory``, ``get_jira_hook_factory``) that tests replace through ``dependency_overrides``.
The webhook routes take *factories*, not the store itself: a BC handshake must be answered without touching
the store, and a store that cannot be opened must become a retryable 503 (``intake.safely``), not a 500.
"""

from __future__ import annotations

import html
import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from airflow.api_fastapi.core_api.security import get_user
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response

from bc_jira.edges import intake, shared_secrets
from bc_jira.edges.health import CompanyInfo, health_report
from bc_jira.edges.protocols import DeliveryStore, HealthStore, WebhookStore
from bc_jira.edges.webhooks import note_delivery
from bc_jira.web import audit_view
from bc_jira.web.companies import configured_companies

if TYPE_CHECKING:
    from bc_jira.hooks.jira import JiraCloudHook
    from bc_jira.store import StateStore

log = logging.getLogger(__name__)

URL_PREFIX = "/bc-jira"
BC_CONN_ID = "bc_default"
JIRA_CONN_ID = "jira_default"


class WebStore(DeliveryStore, HealthStore, WebhookStore, Protocol):
    """What the routes need from the state store: staging, health, delivery notes, OAuth consent states."""

    def put_oauth_state(self, state: str, meta: dict[str, Any]) -> None: ...
    def pop_oauth_state(self, state: str, max_age_s: float = 600) -> dict[str, Any] | None: ...


StoreFactory = Callable[[], WebStore]
SecretsFactory = Callable[[], shared_secrets.Secrets]
JiraHookFactory = Callable[[str], "JiraCloudHook"]


# -- dependencies (overridden in tests) ------------------------------------------------------------------


def _default_store() -> WebStore:
    from bc_jira.store import StateStore

    return StateStore.from_airflow()


def get_store_factory() -> StoreFactory:
    """How to open the state store (``bc_jira_db`` or the SQLite default), called inside each request."""
    return _default_store


def get_secrets_factory() -> SecretsFactory:
    """The shared secrets from ``bc_default`` / ``jira_default`` (cached briefly, fail closed)."""
    return lambda: shared_secrets.secrets_from_airflow(BC_CONN_ID, JIRA_CONN_ID)


def get_jira_hook_factory(stores: StoreFactory = Depends(get_store_factory)) -> JiraHookFactory:
    """The Jira hook for a connection id, with its tokens in the state store."""

    def make(conn_id: str) -> JiraCloudHook:
        from bc_jira.hooks.jira import JiraCloudHook

        # the hook keeps its tokens in the real state store (tests hand theirs in through the factory)
        return JiraCloudHook(conn_id, store=cast("StateStore", stores()))

    return make


# -- responses ------------------------------------------------------------------------------------------


def _result_response(res: intake.IntakeResult) -> Response:
    if isinstance(res.body, str):
        return PlainTextResponse(res.body, status_code=res.status, headers=res.headers)
    return JSONResponse(res.body, status_code=res.status, headers=res.headers)


async def _read_capped(request: Request, cap: int) -> bytes | None:
    """The raw body (HMAC needs the exact bytes), or None when it exceeds ``cap`` (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _page(title: str, message: str, status: int) -> HTMLResponse:
    body = (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


# -- webhook intake ---------------------------------------------------------------------------------------

intake_router = APIRouter()


def _handshake(query: dict[str, str]) -> Response:
    return _result_response(intake.handle_bc_notification(query, b"", client_state=None, store=None))


@intake_router.get("/bc/notifications")
def bc_handshake_get(request: Request) -> Response:
    """BC's validationToken handshake sent as GET: Microsoft documents the token, not the method."""
    query = dict(request.query_params)
    if "validationToken" not in query:
        return PlainTextResponse(
            "GET only answers the Business Central validationToken handshake; notifications are POSTed",
            status_code=400,
        )
    return _handshake(query)


@intake_router.post("/bc/notifications")
async def bc_notifications(
    request: Request,
    stores: StoreFactory = Depends(get_store_factory),
    secrets_of: SecretsFactory = Depends(get_secrets_factory),
) -> Response:
    query = dict(request.query_params)
    if "validationToken" in query:  # handshake: answer at once, touch nothing
        return _handshake(query)
    body = await _read_capped(request, intake.MAX_BC_BODY)
    if body is None:
        return JSONResponse({"error": "body too large"}, status_code=413)

    def work() -> intake.IntakeResult:
        store = stores()
        return intake.handle_bc_notification(
            query,
            body,
            client_state=secrets_of().client_state,
            store=store,
            companies=intake.subscribed_companies(store.list_subscriptions()),
        )

    res = await run_in_threadpool(intake.safely, work, "bc notification")
    # One line per delivery (a poison body included): warning when refused.
    log.log(
        logging.WARNING if res.status >= 400 else logging.INFO,
        "bc notification: %s staged=%d duplicates=%d dropped=%d %s",
        res.status,
        res.staged,
        res.duplicates,
        res.dropped,
        res.reason,
    )
    return _result_response(res)


@intake_router.post("/jira/webhook")
async def jira_webhook(
    request: Request,
    stores: StoreFactory = Depends(get_store_factory),
    secrets_of: SecretsFactory = Depends(get_secrets_factory),
) -> Response:
    body = await _read_capped(request, intake.MAX_JIRA_BODY)
    if body is None:
        return JSONResponse({"error": "body too large"}, status_code=413)
    headers = dict(request.headers)

    def work() -> intake.IntakeResult:
        s = secrets_of()
        store = stores()
        res = intake.handle_jira_webhook(
            headers, body, webhook_secret=s.webhook_secret, client_secret=s.jira_client_secret, store=store
        )
        if res.verified_by:
            note_delivery(store, res.verified_by)
        return res

    res = await run_in_threadpool(intake.safely, work, "jira webhook")
    log.log(
        logging.WARNING if res.status >= 400 else logging.INFO,
        "jira webhook %s: %s staged=%d duplicates=%d %s",
        headers.get("x-atlassian-webhook-identifier", "?"),
        res.status,
        res.staged,
        res.duplicates,
        res.reason,
    )
    return _result_response(res)


# -- Jira OAuth connect flow ------------------------------------------------------------------------------

oauth_router = APIRouter()


@oauth_router.get("/jira/oauth/start")
def oauth_start(
    conn_id: str = JIRA_CONN_ID,
    user: Any = Depends(get_user),
    stores: StoreFactory = Depends(get_store_factory),
    jira_hook: JiraHookFactory = Depends(get_jira_hook_factory),
) -> Response:
    """Send the operator to Atlassian's consent page (offline_access) with a one-time state."""
    hook = jira_hook(conn_id)
    try:
        oauth = hook.oauth
    except ValueError as exc:
        return _page("Jira connect not possible", str(exc), 400)
    state = secrets.token_urlsafe(32)
    who = getattr(user, "get_name", lambda: None)() if user is not None else None
    stores().put_oauth_state(state, {"conn_id": conn_id, "by": who, "at": time.time()})
    try:
        url = oauth.authorization_url(state)
    except ValueError as exc:
        return _page("Jira connect not possible", str(exc), 400)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


def _connect(hook: JiraCloudHook, code: str, by: Any) -> str:
    """Exchange the code, resolve the site's cloudId, store the tokens encrypted; the cloudId."""
    from bc_jira.tokens import JiraTokenProvider

    tokens = hook.oauth.exchange_code(code)
    cloud_id = hook.oauth.resolve_cloud_id(tokens.access_token, hook.settings.site_url)
    provider = hook.token_provider
    if not isinstance(provider, JiraTokenProvider):
        raise ValueError("the connection uses basic auth: there are no OAuth tokens to store")
    provider.store_tokens(
        tokens,
        meta={
            "cloud_id": cloud_id,
            "site_url": hook.settings.site_url,
            "connected_at": time.time(),
            "connected_by": by,
        },
    )
    return cloud_id


@oauth_router.get("/jira/oauth/callback")
def oauth_callback(
    state: str = "",
    code: str = "",
    error: str = "",
    error_description: str = "",
    stores: StoreFactory = Depends(get_store_factory),
    jira_hook: JiraHookFactory = Depends(get_jira_hook_factory),
) -> Response:
    """Atlassian redirects here: check state, exchange the code, store tokens encrypted, get cloudId."""
    from bc_jira.http import ApiError

    if error:
        return _page("Jira connect refused", f"Atlassian answered {error}: {error_description}".strip(), 400)
    meta = stores().pop_oauth_state(state) if state else None
    if meta is None:
        return _page(
            "Jira connect failed",
            f"Unknown, used or expired state: start again from {URL_PREFIX}/jira/oauth/start.",
            400,
        )
    if not code:
        return _page("Jira connect failed", "Atlassian sent no authorization code.", 400)
    hook = jira_hook(str(meta.get("conn_id") or JIRA_CONN_ID))
    try:
        cloud_id = _connect(hook, code, meta.get("by"))
    except ApiError as exc:
        log.warning("jira oauth callback failed: %s", exc)
        return _page("Jira connect failed", str(exc), 502)
    except ValueError as exc:
        return _page("Jira connect failed", str(exc), 400)
    log.info("jira connected: site %s cloudId %s", hook.settings.site_url, cloud_id)
    return _page(
        "Jira connected",
        f"{hook.settings.site_url} (cloudId {cloud_id}) is connected; the "
        "refresh token is stored encrypted. You can close this page.",
        200,
    )


# -- health -----------------------------------------------------------------------------------------------

health_router = APIRouter()


def watermark_value(key: str) -> str | None:
    """A watermark Variable's value (None when unset or unreadable)."""
    try:
        from airflow.sdk import Variable

        value = Variable.get(key, default=None)
    except Exception:  # noqa: BLE001 - unreadable: reported as never synced
        return None
    return str(value) if value else None


class HealthSources(Protocol):
    def companies(self) -> list[CompanyInfo] | None: ...
    def watermark(self, key: str) -> str | None: ...


class _AirflowSources:
    def companies(self) -> list[CompanyInfo] | None:
        return configured_companies()

    def watermark(self, key: str) -> str | None:
        return watermark_value(key)


def get_health_sources() -> HealthSources:
    """Where the health route reads the companies and watermarks (Airflow's Variables; tests replace it)."""
    return _AirflowSources()


@health_router.get("/health")
def health(
    stores: StoreFactory = Depends(get_store_factory),
    sources: HealthSources = Depends(get_health_sources),
) -> Response:
    try:
        store = stores()
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        return JSONResponse(
            {"ok": False, "store": {"ok": False, "error": type(exc).__name__}}, status_code=503
        )
    report = health_report(store, companies=sources.companies(), watermark=sources.watermark)
    # 503 only when the store is down (nothing can be staged); expiring edges are reported with 200.
    return JSONResponse(report, status_code=200 if report["store"]["ok"] else 503)


def create_app(
    store_factory: StoreFactory | None = None,
    secrets_factory: SecretsFactory | None = None,
    hook_factory: JiraHookFactory | None = None,
) -> FastAPI:
    """The app with every router (the audit page included: ``/bc-jira/audit``); factories replace the
    dependencies so tests can run it without an api-server."""
    app = FastAPI(title="bc-jira connector", description=__doc__)
    for router in (intake_router, oauth_router, health_router, audit_view.router):
        app.include_router(router)
    if store_factory is not None:
        app.dependency_overrides[get_store_factory] = lambda: store_factory
    if secrets_factory is not None:
        app.dependency_overrides[get_secrets_factory] = lambda: secrets_factory
    if hook_factory is not None:
        app.dependency_overrides[get_jira_hook_factory] = lambda: hook_factory
    return app

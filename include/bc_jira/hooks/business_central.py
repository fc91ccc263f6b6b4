"""Business Central API v2.0 hook: Entra client-credentials auth (MSAL) and the calls the DAGs need.

Only auth wiring and API calls live here; retry/throttle/error policy is ``bc_jira.http``, tokens are
``bc_jira.entra`` and how BC spells values (OData literals, ``$filter``, the enum codec) is
``bc_jira.hooks.odata``. Records are returned with enum values decoded (``_x0020_`` -> space,
blank -> ""), and encoded again on write, so callers never see BC's EDM member-name encoding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

from bc_jira.entra import MsalTokenProvider
from bc_jira.failfast import ConnectionConfigError
from bc_jira.hooks.odata import build_filter, decode_record, encode_changes, entity_key, string_key
from bc_jira.http import (
    ApiClient,
    ApiError,
    AuthError,
    NotFoundError,
    RetryPolicy,
    TransportError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping
    from contextlib import AbstractContextManager
    from datetime import datetime

    import requests

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.businesscentral.dynamics.com/v2.0"
DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
DEFAULT_PAGE_SIZE = 1000
MAX_CONCURRENCY = 5  # BC online: 5 concurrent requests per user / service principal

# -- settings, auth and the call limiter ---------------------------------------------------------------


class CallLimiter(Protocol):
    """Holds one of ``slots`` call slots for ``key`` across processes while the ``with`` block runs.

    BC online allows 5 concurrent requests per user / service principal
    (https://learn.microsoft.com/en-us/dynamics365/business-central/dev-itpro/administration/operational-limits-online);
    ``StateStore.call_slot`` satisfies this structurally.
    """

    def __call__(self, key: str, slots: int) -> AbstractContextManager[object]: ...


def _airflow_call_limiter() -> CallLimiter:
    """The connector's state store limiter, for hooks Airflow builds from a connection id alone.

    Imported here, lazily, so that the hook module does not depend on the store: callers that build the
    store themselves pass ``call_limiter=store.call_slot``.
    """
    from bc_jira.store import StateStore

    return StateStore.from_airflow().call_slot


@dataclass(frozen=True)
class BcSettings:
    """What the hook needs from the ``business_central`` connection."""

    client_id: str
    client_secret: str
    tenant_id: str
    environment: str = "production"
    company_id: str = ""
    api_url: str = DEFAULT_API_URL
    authority_url: str = DEFAULT_AUTHORITY_URL
    client_state: str | None = None

    def __repr__(self) -> str:  # never show the secret
        return (
            f"BcSettings(client_id={self.client_id!r}, tenant_id={self.tenant_id!r}, "
            f"environment={self.environment!r}, company_id={self.company_id!r}, "
            f"api_url={self.api_url!r})"
        )

    @property
    def authority(self) -> str:
        return f"{self.authority_url.rstrip('/')}/{self.tenant_id}"

    @property
    def scope(self) -> str:
        """``<resource>/.default``: the real BC resource, or the API origin for an emulator."""
        parts = urlsplit(self.api_url)
        if parts.hostname and parts.hostname.endswith("businesscentral.dynamics.com"):
            return f"{BC_RESOURCE}/.default"
        return f"{parts.scheme}://{parts.netloc}/.default"

    @property
    def environment_url(self) -> str:
        return f"{self.api_url.rstrip('/')}/{self.tenant_id}/{self.environment}/api/v2.0"

    @property
    def company_path(self) -> str:
        return f"companies({self.company_id})"


# -- the hook --------------------------------------------------------------------------------


def settings_from_connection(
    conn_id: str,
    login: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    company_id: str | None = None,
) -> BcSettings:
    """``BcSettings`` from a connection's fields; ``ValueError`` naming every missing one. ``company_id``:
    the company to act in instead of the connection's own (``companies``; it may then have none)."""
    tenant_id, company_id = extra.get("tenant_id"), company_id or extra.get("company_id")
    required = (
        ("login (client id)", login),
        ("password (client secret)", password),
        ("extra.tenant_id", tenant_id),
        ("extra.company_id", company_id),
    )
    missing = [name for name, value in required if not value]
    if missing or not (login and password and tenant_id and company_id):
        raise ConnectionConfigError(f"connection {conn_id!r} is missing {', '.join(missing)}")
    return BcSettings(
        client_id=login,
        client_secret=password,
        tenant_id=str(tenant_id),
        environment=extra.get("environment") or "production",
        company_id=str(company_id),
        api_url=extra.get("api_url") or DEFAULT_API_URL,
        authority_url=extra.get("authority_url") or DEFAULT_AUTHORITY_URL,
        client_state=extra.get("client_state") or None,
    )


class BusinessCentralHook(BaseHook):
    """Dynamics 365 Business Central API v2.0 (connection ``bc_default``, type ``business_central``).

    No network in ``__init__``: the connection is read and the token fetched on first use.
    """

    conn_name_attr = "bc_conn_id"
    default_conn_name = "bc_default"
    conn_type = "business_central"
    hook_name = "Dynamics 365 Business Central"

    def __init__(
        self,
        bc_conn_id: str = default_conn_name,
        *,
        settings: BcSettings | None = None,
        call_limiter: CallLimiter | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        company_id: str | None = None,
    ) -> None:
        """:param bc_conn_id: the Airflow connection to read (ignored when ``settings`` is given).
        :param company_id: the BC company to act in (``companies``); default the connection's ``company_id``.
            The call limiter stays per service principal (tenant and client id), whatever the company.
        :param settings: use these instead of an Airflow connection (tests, tools).
        :param call_limiter: holds one of ``MAX_CONCURRENCY`` call slots per service principal across
            processes (``StateStore.call_slot``). When omitted, a hook that reads its connection from
            Airflow uses the connector's state store; one given ``settings`` limits this process only.
        :param page_size: ``odata.maxpagesize`` asked for when reading collections.
        :param timeout: (connect, read) seconds per HTTP request.
        :param retry: the retry/backoff policy for BC calls.
        :param session: a ``requests`` session to send through (tests).
        :param sleep: how to wait between retries (tests record instead of sleeping).
        """
        super().__init__()
        self.bc_conn_id = bc_conn_id
        self._settings = settings
        self._call_limiter = call_limiter
        self.page_size = page_size
        self._timeout = timeout
        self._retry = retry
        self._session = session
        self._sleep = sleep
        self._company_id = company_id

    # -- wiring --------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> BcSettings:
        """The injected settings, else the Airflow connection's (``ValueError`` naming what is missing)."""
        if self._settings is not None:
            if self._company_id:
                return replace(self._settings, company_id=self._company_id)
            return self._settings
        conn = self.get_connection(self.bc_conn_id)
        extra = conn.extra_dejson or {}
        return settings_from_connection(self.bc_conn_id, conn.login, conn.password, extra, self._company_id)

    @cached_property
    def token_provider(self) -> MsalTokenProvider:
        return MsalTokenProvider(self.settings, timeout=self._timeout[1])

    @cached_property
    def client(self) -> ApiClient:
        """ApiClient rooted at ``{api_url}/{tenant}/{environment}/api/v2.0`` (subscriptions live there)."""
        s = self.settings
        key = f"bc:{s.tenant_id}:{s.client_id}"
        limiter = self._limiter()
        return ApiClient(
            "bc",
            s.environment_url,
            self.token_provider,
            timeout=self._timeout,
            retry=self._retry,
            max_concurrency=MAX_CONCURRENCY,
            concurrency_key=key,
            session=self._session,
            sleep=self._sleep,
            shared_limit=(lambda: limiter(key, MAX_CONCURRENCY)) if limiter is not None else None,
        )

    def _limiter(self) -> CallLimiter | None:
        """The injected limiter; for a hook built from an Airflow connection, the state store's."""
        if self._call_limiter is None and self._settings is None:
            self._call_limiter = _airflow_call_limiter()
        return self._call_limiter

    def get_conn(self) -> ApiClient:
        return self.client

    @property
    def base_url(self) -> str:
        """``{api_url}/{tenant}/{environment}/api/v2.0/companies({company_id})``."""
        return f"{self.settings.environment_url}/{self.settings.company_path}"

    def _path(self, entity: str, record_id: str | None = None, *rest: str) -> str:
        path = f"{self.settings.company_path}/{entity}"
        if record_id is not None:
            path += f"({entity_key(record_id)})"
        return "/".join([path, *rest])

    # -- reading ---------------------------------------------------------------------------------------------
    def iter_pages(
        self,
        entity: str,
        *,
        filter: str | None = None,
        select: Iterable[str] | None = None,
        orderby: str | None = None,
        expand: str | None = None,
        top: int | None = None,
        page_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Yield one decoded page at a time, following ``@odata.nextLink``; never holds more than a page."""
        params: dict[str, Any] = {
            "$filter": filter,
            "$orderby": orderby,
            "$expand": expand,
            "$top": top,
            "$select": ",".join(select) if select else None,
        }
        headers = {"Prefer": f"odata.maxpagesize={page_size or self.page_size}"}
        url: str | None = self._path(entity)
        first = True
        while url:
            body = self.client.get_json(url, params=params if first else None, headers=headers)
            first = False
            yield [decode_record(entity, r) for r in body.get("value", [])]
            url = body.get("@odata.nextLink")

    def iter_records(self, entity: str, **kw: Any) -> Iterator[dict[str, Any]]:
        """Every record matching the query (same keywords as :meth:`iter_pages`), one at a time."""
        for page in self.iter_pages(entity, **kw):
            yield from page

    def iter_modified(
        self,
        entity: str,
        since: datetime | str | None,
        until: datetime | str | None = None,
        *,
        select: Iterable[str] | None = None,
        extra_filter: str | Mapping[str, Any] | None = None,
        page_size: int | None = None,
        expand: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Records with ``since < lastModifiedDateTime <= until``, oldest first.

        ``expand``: navigations read in the same request (``sync.extract.record_expand``: the lines, the
        attachments); BC pages the records and every page's records carry their expanded navigations, so the
        call count stays one per page.

        ``extra_filter``: raw OData (``"status eq 'Draft'"``) or ``{field: value}`` equalities
        (enum values given decoded, e.g. ``{"status": "In Review"}``, are encoded).
        ``select`` always gets ``id`` and ``lastModifiedDateTime`` added (the sync keys on them).
        """
        if select is not None:
            select = list(dict.fromkeys(["id", "lastModifiedDateTime", *select]))
        flt = build_filter(entity, since=since, until=until, extra=extra_filter)
        yield from self.iter_records(
            entity,
            filter=flt,
            select=select,
            orderby="lastModifiedDateTime asc",
            page_size=page_size,
            expand=expand,
        )

    def get_record(
        self, entity: str, record_id: str, *, select: Iterable[str] | None = None, expand: str | None = None
    ) -> dict[str, Any]:
        """One record (decoded) including ``@odata.etag``; raises NotFoundError."""
        params = {"$select": ",".join(select) if select else None, "$expand": expand}
        return decode_record(entity, self.client.get_json(self._path(entity, record_id), params=params))

    def find_record(self, entity: str, **equals: Any) -> dict[str, Any] | None:
        """First record whose fields equal the given values (e.g. ``number="PI-1001"``), or None."""
        flt = build_filter(entity, extra=equals)
        for record in self.iter_records(entity, filter=flt, top=1, page_size=1):
            return record
        return None

    def list_lines(self, entity: str, record_id: str) -> list[dict[str, Any]]:
        """Lines of a document (purchaseInvoices -> purchaseInvoiceLines, purchaseOrders -> ...Lines)."""
        lines = {"purchaseInvoices": "purchaseInvoiceLines", "purchaseOrders": "purchaseOrderLines"}[entity]
        body = self.client.get_json(self._path(entity, record_id, lines))
        return [decode_record(lines, r) for r in body.get("value", [])]

    def attachment_content(self, entity_set: str, attachment_id: str) -> bytes:
        """The bytes of a ``documentAttachments`` (or ``attachments``) row: its ``attachmentContent`` stream
        (https://learn.microsoft.com/dynamics365/business-central/dev-itpro/api-reference/v2.0/api/dynamics_attachment_update)."""
        return self.client.request("GET", self._path(entity_set, attachment_id, "attachmentContent")).content

    def list_companies(self) -> list[dict[str, Any]]:
        return self.client.get_json("companies").get("value", [])

    # -- writing ---------------------------------------------------------------------------------------------
    def patch_record(
        self, entity: str, record_id: str, changes: Mapping[str, Any], etag: str
    ) -> dict[str, Any]:
        """PATCH with ``If-Match: etag`` (enums encoded); stale etag -> PreconditionFailed."""
        body = self.client.patch_json(
            self._path(entity, record_id),
            json=encode_changes(entity, changes),
            headers={"If-Match": etag, "Content-Type": "application/json"},
        )
        return decode_record(entity, body) if isinstance(body, dict) else self.get_record(entity, record_id)

    def set_vendor_blocked(self, vendor_id: str, blocked: str, etag: str) -> dict[str, Any]:
        """Set ``blocked`` to "" (unblocked), "Payment" or "All"."""
        return self.patch_record("vendors", vendor_id, {"blocked": blocked}, etag)

    def unblock_vendor(self, vendor_id: str, etag: str) -> dict[str, Any]:
        return self.set_vendor_blocked(vendor_id, "", etag)

    def post_purchase_invoice(self, invoice_id: str) -> None:
        """Bound action ``Microsoft.NAV.post`` (204). Not retried on a lost answer: re-read the invoice."""
        self.client.request(
            "POST",
            self._path("purchaseInvoices", invoice_id, "Microsoft.NAV.post"),
            headers={"Content-Type": "application/json"},
        )

    # -- webhook subscriptions (environment level, not under a company) --------------------------------------
    def subscription_resource(self, entity: str) -> str:
        """The ``resource`` value for a company entity, as Microsoft documents it."""
        return f"/api/v2.0/{self.settings.company_path}/{entity}"

    def create_subscription(
        self, notification_url: str, entity_or_resource: str, client_state: str | None = None
    ) -> dict[str, Any]:
        """POST subscriptions; BC first performs the validationToken handshake with notification_url."""
        resource = (
            entity_or_resource
            if "/" in entity_or_resource
            else self.subscription_resource(entity_or_resource)
        )
        body = {"notificationUrl": notification_url, "resource": resource}
        state = client_state if client_state is not None else self.settings.client_state
        if state:
            body["clientState"] = state
        return self.client.post_json("subscriptions", json=body)

    def list_subscriptions(self) -> list[dict[str, Any]]:
        return self.client.get_json("subscriptions").get("value", [])

    def get_subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.client.get_json(f"subscriptions({string_key(subscription_id)})")

    def renew_subscription(
        self,
        subscription_id: str,
        etag: str | None = None,
        changes: Mapping[str, Any] | None = None,
        *,
        current: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """PATCH with If-Match and the subscription's body: BC handshakes again and extends expiry by 3 days.

        Learn documents the renewal body as ``notificationUrl``, ``resource`` and ``clientState``
        (dynamics_subscriptions_update), so that is what is sent (``changes`` applied on top), never ``{}``.
        ``current`` is the subscription as listed; without it (or without ``etag``) it is read first.
        """
        if etag is None or current is None:
            current = self.get_subscription(subscription_id)
            etag = etag or current["@odata.etag"]
        return self.client.patch_json(
            f"subscriptions({string_key(subscription_id)})",
            json=renewal_body(current, changes),
            headers={"If-Match": etag, "Content-Type": "application/json"},
        )

    def delete_subscription(self, subscription_id: str, etag: str | None = None) -> bool:
        """DELETE; True if deleted, False if it was already gone."""
        try:
            if etag is None:
                etag = self.get_subscription(subscription_id)["@odata.etag"]
            self.client.delete(f"subscriptions({string_key(subscription_id)})", headers={"If-Match": etag})
        except NotFoundError:
            return False
        return True

    # -- diagnostics --------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """(True, msg) or (False, reason naming the cause: secret, tenant, environment, access, company)."""
        try:
            s = self.settings
        except Exception as exc:  # noqa: BLE001 - report, do not crash the test button
            return False, f"Connection {self.bc_conn_id!r} is incomplete: {exc}"
        try:
            self.token_provider.token()
        except ApiError as exc:
            return False, _explain_entra(exc, s)
        try:
            body = self.client.get_json("companies", params={"$select": "id,name,displayName"})
        except AuthError as exc:
            return False, (
                f"Token accepted by Entra but BC refused access ({exc.status} {exc.code}): "
                f"register the client id {s.client_id} on BC's 'Microsoft Entra applications' "
                f"page with State Enabled and permission sets (purchase/vendor access), "
                f"and grant admin consent for API.ReadWrite.All"
            )
        except NotFoundError as exc:
            return False, (
                f"Environment {s.environment!r} not found for tenant {s.tenant_id} ({exc.code}): "
                f"check extra.environment (e.g. 'production', 'sandbox')"
            )
        except ApiError as exc:
            return False, f"BC API call failed: {exc}"
        companies = body.get("value", []) if isinstance(body, dict) else []
        match = next((c for c in companies if str(c.get("id", "")).lower() == s.company_id.lower()), None)
        if match is None:
            known = ", ".join(f"{c.get('name')} ({c.get('id')})" for c in companies[:10]) or "none"
            return False, (
                f"Unknown company id {s.company_id!r} in environment {s.environment!r}; available: {known}"
            )
        return True, (
            f"Connected to Business Central environment {s.environment!r}, company "
            f"{match.get('name')!r} ({match.get('id')})"
        )


def renewal_body(subscription: Mapping[str, Any], changes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The documented renewal body: the subscription's ``notificationUrl``, ``resource``, ``clientState``."""
    body = {k: subscription[k] for k in ("notificationUrl", "resource") if subscription.get(k)}
    if subscription.get("clientState"):
        body["clientState"] = subscription["clientState"]
    body.update(changes or {})
    return body


def _explain_entra(exc: ApiError, s: BcSettings) -> str:
    text = f"{exc.code or ''} {exc.message}"
    if isinstance(exc, TransportError):
        return f"Cannot reach the Entra authority {s.authority_url}: {exc.code}"
    if "AADSTS7000215" in text or "AADSTS7000222" in text:
        return (
            f"Entra rejected the client secret for client id {s.client_id} "
            f"({exc.message.split(':')[0]}): the connection password is wrong or expired; "
            "create a new secret in the app registration"
        )
    if "AADSTS90002" in text or exc.code == "invalid_tenant":
        return f"Unknown tenant {s.tenant_id!r} (AADSTS90002): check extra.tenant_id (directory id or domain)"
    if "AADSTS700016" in text:
        return f"Application {s.client_id} not found in tenant {s.tenant_id} (AADSTS700016): check the login"
    return f"Entra token request failed: {exc.code}: {exc.message}"

"""Business Central API v2.0 hook: Entra client-credentials auth (MSAL) and the calls the DAGs need.

Only auth wiring and API calls live here; retry/throttle/error policy is ``bc_jira.http``. Records are
returned with enum values decoded (``_x0020_`` -> space, blank -> ""), and encoded again on write, so
callers never see BC's EDM member-name encoding.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseHook

from bc_jira.http import (
    ApiClient,
    ApiError,
    AuthError,
    NotFoundError,
    RetryPolicy,
    TransportError,
    redact_text,
)

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.businesscentral.dynamics.com/v2.0"
DEFAULT_AUTHORITY_URL = "https://login.microsoftonline.com"
BC_RESOURCE = "https://api.businesscentral.dynamics.com"
DEFAULT_PAGE_SIZE = 1000
MAX_CONCURRENCY = 5  # BC online: 5 concurrent requests per user / service principal

# Enum-typed fields of the entities this package reads (specs/bc-api-v2-entities.json).
ENUM_FIELDS: dict[str, frozenset[str]] = {
    "vendors": frozenset({"blocked"}),
    "purchaseInvoices": frozenset({"status"}),
    "purchaseOrders": frozenset({"status"}),
    "purchaseInvoiceLines": frozenset({"lineType"}),
    "purchaseOrderLines": frozenset({"lineType"}),
}
_ALL_ENUM_FIELDS = frozenset().union(*ENUM_FIELDS.values())
_SPACE = "_x0020_"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# -- pure helpers (unit-tested) -------------------------------------------------------------------------


def decode_enum(value: Any) -> Any:
    """BC EDM enum member name -> display value: ``_x0020_``/" " -> "", ``In_x0020_Review`` -> "In Review"."""
    if not isinstance(value, str):
        return value
    if value in (_SPACE, " "):
        return ""
    return value.replace(_SPACE, " ")


def encode_enum(value: str) -> str:
    """Display value -> BC EDM member name: "" -> ``_x0020_``, "In Review" -> ``In_x0020_Review``."""
    if value in ("", " "):
        return _SPACE
    return value.replace(" ", _SPACE)


def decode_record(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    fields = ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS)
    for name in fields:
        if name in record:
            record[name] = decode_enum(record[name])
    return record


def encode_changes(entity: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    fields = ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS)
    return {k: encode_enum(v) if k in fields and isinstance(v, str) else v for k, v in changes.items()}


def odata_datetime(value: datetime | str) -> str:
    """An OData v4 DateTimeOffset literal (unquoted, UTC, ``Z``): ``2026-11-24T10:00:00Z`` / ``...00.123Z``.

    Naive datetimes are taken as UTC; strings are parsed (ISO 8601) and normalised.
    """
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def odata_literal(entity: str, field: str, value: Any) -> str:
    """Format a value for ``field eq <literal>`` (strings quoted with '' escaping, enums encoded)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, datetime):
        return odata_datetime(value)
    text = str(value)
    if field in ENUM_FIELDS.get(entity, _ALL_ENUM_FIELDS):
        text = encode_enum(text)
    elif _GUID.match(text) and (field == "id" or field.endswith("Id")):
        return text  # Edm.Guid literals are unquoted
    return "'" + text.replace("'", "''") + "'"


def build_filter(
    entity: str,
    *,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    extra: str | Mapping[str, Any] | None = None,
) -> str | None:
    """``lastModifiedDateTime gt <since> and lastModifiedDateTime le <until> and <extra>``."""
    parts: list[str] = []
    if since is not None:
        parts.append(f"lastModifiedDateTime gt {odata_datetime(since)}")
    if until is not None:
        parts.append(f"lastModifiedDateTime le {odata_datetime(until)}")
    if isinstance(extra, str) and extra.strip():
        parts.append(f"({extra})" if " or " in extra.lower() else extra)
    elif isinstance(extra, Mapping):
        parts += [f"{k} eq {odata_literal(entity, k, v)}" for k, v in extra.items()]
    return " and ".join(parts) or None


def _key(record_id: str) -> str:
    """Entity key segment: GUIDs unquoted (``vendors(<guid>)``), anything else as a quoted string."""
    return record_id if _GUID.match(record_id) else "'" + record_id.replace("'", "''") + "'"


# -- settings and auth -----------------------------------------------------------------------------------


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
    settings: BcSettings, code: str | None, message: str, *, transport: bool = False
) -> ApiError:
    cls = TransportError if transport else AuthError
    url = f"{settings.authority}/oauth2/v2.0/token"
    return cls("entra", "POST", url, None, code, redact_text(message, (settings.client_secret,)))


class MsalTokenProvider:
    """Client-credentials tokens from MSAL, one ConfidentialClientApplication per process and principal,
    so its in-memory cache reuses a token until near expiry (MSAL refreshes when < 5 min are left)."""

    def __init__(self, settings: BcSettings, timeout: float = 30.0) -> None:
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


# -- the hook --------------------------------------------------------------------------------


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
        page_size: int = DEFAULT_PAGE_SIZE,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        store: Any = None,
    ) -> None:
        super().__init__()
        self.bc_conn_id = bc_conn_id
        self._store = store
        self._settings = settings
        self.page_size = page_size
        self._timeout = timeout
        self._retry = retry
        self._session = session
        self._sleep = sleep

    # -- wiring --------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> BcSettings:
        if self._settings is not None:
            return self._settings
        conn = self.get_connection(self.bc_conn_id)
        extra = conn.extra_dejson or {}
        required = (
            ("login (client id)", conn.login),
            ("password (client secret)", conn.password),
            ("extra.tenant_id", extra.get("tenant_id")),
            ("extra.company_id", extra.get("company_id")),
        )
        missing = [name for name, value in required if not value]
        if missing:
            raise ValueError(f"connection {self.bc_conn_id!r} is missing {', '.join(missing)}")
        return BcSettings(
            client_id=conn.login,
            client_secret=conn.password,
            tenant_id=extra["tenant_id"],
            environment=extra.get("environment") or "production",
            company_id=extra["company_id"],
            api_url=extra.get("api_url") or DEFAULT_API_URL,
            authority_url=extra.get("authority_url") or DEFAULT_AUTHORITY_URL,
            client_state=extra.get("client_state") or None,
        )

    @cached_property
    def token_provider(self) -> MsalTokenProvider:
        return MsalTokenProvider(self.settings, timeout=self._timeout[1])

    @cached_property
    def client(self) -> ApiClient:
        """ApiClient rooted at ``{api_url}/{tenant}/{environment}/api/v2.0`` (subscriptions live there)."""
        s = self.settings
        key = f"bc:{s.tenant_id}:{s.client_id}"
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
            shared_limit=self._shared_limit(key),
        )

    def _shared_limit(self, key: str) -> Any:
        """At most MAX_CONCURRENCY calls per principal across every worker, through the state store."""
        store = self._store
        if store is None and self._settings is None:  # a real deployment: the connector's state store
            from bc_jira.store import StateStore

            store = StateStore.from_airflow()
        if store is None:
            return None
        return lambda: store.call_slot(key, MAX_CONCURRENCY)

    def get_conn(self) -> ApiClient:
        return self.client

    @property
    def base_url(self) -> str:
        """``{api_url}/{tenant}/{environment}/api/v2.0/companies({company_id})``."""
        return f"{self.settings.environment_url}/{self.settings.company_path}"

    def _path(self, entity: str, record_id: str | None = None, *rest: str) -> str:
        path = f"{self.settings.company_path}/{entity}"
        if record_id is not None:
            path += f"({_key(record_id)})"
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
    ) -> Iterator[dict[str, Any]]:
        """Records with ``since < lastModifiedDateTime <= until``, oldest first.

        ``extra_filter``: raw OData (``"status eq 'Draft'"``) or ``{field: value}`` equalities
        (enum values given decoded, e.g. ``{"status": "In Review"}``, are encoded).
        ``select`` always gets ``id`` and ``lastModifiedDateTime`` added (the sync keys on them).
        """
        if select is not None:
            select = list(dict.fromkeys(["id", "lastModifiedDateTime", *select]))
        flt = build_filter(entity, since=since, until=until, extra=extra_filter)
        yield from self.iter_records(
            entity, filter=flt, select=select, orderby="lastModifiedDateTime asc", page_size=page_size
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
        return self.client.get_json(f"subscriptions({_quote_key(subscription_id)})")

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
            f"subscriptions({_quote_key(subscription_id)})",
            json=renewal_body(current, changes),
            headers={"If-Match": etag, "Content-Type": "application/json"},
        )

    def delete_subscription(self, subscription_id: str, etag: str | None = None) -> bool:
        """DELETE; True if deleted, False if it was already gone."""
        try:
            if etag is None:
                etag = self.get_subscription(subscription_id)["@odata.etag"]
            self.client.delete(f"subscriptions({_quote_key(subscription_id)})", headers={"If-Match": etag})
        except NotFoundError:
            return False
        return True

    # -- diagnostics --------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """(True, msg) or (False, reason naming the cause: secret, tenant, environment, access, company)."""
        try:
            s = self.settings
        except Exception as exc:
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


def _quote_key(key: str) -> str:
    """Subscription keys are strings: ``subscriptions('<id>')``."""
    return "'" + key.replace("'", "''") + "'"


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

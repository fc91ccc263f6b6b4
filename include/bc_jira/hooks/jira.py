"""Jira Cloud REST v3 hook: OAuth 2.0 (3LO) or basic auth wiring, and the Jira calls the DAGs need.

Only auth wiring and API calls live here; retry/throttle/error policy is ``bc_jira.http`` and the rotating
refresh token is ``bc_jira.tokens``. ``auth=oauth2`` (default) calls
``{api_url}/ex/jira/{cloudId}/rest/api/3`` with the cloudId resolved from ``site_url`` through
accessible-resources (cached in the token row's meta); ``auth=basic`` calls ``{host}/rest/api/3`` with
email + API token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import requests
from airflow.sdk import BaseHook

from bc_jira.http import ApiClient, ApiError, AuthError, NotFoundError, RetryPolicy, TransportError
from bc_jira.tokens import (
    CONSENT_ROUTE,
    DEFAULT_API_URL,
    DEFAULT_AUTH_URL,
    AtlassianOAuth,
    BasicAuth,
    JiraTokenProvider,
    SiteNotAccessible,
    TokenCryptoError,
)

if TYPE_CHECKING:
    from bc_jira.store import StateStore, TokenRow

log = logging.getLogger(__name__)

BULK_CREATE_MAX = 50
RECONCILE_MAX = 50
BULK_FETCH_MAX = 100  # POST /issue/bulkfetch: "You can request up to 100 issues."
SEARCH_PAGE_MAX = 5000
USER_BULK_CHUNK = 50


def expiration_ms(value: Any) -> int | None:
    """A webhook ``expirationDate`` as epoch ms, in either form Jira documents; None when absent/unreadable.

    The spec's schema says int64 epoch ms, its examples (and Atlassian's reference page) show
    ``"2019-06-01T12:42:30.000+0000"`` (vendor-behaviour-review.md #4): read both wherever it is read.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp() * 1000)


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


@dataclass
class BulkFailure:
    """One element of a bulk create that Jira rejected; ``index`` is the position in the caller's input."""

    index: int
    status: int | None
    messages: list[str]
    errors: dict[str, str]

    def __str__(self) -> str:
        parts = self.messages + [f"{k}: {v}" for k, v in self.errors.items()]
        return f"#{self.index} ({self.status}): {'; '.join(parts) or 'rejected'}"


@dataclass
class BulkCreateResult:
    """``created``: (input index, {id, key, self}); ``failed``: per-element errors mapped to the input."""

    created: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    failed: list[BulkFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class JiraCloudHook(BaseHook):
    """Jira Cloud platform REST v3 (connection ``jira_default``, type ``jira_cloud``).

    No network in ``__init__``: connection, token and cloudId are resolved on first use.
    """

    conn_name_attr = "jira_conn_id"
    default_conn_name = "jira_default"
    conn_type = "jira_cloud"
    hook_name = "Jira Cloud"

    def __init__(
        self,
        jira_conn_id: str = default_conn_name,
        *,
        settings: JiraSettings | None = None,
        store: StateStore | None = None,
        timeout: tuple[float, float] = (10.0, 60.0),
        retry: RetryPolicy = RetryPolicy(),
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.jira_conn_id = jira_conn_id
        self._settings = settings
        self._store = store
        self._timeout = timeout
        self._retry = retry
        self._session = session
        self._sleep = sleep

    # -- wiring ----------------------------------------------------------------------------------------------
    @cached_property
    def settings(self) -> JiraSettings:
        if self._settings is not None:
            return self._settings
        conn = self.get_connection(self.jira_conn_id)
        extra = conn.extra_dejson or {}
        auth = (extra.get("auth") or "oauth2").lower()
        if auth == "basic":
            site = extra.get("site_url") or conn.host
            missing = [
                n
                for n, v in (
                    ("host (site URL)", site),
                    ("login (email)", conn.login),
                    ("password (API token)", conn.password),
                )
                if not v
            ]
            if missing:
                raise ValueError(
                    f"connection {self.jira_conn_id!r} (auth=basic) is missing {', '.join(missing)}"
                )
            if "://" not in site:
                site = f"https://{site}"
            return JiraSettings(
                auth="basic",
                site_url=site.rstrip("/"),
                email=conn.login,
                api_token=conn.password,
                webhook_secret=extra.get("webhook_secret"),
            )
        if auth != "oauth2":
            raise ValueError(
                f"connection {self.jira_conn_id!r}: extra.auth must be 'oauth2' or 'basic', not {auth!r}"
            )
        missing = [
            n
            for n, v in (
                ("login (client id)", conn.login),
                ("password (client secret)", conn.password),
                ("extra.site_url", extra.get("site_url")),
            )
            if not v
        ]
        if missing:
            raise ValueError(
                f"connection {self.jira_conn_id!r} (auth=oauth2) is missing {', '.join(missing)}"
            )
        return JiraSettings(
            auth="oauth2",
            site_url=str(extra["site_url"]).rstrip("/"),
            client_id=conn.login,
            client_secret=conn.password,
            redirect_uri=extra.get("redirect_uri"),
            auth_url=(extra.get("auth_url") or DEFAULT_AUTH_URL).rstrip("/"),
            api_url=(extra.get("api_url") or DEFAULT_API_URL).rstrip("/"),
            refresh_token=extra.get("refresh_token") or None,
            webhook_secret=extra.get("webhook_secret"),
        )

    @property
    def store(self) -> StateStore:
        if self._store is None:
            from bc_jira.store import StateStore

            self._store = StateStore.from_airflow()
        return self._store

    @property
    def token_name(self) -> str:
        """Key of this connection's row in the state store's token table."""
        return f"jira:{self.jira_conn_id}"

    @cached_property
    def oauth(self) -> AtlassianOAuth:
        s = self.settings
        if s.auth != "oauth2":
            raise ValueError(f"connection {self.jira_conn_id!r} uses basic auth: no OAuth client")
        return AtlassianOAuth(
            s.client_id or "",
            s.client_secret or "",
            auth_url=s.auth_url,
            api_url=s.api_url,
            redirect_uri=s.redirect_uri,
            session=self._session,
            timeout=self._timeout,
        )

    @cached_property
    def token_provider(self) -> JiraTokenProvider | BasicAuth:
        s = self.settings
        if s.auth == "basic":
            return BasicAuth(s.email or "", s.api_token or "")
        return JiraTokenProvider(
            lambda: self.store, self.oauth, self.token_name, bootstrap_refresh_token=s.refresh_token
        )

    @property
    def cloud_id(self) -> str:
        """The site's cloudId: cached in the token row's meta, else resolved via accessible-resources."""
        if "_cloud_id" in self.__dict__:
            return self.__dict__["_cloud_id"]
        provider = self.token_provider
        assert isinstance(provider, JiraTokenProvider)
        site = self.settings.site_url.lower()
        meta = provider.get_meta()
        if meta.get("cloud_id") and str(meta.get("site_url", "")).lower() == site:
            cloud_id = str(meta["cloud_id"])
        else:
            cloud_id = self.oauth.resolve_cloud_id(provider.access_token(), self.settings.site_url)
            provider.update_meta(cloud_id=cloud_id, site_url=self.settings.site_url)
        self.__dict__["_cloud_id"] = cloud_id
        return cloud_id

    @property
    def base_url(self) -> str:
        """Root of the REST API: ``{api_url}/ex/jira/{cloudId}/rest/api/3`` or ``{site}/rest/api/3``."""
        s = self.settings
        if s.auth == "basic":
            return f"{s.site_url}/rest/api/3"
        return f"{s.api_url}/ex/jira/{self.cloud_id}/rest/api/3"

    @cached_property
    def client(self) -> ApiClient:
        return ApiClient(
            "jira",
            self.base_url,
            self.token_provider,
            timeout=self._timeout,
            retry=self._retry,
            session=self._session,
            sleep=self._sleep,
        )

    def get_conn(self) -> ApiClient:
        return self.client

    # -- metadata --------------------------------------------------------------------------------------------
    def get_fields(self) -> list[dict[str, Any]]:
        """``GET /field``: system and custom fields (ids like ``customfield_10042``)."""
        return self.client.get_json("field") or []

    def field_ids_by_name(self) -> dict[str, str]:
        """Field name -> id (custom fields win over a system field of the same name)."""
        out: dict[str, str] = {}
        for f in sorted(self.get_fields(), key=lambda f: bool(f.get("custom"))):
            out[str(f.get("name"))] = str(f.get("id"))
        return out

    def myself(self) -> dict[str, Any]:
        return self.client.get_json("myself")

    def get_project(self, project_key_or_id: str) -> dict[str, Any]:
        """The project, including ``issueTypes``."""
        return self.client.get_json(f"project/{quote(project_key_or_id, safe='')}")

    def get_project_issue_types(self, project_key_or_id: str) -> list[dict[str, Any]]:
        project = self.get_project(project_key_or_id)
        if project.get("issueTypes") is not None:
            return list(project["issueTypes"])
        return self.client.get_json("issuetype/project", params={"projectId": project["id"]}) or []

    def get_project_statuses(self, project_key_or_id: str) -> list[dict[str, Any]]:
        """Per issue type, the statuses (with ``statusCategory``) of the project's workflows."""
        return self.client.get_json(f"project/{quote(project_key_or_id, safe='')}/statuses") or []

    def get_statuses(self) -> list[dict[str, Any]]:
        return self.client.get_json("status") or []

    # -- search ----------------------------------------------------------------------------------------------
    def search_pages(
        self,
        jql: str,
        fields: Sequence[str] = ("id", "key"),
        *,
        reconcile_issues: Iterable[int | str] = (),
        max_results: int = 1000,
        expand: str | None = None,
        properties: Sequence[str] = (),
    ) -> Iterator[list[dict[str, Any]]]:
        """``POST /search/jql`` page by page (``nextPageToken``); never holds more than one page.

        ``reconcile_issues``: numeric ids (≤ 50) whose latest state must be reflected (search lags writes).
        Search is read-only, so it is retried even after a lost answer.
        """
        reconcile = [int(i) for i in reconcile_issues]
        if len(reconcile) > RECONCILE_MAX:
            raise ValueError(
                f"reconcileIssues accepts at most {RECONCILE_MAX} issue ids, got {len(reconcile)}"
            )
        body: dict[str, Any] = {
            "jql": jql,
            "fields": list(fields),
            "maxResults": max(1, min(max_results, SEARCH_PAGE_MAX)),
        }
        if reconcile:
            body["reconcileIssues"] = reconcile
        if expand:
            body["expand"] = expand
        if properties:
            body["properties"] = list(properties)
        token: str | None = None
        while True:
            page = (
                self.client.post_json(
                    "search/jql",
                    json={**body, **({"nextPageToken": token} if token else {})},
                    retry_unsafe=True,
                )
                or {}
            )
            yield list(page.get("issues") or [])
            token = page.get("nextPageToken")
            if not token or page.get("isLast") is True:
                return

    def search_jql(
        self, jql: str, fields: Sequence[str] = ("id", "key"), **kw: Any
    ) -> Iterator[dict[str, Any]]:
        """Every issue matching ``jql`` as a generator (see ``search_pages`` for the options)."""
        for page in self.search_pages(jql, fields, **kw):
            yield from page

    def search_all(self, jql: str, fields: Sequence[str] = ("id", "key"), **kw: Any) -> list[dict[str, Any]]:
        return list(self.search_jql(jql, fields, **kw))

    # -- issues ----------------------------------------------------------------------------------------------
    def create_issue(
        self,
        fields: Mapping[str, Any],
        *,
        update: Mapping[str, Any] | None = None,
        properties: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Any]:
        """``POST /issue`` -> ``{id, key, self}``. Not retried after a lost answer (may have been created)."""
        body: dict[str, Any] = {"fields": dict(fields)}
        if update:
            body["update"] = dict(update)
        if properties:
            body["properties"] = [dict(p) for p in properties]
        return self.client.post_json("issue", json=body)

    def bulk_create_issues(self, issue_updates: Sequence[Mapping[str, Any]]) -> BulkCreateResult:
        """``POST /issue/bulk`` in chunks of 50; per-element failures mapped back to the input index.

        Jira answers 201 with ``errors[]`` when some elements failed and 400 (same body) when all did; both
        are reported as ``failed`` entries, never raised. Other errors (auth, 5xx, transport) raise.
        """
        result = BulkCreateResult()
        items = list(issue_updates)
        for offset in range(0, len(items), BULK_CREATE_MAX):
            chunk = [dict(u) for u in items[offset : offset + BULK_CREATE_MAX]]
            try:
                body = self.client.post_json("issue/bulk", json={"issueUpdates": chunk}) or {}
            except ApiError as exc:
                body = _bulk_error_body(exc)
                if body is None:
                    raise
            failed_positions = set()
            for err in body.get("errors") or []:
                pos = err.get("failedElementNumber")
                elem = err.get("elementErrors") or {}
                if not isinstance(pos, int) or not 0 <= pos < len(chunk):
                    # Not tied to one element (e.g. over the limit): every element of this chunk failed.
                    for i in range(len(chunk)):
                        if i not in failed_positions:
                            failed_positions.add(i)
                            result.failed.append(
                                BulkFailure(
                                    offset + i,
                                    err.get("status"),
                                    list(elem.get("errorMessages") or []),
                                    dict(elem.get("errors") or {}),
                                )
                            )
                    continue
                failed_positions.add(pos)
                result.failed.append(
                    BulkFailure(
                        offset + pos,
                        err.get("status"),
                        list(elem.get("errorMessages") or []),
                        dict(elem.get("errors") or {}),
                    )
                )
            # Paired with the input by position as a best guess only: Atlassian does not document that
            # issues[] keeps the input order. Callers that act on the pairing confirm it by value
            # (bc_jira.sync.outbound reads the record id of every created issue with bulk_fetch_issues).
            ok_positions = [i for i in range(len(chunk)) if i not in failed_positions]
            for pos, issue in zip(ok_positions, body.get("issues") or [], strict=False):
                result.created.append((offset + pos, issue))
        result.failed.sort(key=lambda f: f.index)
        return result

    def bulk_fetch_issues(
        self, issue_ids: Sequence[int | str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """``POST /issue/bulkfetch`` in chunks of 100: the issues themselves (ascending id; unknown ids are
        left out). It reads the issues, not the search index, so it sees what was created a moment ago."""
        out: list[dict[str, Any]] = []
        ids = [str(i) for i in issue_ids]
        for offset in range(0, len(ids), BULK_FETCH_MAX):
            body = self.client.post_json(
                "issue/bulkfetch",
                json={"issueIdsOrKeys": ids[offset : offset + BULK_FETCH_MAX], "fields": list(fields)},
            )
            out.extend((body or {}).get("issues") or [])
        return out

    def get_issue(
        self, issue_id_or_key: str, fields: Sequence[str] | None = None, expand: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if fields is not None:
            params["fields"] = ",".join(fields)
        if expand:
            params["expand"] = expand
        return self.client.get_json(f"issue/{quote(issue_id_or_key, safe='')}", params=params or None)

    def edit_issue(
        self,
        issue_id_or_key: str,
        fields: Mapping[str, Any] | None = None,
        *,
        update: Mapping[str, Any] | None = None,
        notify_users: bool | None = None,
        return_issue: bool = False,
    ) -> dict[str, Any] | None:
        """``PUT /issue/{key}`` (idempotent). ``notify_users=False`` needs admin rights, else ignored."""
        body: dict[str, Any] = {}
        if fields:
            body["fields"] = dict(fields)
        if update:
            body["update"] = dict(update)
        params: dict[str, Any] = {}
        if notify_users is not None:
            params["notifyUsers"] = "true" if notify_users else "false"
        if return_issue:
            params["returnIssue"] = "true"
        return self.client.put_json(
            f"issue/{quote(issue_id_or_key, safe='')}", json=body, params=params or None
        )

    def get_transitions(self, issue_id_or_key: str) -> list[dict[str, Any]]:
        body = self.client.get_json(f"issue/{quote(issue_id_or_key, safe='')}/transitions") or {}
        return list(body.get("transitions") or [])

    def transition_issue(
        self,
        issue_id_or_key: str,
        transition_id: str,
        *,
        fields: Mapping[str, Any] | None = None,
        comment_adf: Mapping[str, Any] | None = None,
    ) -> None:
        """``POST /issue/{key}/transitions`` (not retried after a lost answer: a comment would double)."""
        body: dict[str, Any] = {"transition": {"id": str(transition_id)}}
        if fields:
            body["fields"] = dict(fields)
        if comment_adf:
            body["update"] = {"comment": [{"add": {"body": dict(comment_adf)}}]}
        self.client.request(
            "POST",
            f"issue/{quote(issue_id_or_key, safe='')}/transitions",
            json=body,
            retry_unsafe=not comment_adf,
        )

    def transition_to(self, issue_id_or_key: str, name: str) -> str | None:
        """Apply the transition named ``name`` (or leading to status ``name``); None when unavailable."""
        wanted = name.casefold()
        for tr in self.get_transitions(issue_id_or_key):
            to_name = str((tr.get("to") or {}).get("name") or "").casefold()
            if str(tr.get("name") or "").casefold() == wanted or to_name == wanted:
                self.transition_issue(issue_id_or_key, str(tr["id"]))
                return str(tr.get("name"))
        return None

    def add_comment(self, issue_id_or_key: str, body_adf: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /issue/{key}/comment`` with an ADF document."""
        return self.client.post_json(
            f"issue/{quote(issue_id_or_key, safe='')}/comment", json={"body": dict(body_adf)}
        )

    def iter_comments(
        self, issue_id_or_key: str, *, newest_first: bool = True, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """``GET /issue/{key}/comment`` page by page (``orderBy=-created``: the newest first)."""
        start = 0
        while True:
            params: dict[str, Any] = {"startAt": start, "maxResults": page_size}
            if newest_first:
                params["orderBy"] = "-created"
            page = (
                self.client.get_json(f"issue/{quote(issue_id_or_key, safe='')}/comment", params=params) or {}
            )
            comments = list(page.get("comments") or [])
            yield from comments
            start += len(comments)
            if not comments or start >= int(page.get("total") or 0):
                return

    # -- issue links -----------------------------------------------------------------------------------------
    def get_issue_link_types(self) -> list[dict[str, Any]]:
        return list((self.client.get_json("issueLinkType") or {}).get("issueLinkTypes") or [])

    def link_issues(self, type_name: str, inward_issue: str, outward_issue: str) -> None:
        """``POST /issueLink``: reads "<inward_issue> <type.outward> <outward_issue>" (e.g. "FIN-9 duplicates
        FIN-2"). Retried after a lost answer: Jira answers a repeated link as created without a second one."""
        self.client.request(
            "POST",
            "issueLink",
            json={
                "type": {"name": type_name},
                "inwardIssue": {"id": str(inward_issue)},
                "outwardIssue": {"id": str(outward_issue)},
            },
            retry_unsafe=True,
        )

    # -- users -----------------------------------------------------------------------------------------------
    def search_users(self, query: str, max_results: int = 50) -> list[dict[str, Any]]:
        """``GET /user/search``: prefix match on name / visible email (hidden emails need an exact match)."""
        return self.client.get_json("user/search", params={"query": query, "maxResults": max_results}) or []

    def bulk_get_users(self, account_ids: Iterable[str]) -> list[dict[str, Any]]:
        """``GET /user/bulk?accountId=..&accountId=..``, chunked and paged; unknown ids are simply absent."""
        ids = list(dict.fromkeys(a for a in account_ids if a))
        users: list[dict[str, Any]] = []
        for offset in range(0, len(ids), USER_BULK_CHUNK):
            chunk = ids[offset : offset + USER_BULK_CHUNK]
            start = 0
            while True:
                query = urlencode(
                    [("accountId", a) for a in chunk] + [("startAt", start), ("maxResults", len(chunk))]
                )
                page = self.client.get_json(f"user/bulk?{query}") or {}
                values = list(page.get("values") or [])
                users.extend(values)
                start += len(values)
                if page.get("isLast", True) or not values:
                    break
        return users

    # -- webhooks (OAuth 2.0 / Connect apps only) ------------------------------------------------------------
    def register_webhooks(self, url: str, webhooks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``POST /webhook``: one result per entry, in order: ``{createdWebhookId}`` or ``{errors}``."""
        body = self.client.post_json("webhook", json={"url": url, "webhooks": [dict(w) for w in webhooks]})
        return list((body or {}).get("webhookRegistrationResult") or [])

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook this app registered (``{id, jqlFilter, events, expirationDate, url, ...}``)."""
        out: list[dict[str, Any]] = []
        start = 0
        while True:
            page = self.client.get_json("webhook", params={"startAt": start, "maxResults": 100}) or {}
            values = list(page.get("values") or [])
            out.extend(values)
            start += len(values)
            if page.get("isLast", True) or not values:
                return out

    def refresh_webhooks(self, webhook_ids: Sequence[int]) -> int:
        """``PUT /webhook/refresh``: extends the 30-day life; returns the new expiry (epoch ms, 0 if none)."""
        body = self.client.put_json("webhook/refresh", json={"webhookIds": [int(i) for i in webhook_ids]})
        return expiration_ms((body or {}).get("expirationDate")) or 0

    def delete_webhooks(self, webhook_ids: Sequence[int]) -> None:
        self.client.request("DELETE", "webhook", json={"webhookIds": [int(i) for i in webhook_ids]})

    # -- diagnostics -----------------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """(True, msg) or (False, the cause: client secret, revoked token, site access, API token).

        OAuth: only a grant already in the state store is used, under its single-refresher lock; the
        connection's bootstrap refresh token is never spent here (see ``choose_test_grant``).
        """
        try:
            s = self.settings
        except Exception as exc:
            return False, f"Connection {self.jira_conn_id!r} is incomplete: {exc}"
        try:
            if s.auth == "oauth2":
                refusal = self._use_stored_grant()
                if refusal:
                    return False, refusal
                self.token_provider.auth_header()
                _ = self.cloud_id
            me = self.myself()
        except SiteNotAccessible as exc:
            return False, f"No access to the Jira site: {exc.message}"
        except TokenCryptoError as exc:
            return False, str(exc)
        except AuthError as exc:
            return False, self._explain_auth(exc)
        except TransportError as exc:
            return False, f"Cannot reach {exc.url.split('?')[0]}: {exc.code}"
        except NotFoundError as exc:
            return False, f"Jira API not found at {self.settings.site_url} ({exc.path}): check the site URL"
        except ApiError as exc:
            return False, f"Jira call failed: {exc}"
        how = "OAuth 2.0" if s.auth == "oauth2" else "basic auth (email + API token)"
        where = f"{s.site_url} (cloudId {self.cloud_id})" if s.auth == "oauth2" else s.site_url
        return True, f"Connected to Jira {where} as {me.get('displayName')!r} via {how}"

    def _use_stored_grant(self) -> str | None:
        """Point this hook at the stored grant a test may use; the reason when there is none."""
        s = self.settings
        try:
            rows = self.store.list_tokens("jira:")
        except Exception as exc:  # noqa: BLE001 - report, do not crash the test button
            return f"The connector's state store is not reachable ({type(exc).__name__}): check bc_jira_db"
        name, why = choose_test_grant(
            self.token_name, rows, s.client_id, s.site_url, has_bootstrap=bool(s.refresh_token)
        )
        if name is None:
            return why
        # No bootstrap token: a test refreshes only from the store's rotating token, under that row's lock.
        self.__dict__["token_provider"] = JiraTokenProvider(lambda: self.store, self.oauth, name)
        return None

    def _explain_auth(self, exc: AuthError) -> str:
        s = self.settings
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


def _bulk_error_body(exc: ApiError) -> dict[str, Any] | None:
    """The CreatedIssues body of a 400 bulk answer (all elements failed), else None."""
    if exc.status != 400 or exc.response is None:
        return None
    try:
        body = exc.response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) and "errors" in body and isinstance(body["errors"], list) else None

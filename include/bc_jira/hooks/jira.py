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
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseHook

from bc_jira.basic_auth import BasicAuth
from bc_jira.failfast import ConnectionConfigError
from bc_jira.hooks.jira_attachments import JiraAttachmentsMixin
from bc_jira.hooks.jira_bulk import (
    BulkCreateResult,
    bulk_error_body,
    read_bulk_answer,
    search_body,
    start_at_pages,
)
from bc_jira.hooks.jira_connection import (
    JiraSettings,
    explain_failure,
    grant_for_test,
    settings_from_connection,
    site_cloud_id,
)
from bc_jira.http import ApiClient, ApiError, RetryPolicy
from bc_jira.timeutil import Timestamp, epoch_ms
from bc_jira.token_cipher import TokenCryptoError
from bc_jira.tokens import AtlassianOAuth, JiraTokenProvider

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

    import requests

    from bc_jira.store import StateStore

log = logging.getLogger(__name__)

BULK_CREATE_MAX = 50  # POST /issue/bulk: "Creates upto **50** issues"
RECONCILE_MAX = 50
BULK_FETCH_MAX = 100  # POST /issue/bulkfetch: "You can request up to 100 issues."
SEARCH_PAGE_MAX = 5000
USER_BULK_CHUNK = 50


def expiration_ms(value: Timestamp) -> int | None:
    """A webhook ``expirationDate`` as epoch ms, in either form Jira documents; None when absent/unreadable.

    The spec's schema says int64 epoch ms, its examples (and Atlassian's reference page) show
    ``"2019-06-01T12:42:30.000+0000"``
    (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-webhooks/): read both.
    """
    return epoch_ms(value)


class JiraCloudHook(JiraAttachmentsMixin, BaseHook):
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
        """:param jira_conn_id: the Airflow connection to read (ignored when ``settings`` is given).
        :param settings: use these instead of an Airflow connection (tests, tools).
        :param store: where the rotating OAuth tokens live (default: the connector's state store).
        :param timeout: (connect, read) seconds per HTTP request.
        :param retry: the retry/backoff policy for Jira and Atlassian calls.
        :param session: a ``requests`` session to send through (tests).
        :param sleep: how to wait between retries (tests record instead of sleeping).
        """
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
        """The injected settings, else the Airflow connection's (``ValueError`` naming what is missing)."""
        if self._settings is not None:
            return self._settings
        conn = self.get_connection(self.jira_conn_id)
        return settings_from_connection(
            self.jira_conn_id, conn.host, conn.login, conn.password, conn.extra_dejson or {}
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
            raise ConnectionConfigError(f"connection {self.jira_conn_id!r} uses basic auth: no OAuth client")
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
        cloud_id = self.__dict__["_cloud_id"] = site_cloud_id(provider, self.oauth, self.settings.site_url)
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
        body = search_body(
            jql, fields, reconcile_issues, max_results, expand, properties, RECONCILE_MAX, SEARCH_PAGE_MAX
        )
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
                body = bulk_error_body(exc)
                if body is None:
                    raise
            read_bulk_answer(body, offset, len(chunk), into=result)
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
            chunk = [("accountId", a) for a in ids[offset : offset + USER_BULK_CHUNK]]
            users += start_at_pages(partial(self._users_page, chunk))
        return users

    def _users_page(self, chunk: list[tuple[str, str]], start: int) -> dict[str, Any] | None:
        query = urlencode([*chunk, ("startAt", start), ("maxResults", len(chunk))])
        return self.client.get_json(f"user/bulk?{query}")

    # -- webhooks (OAuth 2.0 / Connect apps only) ------------------------------------------------------------
    def register_webhooks(self, url: str, webhooks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``POST /webhook``: one result per entry, in order: ``{createdWebhookId}`` or ``{errors}``."""
        body = self.client.post_json("webhook", json={"url": url, "webhooks": [dict(w) for w in webhooks]})
        return list((body or {}).get("webhookRegistrationResult") or [])

    def list_webhooks(self) -> list[dict[str, Any]]:
        """Every webhook this app registered (``{id, jqlFilter, events, expirationDate, url, ...}``)."""
        return start_at_pages(
            lambda start: self.client.get_json("webhook", params={"startAt": start, "maxResults": 100})
        )

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
        except Exception as exc:  # noqa: BLE001 - report, do not crash the test button
            return False, f"Connection {self.jira_conn_id!r} is incomplete: {exc}"
        try:
            if s.auth == "oauth2":
                refusal = self._use_stored_grant()
                if refusal:
                    return False, refusal
                _ = self.cloud_id
            me = self.myself()
        except (ApiError, TokenCryptoError) as exc:
            return False, explain_failure(exc, s)
        how = "OAuth 2.0" if s.auth == "oauth2" else "basic auth (email + API token)"
        where = f"{s.site_url} (cloudId {self.cloud_id})" if s.auth == "oauth2" else s.site_url
        return True, f"Connected to Jira {where} as {me.get('displayName')!r} via {how}"

    def _use_stored_grant(self) -> str | None:
        """Point this hook at the stored grant a test may use and refresh it with the typed client id/secret
        even while its access token is valid: a wrong secret fails now, not at a DAG's next refresh (a
        rejected client spends no refresh token). The reason when there is no grant."""
        name, why = grant_for_test(self.store, self.token_name, self.settings)
        if name is None:
            return why
        # No bootstrap token: a test refreshes only from the store's rotating token, under that row's lock.
        provider = self.__dict__["token_provider"] = JiraTokenProvider(lambda: self.store, self.oauth, name)
        provider.refresh_now()
        return None
